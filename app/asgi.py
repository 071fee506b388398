"""ASGI plumbing of the prediction routes: responses.

The prediction routes are bare ASGI handlers (no per-request Starlette objects); these are
the few primitives they share. The ASGI types, the request id and the body reader with its
limit are the kernel's (`kernel/requests.py`), shared with the control plane.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from kernel.requests import Send

JSON = b"application/json"


class Response(NamedTuple):
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


def json_response(
    status: int, payload: Any, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> Response:
    return Response(status, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), JSON, headers)


async def send_response(
    send: Send, response: Response, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (b"content-type", response.content_type),
                (b"content-length", str(len(response.body)).encode()),
                *response.headers,
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": response.body})
