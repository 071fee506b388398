"""The `mlstack` command's HTTP clients: of the control plane, and one GET of an inference
endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Reply:
    """An inference endpoint's answer to one GET: the decoded JSON body, or why there is none.
    `reached` is False when nothing answered (connection refused, timeout)."""

    body: Any = None
    error: str | None = None
    reached: bool = True
    status: int | None = None


def get_json(url: str, timeout: float) -> Reply:
    """GET `url`; never raises."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return Reply(error=f"{type(exc).__name__}: {exc}", reached=False)
    if response.status_code >= 400:
        return Reply(
            error=error_answer(response.status_code, response.text), status=response.status_code
        )
    try:
        return Reply(body=response.json())
    except ValueError:
        return Reply(error=f"answered {response.status_code} with a body that is not JSON")


def error_answer(status: int, body: str | bytes | None) -> str:
    """'answered 503: no model is loaded yet': the status and the body's `detail` (FastAPI) or
    `message` (a Kubernetes Status), else the body itself."""
    detail: Any = body
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        detail = decoded.get("detail") or decoded.get("message") or body
    if isinstance(detail, bytes):
        detail = detail.decode(errors="replace")
    if not detail:
        return f"answered {status}"
    text = " ".join(str(detail).split())  # one line, even for an HTML error page
    return f"answered {status}: {text[:200]}"
