"""API keys: where a service's key comes from, and the constant-time check of a request's key.

A key in a file (a mounted Kubernetes Secret) is looked at again at most once a second, on the
request path, so a rotated Secret takes effect without a restart. The file may list several
keys, one per line: each is accepted, and the first is the one a client sends, so a key can be
rotated without a moment where a sender and a receiver disagree. A file that becomes unreadable
or empty fails closed: requests with a key are refused (503) until it is readable again.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from kernel.errors import Forbidden, KeyUnavailable, Unauthorized
from kernel.requests import Headers

log = structlog.get_logger("kernel.keys")

CHECK_SECONDS = 1.0  # how stale a rotated key may be


class KeySource:
    """The keys in force: a fixed one, or the lines of a file (whitespace stripped, blank lines
    skipped).

    A file is re-read when it is asked for and `check_seconds` have passed since it was last
    read: the time check is all a request pays otherwise. The file is read, not only stat'ed:
    a same-size rewrite within one timestamp tick leaves size and mtime unchanged. Kubernetes
    swaps a Secret's `..data` symlink atomically; opening the path follows it."""

    __slots__ = ("_clock", "_due", "_every", "_keys", "_lock", "error", "name", "path", "setting")

    def __init__(
        self,
        key: bytes | None = None,
        *,
        path: Path | None = None,
        setting: str = "",
        name: str = "the API key",
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A fixed `key`, or the file at `path` (`setting` is its environment variable, named
        in messages and log events). Raises ValueError when the key is empty or the file
        cannot be read now."""
        self.path = path
        self.setting = setting
        self.name = name
        self.error: str | None = None  # why the file's keys are not in force, if they are not
        self._every = check_seconds
        self._clock = clock
        self._lock = threading.Lock()  # sync FastAPI dependencies run in a thread pool
        keys = self._read() if path is not None else (key,) if key else ()
        if not keys:
            raise ValueError(f"{name} is empty")
        self._keys: tuple[bytes, ...] | None = keys
        self._due = clock() + check_seconds

    def accepted(self) -> tuple[bytes, ...]:
        """Every key a request may present. Raises KeyUnavailable while the file is unreadable
        or empty."""
        if self.path is not None and self._clock() >= self._due:
            self._refresh()
        keys = self._keys
        if keys is None:
            raise KeyUnavailable(f"{self.name} cannot be read ({self.setting})")
        return keys

    def current(self) -> bytes:
        """The key a client sends (the file's first). Raises KeyUnavailable as `accepted`."""
        return self.accepted()[0]

    def _read(self) -> tuple[bytes, ...]:
        assert self.path is not None
        try:
            text = self.path.read_text()
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"{self.setting} {self.path}: {exc}") from exc
        return tuple(line.strip().encode() for line in text.splitlines() if line.strip())

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is reading it; this request uses the keys in force
        try:
            self._due = self._clock() + self._every
            try:
                keys = self._read()
                if not keys:
                    raise ValueError(f"{self.setting} {self.path}: {self.name} is empty")
            except ValueError as exc:
                if self.error != str(exc):
                    log.error("api_key.unreadable", setting=self.setting, error=str(exc))
                self._keys, self.error = None, str(exc)
                return
            if keys != self._keys:
                log.info(
                    "api_key.reloaded", setting=self.setting, path=str(self.path), keys=len(keys)
                )
            self._keys, self.error = keys, None
        finally:
            self._lock.release()


def key_source(
    literal: str | None, path: Path | None, *, setting: str, name: str = "the API key"
) -> KeySource | None:
    """The key from `literal` or from the file at `path` (settings allow one of them), None
    when neither is set. Raises ValueError when the key is empty or the file unreadable."""
    if literal is not None:
        return KeySource(literal.encode(), name=name)
    if path is not None:
        return KeySource(path=path, setting=setting, name=name)
    return None


class ApiKeyCheck:
    """The check of one request's key header against the keys in force (constant time)."""

    __slots__ = ("header", "source")

    def __init__(self, source: KeySource | None, header: str) -> None:
        self.source = source
        self.header = header.lower().encode("latin-1")

    @property
    def enabled(self) -> bool:
        return self.source is not None

    def check(self, headers: Headers) -> None:
        """Raise Unauthorized without the header, Forbidden with a wrong key, KeyUnavailable
        when the service's key file cannot be read (a request is never let through then)."""
        source = self.source
        if source is None:
            return
        for name, value in headers:
            if name == self.header:
                for key in source.accepted():
                    if hmac.compare_digest(value, key):
                        return
                raise Forbidden("API key is not valid")
        raise Unauthorized(f"missing API key header {self.header.decode()!r}")
