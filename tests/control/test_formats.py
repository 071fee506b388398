"""Small pure pieces: times in and out, tables, error locations, settings, the contract tag."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from control.errors import location
from control.registry import previous_tag
from control.render import epoch_to_iso, short, table
from control.schemas import parse_time
from control.settings import ControlSettings
from training import contract


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1700000000", 1_700_000_000.0),
        ("1700000000.25", 1_700_000_000.25),
        (1700000000, 1_700_000_000.0),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20.5+00:00", 1_700_000_000.5),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),  # no offset: UTC
        ("2023-11-14", 1_699_920_000.0),
    ],
)
def test_times_are_read_as_iso_8601_or_epoch_seconds(text: object, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "'yesterday' is neither ISO 8601"),
        ("nan", "'nan' is not a finite time"),
        (True, "True is not a time"),
    ],
)
def test_bad_times_are_refused_naming_the_value(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(value)


def test_epoch_to_iso_is_utc_with_milliseconds() -> None:
    assert epoch_to_iso(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"


def test_table_aligns_columns_and_shows_none_as_dash() -> None:
    out = table(("NAME", "V"), [("a", 1), ("longer", None)])
    assert out.splitlines() == ["NAME    V", "a       1", "longer  -"]


def test_short_lists_the_first_items_and_counts_the_rest() -> None:
    assert short(["a", "b", "c", "d", "e"]) == "a,b,c,+2"
    assert short([]) == "-"


def test_error_locations_read_like_the_json_path() -> None:
    assert location(("records", 3, "features", 0, 1)) == "records[3].features[0][1]"
    assert location(("query", "limit")) == "query.limit"


def test_the_champion_previous_holder_tag_is_the_one_training_writes() -> None:
    assert previous_tag(contract.ALIAS_CHAMPION) == contract.TAG_PREVIOUS_CHAMPION


def test_settings_take_one_key_source_and_read_a_key_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k-123\n")
    assert ControlSettings(api_key_file=key).resolved_api_key() == b"k-123"
    assert ControlSettings().resolved_api_key() is None
    with pytest.raises(ValidationError, match="not both"):
        ControlSettings(api_key="a", api_key_file=key)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="API key is empty"):
        ControlSettings(api_key_file=empty).resolved_api_key()


def test_the_database_is_sqlite_at_the_path_unless_a_uri_is_set(tmp_path: Path) -> None:
    assert ControlSettings(sqlite_path=tmp_path / "p.db").database_url() == (
        f"sqlite:///{tmp_path / 'p.db'}"
    )
    uri = "postgresql://u:pw@db:5432/log"
    assert ControlSettings(database_uri=uri).database_url() == uri
    assert "pw" not in repr(ControlSettings(database_uri=uri))


def test_settings_come_from_mlstack_control_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_CONTROL_RETENTION_DAYS", "7")
    monkeypatch.setenv("MLSTACK_API_KEY", "the-inference-key")  # another program's setting
    settings = ControlSettings()
    assert settings.retention_days == 7
    assert settings.api_key is None
