"""API-key check of every /v1 route (constant-time comparison)."""

from __future__ import annotations

import hmac

from control.errors import Forbidden, Unauthorized


class ApiKeyCheck:
    def __init__(self, key: bytes | None, header: str) -> None:
        self.key = key
        self.header = header.lower()

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def check(self, presented: str | None) -> None:
        """Raise Unauthorized without a key, Forbidden with a wrong one."""
        if self.key is None:
            return
        if presented is None:
            raise Unauthorized(f"missing API key header {self.header!r}")
        if not hmac.compare_digest(presented.encode("latin-1", "replace"), self.key):
            raise Forbidden("API key is not valid")
