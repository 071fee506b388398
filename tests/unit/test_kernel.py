"""The service kernel both services share: the API-key check and its rotating key file, the
error base, request ids, the body reader with its limit, and the log set-up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from kernel.errors import Forbidden, KeyUnavailable, PayloadTooLarge, ServiceError, Unauthorized
from kernel.keys import ApiKeyCheck, KeySource, key_source
from kernel.requests import ClientDisconnected, Message, read_body, request_id
from tests.secret_mount import SecretMount

HEADER = b"x-api-key"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += seconds


def presented(key: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    return headers if key is None else [*headers, (HEADER, key.encode())]


def file_check(path: Path, clock: Clock) -> ApiKeyCheck:
    return ApiKeyCheck(
        KeySource(path=path, setting="MLSTACK_API_KEY_FILE", clock=clock), "X-Api-Key"
    )


def test_the_key_check_answers_401_without_the_header_and_403_with_a_wrong_key() -> None:
    check = ApiKeyCheck(KeySource(b"s3cret-key"), "X-Api-Key")
    check.check(presented("s3cret-key"))
    with pytest.raises(Unauthorized, match="missing API key header 'x-api-key'") as missing:
        check.check(presented(None))
    assert missing.value.status == 401
    for wrong in ("s3cret-ke", "s3cret-key2", "S3CRET-KEY", ""):
        with pytest.raises(Forbidden, match="API key is not valid") as refused:
            check.check(presented(wrong))
        assert refused.value.status == 403


def test_without_a_key_every_request_passes() -> None:
    check = ApiKeyCheck(key_source(None, None, setting="MLSTACK_API_KEY_FILE"), "x-api-key")
    assert not check.enabled
    check.check(presented(None))


def test_a_rewritten_key_file_is_in_force_within_a_second_without_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api-key"
    path.write_text("old-key-0001\n")
    clock = Clock()
    check = file_check(path, clock)
    check.check(presented("old-key-0001"))
    path.write_text("new-key-0002\n")  # in place: same inode, same size
    # Within the interval the file is not looked at: the request pays a time check only.
    check.check(presented("old-key-0001"))
    clock.advance(1.0)
    with capture_logs() as events:
        check.check(presented("new-key-0002"))
    with pytest.raises(Forbidden):
        check.check(presented("old-key-0001"))
    assert [e["event"] for e in events] == ["api_key.reloaded"]
    assert events[0]["setting"] == "MLSTACK_API_KEY_FILE"
    assert not any("key-000" in str(v) for e in events for v in e.values())


def test_a_kubernetes_secret_swap_of_its_data_symlink_is_followed(tmp_path: Path) -> None:
    mount = SecretMount(tmp_path / "secret")
    mount.publish("first-key-01")
    clock = Clock()
    check = file_check(mount.path, clock)
    check.check(presented("first-key-01"))
    mount.publish("second-key-02")
    assert len([p for p in mount.root.iterdir() if p.name.startswith("..2")]) == 1  # old gone
    clock.advance()
    check.check(presented("second-key-02"))
    with pytest.raises(Forbidden):
        check.check(presented("first-key-01"))


def test_every_key_listed_in_the_file_is_accepted_and_the_first_is_the_one_sent(
    tmp_path: Path,
) -> None:
    """Rotation without a moment where a sender and a receiver disagree: add the new key,
    then put it first (senders switch), then drop the old one."""
    mount = SecretMount(tmp_path / "secret")
    mount.publish("old-key-0001")
    clock = Clock()
    source = KeySource(path=mount.path, setting="S", clock=clock)
    check = ApiKeyCheck(source, "x-api-key")
    for keys, sent in (
        (("old-key-0001", "new-key-0002"), "old-key-0001"),
        (("new-key-0002", "old-key-0001"), "new-key-0002"),
    ):
        mount.publish(*keys)
        clock.advance()
        assert source.current() == sent.encode()
        for key in keys:
            check.check(presented(key))
    mount.publish("new-key-0002")
    clock.advance()
    with pytest.raises(Forbidden):
        check.check(presented("old-key-0001"))
    assert source.accepted() == (b"new-key-0002",)


def _delete(path: Path) -> None:
    path.unlink()


def _empty(path: Path) -> None:
    path.write_text(" \n")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe-key")


BROKEN: list[tuple[str, Callable[[Path], None], str]] = [
    ("deleted", _delete, "No such file"),
    ("emptied", _empty, "the API key is empty"),
    ("a directory", _directory, "Is a directory"),
    ("not UTF-8", _not_utf8, "codec can't decode"),
]


@pytest.mark.parametrize(("how", "breaks", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_key_file_that_becomes_unusable_fails_closed_until_it_is_back(
    tmp_path: Path, how: str, breaks: Callable[[Path], None], reason: str
) -> None:
    path = tmp_path / "api-key"
    path.write_text("good-key-001\n")
    clock = Clock()
    check = file_check(path, clock)
    breaks(path)
    clock.advance()
    with capture_logs() as events:
        for _ in range(3):  # every request is refused; the event is logged once
            with pytest.raises(KeyUnavailable) as refused:
                check.check(presented("good-key-001"))
            assert refused.value.status == 503
            assert str(refused.value) == "the API key cannot be read (MLSTACK_API_KEY_FILE)"
            clock.advance()
        with pytest.raises(Unauthorized):  # no header: still 401, nothing said about the file
            check.check(presented(None))
    assert [e["event"] for e in events] == ["api_key.unreadable"]
    assert events[0]["log_level"] == "error" and reason in events[0]["error"]
    assert check.source is not None and reason in str(check.source.error)
    if path.is_dir():
        path.rmdir()
    path.write_text("good-key-001\n")
    clock.advance()
    with capture_logs() as events:
        check.check(presented("good-key-001"))
    assert [e["event"] for e in events] == ["api_key.reloaded"]


def test_an_unusable_key_is_refused_at_start_naming_its_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"MLSTACK_CONTROL_API_KEY_FILE {tmp_path / 'missing'}"):
        key_source(None, tmp_path / "missing", setting="MLSTACK_CONTROL_API_KEY_FILE")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="the control plane API key is empty"):
        key_source(None, tmp_path / "empty", setting="X", name="the control plane API key")
    with pytest.raises(ValueError, match="the API key is empty"):
        key_source("", None, setting="MLSTACK_API_KEY_FILE")


def test_both_services_settings_read_their_key_through_the_kernel(tmp_path: Path) -> None:
    from app.settings import Settings
    from control.settings import ControlSettings

    path = tmp_path / "key"
    path.write_text("k-123\n")
    for settings in (Settings(api_key_file=path), ControlSettings(api_key_file=path)):
        source = settings.api_key_source()
        assert isinstance(source, KeySource) and source.current() == b"k-123"
    literal = Settings(api_key="lit").api_key_source()
    assert literal is not None and literal.current() == b"lit"
    assert Settings().api_key_source() is None
    with pytest.raises(ValueError, match=f"MLSTACK_API_KEY_FILE {tmp_path / 'nope'}"):
        Settings(api_key_file=tmp_path / "nope").api_key_source()
    shipped = Settings(prediction_log_url="http://c", prediction_log_api_key_file=path)
    log_settings = shipped.prediction_log()
    assert log_settings is not None and log_settings.api_key is not None
    assert log_settings.api_key.current() == b"k-123"


def test_every_error_the_service_answers_has_a_source_the_prediction_log_accepts() -> None:
    import app.errors
    from control.schemas import ErrorSource

    accepted = set(typing.get_args(ErrorSource))
    errors = [
        value
        for value in vars(app.errors).values()
        if isinstance(value, type) and issubclass(value, ServiceError) and value is not ServiceError
    ]
    assert KeyUnavailable in errors and len(errors) > 8
    assert {e.__name__: e.source for e in errors if e.source not in accepted} == {}


def test_both_services_errors_are_the_kernels() -> None:
    import app.errors
    import control.errors

    for name in ("Unauthorized", "Forbidden", "PayloadTooLarge", "InvalidInput", "MalformedJson"):
        assert getattr(app.errors, name) is getattr(control.errors, name)
    assert control.errors.ControlError is app.errors.ServiceError is ServiceError
    assert issubclass(control.errors.NotFound, ServiceError)


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        (b"abc-123", True),
        (b"x" * 128, True),
        (b"x" * 129, False),
        (b"", False),
        (b"bad\nid", False),
        (b"tab\tid", False),
    ],
    ids=["plain", "128 characters", "129 characters", "empty", "newline", "tab"],
)
def test_a_sane_incoming_request_id_is_kept_and_any_other_replaced(
    incoming: bytes, kept: bool
) -> None:
    rid = request_id([(b"x-request-id", incoming)])
    if kept:
        assert rid == incoming.decode()
    else:
        assert len(rid) == 32 and int(rid, 16) >= 0
    assert request_id([]) != request_id([])


def _receiver(*messages: Message) -> Any:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def _body(chunk: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": chunk, "more_body": more}


def test_the_body_reader_joins_chunks_and_refuses_past_the_limit_naming_its_setting() -> None:
    read = asyncio.run
    assert read(read_body(_receiver(_body(b"ab", True), _body(b"cd")), b"4", 4, "S")) == b"abcd"
    with pytest.raises(PayloadTooLarge) as declared:
        read(read_body(_receiver(_body(b"")), b"5", 4, "MLSTACK_CONTROL_MAX_BODY_BYTES"))
    assert str(declared.value) == (
        "body of 5 bytes is over the limit of 4 bytes (MLSTACK_CONTROL_MAX_BODY_BYTES)"
    )
    assert declared.value.status == 413
    streamed = _receiver(_body(b"abc", True), _body(b"de", True), _body(b"never"))
    with pytest.raises(PayloadTooLarge, match="body of 5 bytes is over the limit of 4 bytes"):
        read(read_body(streamed, None, 4, "S"))
    with pytest.raises(ClientDisconnected):
        read(read_body(_receiver(_body(b"a", True), {"type": "http.disconnect"}), None, 4, "S"))


def test_the_log_set_up_writes_json_lines_to_its_stream_and_quiets_the_named_loggers() -> None:
    script = (
        "import logging, sys\n"
        "import structlog\n"
        "from kernel import log\n"
        "log.configure('info', sys.stderr.buffer, quiet=['noisy'])\n"
        "structlog.get_logger('t').info('thing.done', n=1)\n"
        "structlog.get_logger('t').debug('thing.hidden')\n"
        "logging.getLogger('noisy').info('noisy info')\n"
        "logging.getLogger('noisy').warning('noisy warning')\n"
        "logging.getLogger('other').info('other info')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert '"event":"thing.done"' in lines[0] and '"n":1' in lines[0]
    assert '"level":"info"' in lines[0]
    assert lines[1:] == ["noisy warning", "other info"]
