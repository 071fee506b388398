"""Request middleware: request id, request metrics by route template, one log line per request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from control import metrics
from kernel.requests import REQUEST_ID_HEADER, Message, Receive, Scope, Send, request_id

log = structlog.get_logger("control.request")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope["headers"])
        id_header = (REQUEST_ID_HEADER, rid.encode("latin-1"))
        state = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # The router stores the matched route in the scope: its template is the label,
            # never the path (which carries model names).
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            status = int(state["status"])
            metrics.REQUESTS.labels(route, method, str(status)).inc()
            metrics.REQUEST_DURATION.labels(route, method).observe(elapsed)
            if route not in ("/metrics", "/livez", "/readyz"):
                log.info(
                    "request.finished",
                    request_id=rid,
                    method=scope["method"],
                    route=route,
                    path=scope["path"],
                    status=status,
                    latency_ms=round(elapsed * 1000, 3),
                )
