"""The route class of every /v1 router: the API key is checked before the route reads anything.

FastAPI parses a JSON body before it runs a route's dependencies: with the key checked as a
dependency, a caller without one would be told what is wrong with its body (400, 422) rather
than 401.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from control.deps import require_api_key


class KeyedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def keyed(request: Request) -> Response:
            require_api_key(request)  # raises Unauthorized, Forbidden or KeyUnavailable
            return await handler(request)

        return keyed
