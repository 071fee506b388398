"""Optional API-key check for /predict and /model (constant-time comparison)."""

from __future__ import annotations

import hmac

from app.errors import Forbidden, Unauthorized


class ApiKeyCheck:
    def __init__(self, key: bytes | None, header: str) -> None:
        self.key = key
        self.header = header.lower().encode("latin-1")

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def check(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Raise Unauthorized without a key, Forbidden with a wrong one."""
        if self.key is None:
            return
        for name, value in headers:
            if name == self.header:
                if hmac.compare_digest(value, self.key):
                    return
                raise Forbidden("API key is not valid")
        raise Unauthorized(f"missing API key header {self.header.decode()!r}")
