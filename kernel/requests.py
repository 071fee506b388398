"""What both services take from a request at the ASGI level: its id and its body (with a limit).

The ASGI types are spelled out here, once: the services' outer layers are bare ASGI.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kernel.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

REQUEST_ID_HEADER = b"x-request-id"
_MAX_REQUEST_ID = 128  # the prediction log's request_id column


class ClientDisconnected(Exception):
    """The client went away before sending its whole body."""


def request_id(headers: Headers) -> str:
    """The incoming `X-Request-ID` when it is 1-128 printable characters, else a new random
    one (32 hex digits)."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if 0 < len(text) <= _MAX_REQUEST_ID and text.isprintable():
                return text
            break
    return os.urandom(16).hex()


async def read_body(receive: Receive, declared: bytes | None, limit: int, setting: str) -> bytes:
    """The whole request body. Raises PayloadTooLarge past `limit` bytes (checked on the
    declared content-length first; `setting` names the limit's environment variable in the
    message) and ClientDisconnected when the client leaves."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(_too_large(int(declared), limit, setting))
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_large(size, limit, setting))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int, setting: str) -> str:
    return f"body of {size} bytes is over the limit of {limit} bytes ({setting})"
