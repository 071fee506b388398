"""The `mlstack` command's HTTP client of the control plane."""

from __future__ import annotations

from typing import Any

import httpx


class ControlPlaneError(Exception):
    """The control plane answered with an error (`status`) or could not be reached (None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ControlClient:
    def __init__(self, url: str, key: bytes | None, header: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self._headers = {header: key.decode()} if key is not None else {}
        self._timeout = timeout

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET `path` and return the decoded JSON. Raises ControlPlaneError."""
        try:
            response = httpx.get(
                f"{self.url}{path}", params=params, headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"control plane at {self.url} is unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ControlPlaneError(
                f"control plane answered {response.status_code}: {detail}", response.status_code
            )
        return response.json()
