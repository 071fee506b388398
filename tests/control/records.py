"""Prediction records as the inference service sends them, and the calls that send and read
them."""

from __future__ import annotations

from typing import Any

import httpx

KEY = "control-secret"
AUTH = {"x-api-key": KEY}


def record(request_id: str, time: float, /, **fields: Any) -> dict[str, Any]:
    """A valid record as the inference service sends it: a one-row success unless `fields`
    say otherwise (an error gets no labels)."""
    status = fields.get("status", 200)
    success = not isinstance(status, int) or status < 400
    out: dict[str, Any] = {
        "request_id": request_id,
        "time": time,
        "model_name": "iris",
        "model_version": "1",
        "status": status,
        "outcome": "success" if success else "error",
        "error_source": None if success else "validation",
        "latency_ms": 1.5,
        "rows": 1 if success else 0,
        "labels": ["setosa"] if success else [],
        "confidences": [0.97] if success else [],
        "features": None,
    }
    out.update(fields)
    return out


def post(
    url: str, records: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/predictions",
        json={"records": records},
        headers=AUTH if headers is None else headers,
        timeout=30,
    )


def page(url: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/predictions", params=params, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
