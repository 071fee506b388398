"""Settings read from the environment the way the chart and the docs set them."""

from __future__ import annotations

import pytest


def test_candidates_come_from_the_environment_as_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from training.settings import TrainingSettings

    monkeypatch.setenv("MLSTACK_CANDIDATES", "logreg, svm")
    assert TrainingSettings().candidates == ("logreg", "svm")


def test_the_result_file_comes_from_the_environment_or_its_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    from training.__main__ import parse_settings

    assert parse_settings([]).result_file is None
    monkeypatch.setenv("MLSTACK_RESULT_FILE", "/dev/termination-log")
    assert parse_settings([]).result_file == Path("/dev/termination-log")
    assert parse_settings(["--result-file", "/tmp/r.json"]).result_file == Path("/tmp/r.json")
