"""The outermost ASGI layer: request id, in-flight gauge, request metrics, one log line per
request, the prediction record; dispatches the prediction routes of every protocol straight to
the pipeline and everything else to FastAPI."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog

from app import metrics
from app.asgi import json_response, send_response
from app.pipeline import Pipeline, Protocol, RequestContext
from app.prediction_log import PredictionShipper, record
from kernel.requests import REQUEST_ID_HEADER, Message, Receive, Scope, Send, request_id

log = structlog.get_logger("app.request")

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})
_CACHED_PATHS = 1024  # paths remembered with their route; more are matched each time


def _compile(template: str) -> re.Pattern[str]:
    """`/v1/models/{name}:predict` → a regex with one named group per parameter."""
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{pattern}$")


class RouteTable:
    """Path → (route template, path parameters), from the application's OpenAPI paths and
    its top-level routes (the documentation pages).

    Route labels are these templates (e.g. `/v2/models/{name}/infer`), never request paths."""

    def __init__(self, api: Any) -> None:
        table: dict[str, set[str]] = {}
        for template, operations in api.openapi()["paths"].items():
            table.setdefault(template, set()).update(m.upper() for m in operations)
        for route in api.routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                table.setdefault(path, set()).update(getattr(route, "methods", None) or ())
        self._routes: list[tuple[re.Pattern[str], str, frozenset[str]]] = [
            (_compile(template), template, frozenset(methods))
            for template, methods in table.items()
        ]
        self._cache: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}

    @property
    def templates(self) -> frozenset[str]:
        return frozenset(template for _, template, _ in self._routes)

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        key = (method, path)
        found = self._cache.get(key)
        if found is not None:
            return found
        found = self._find(method, path)
        if len(self._cache) < _CACHED_PATHS:
            self._cache[key] = found
        return found

    def _find(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        fallback: tuple[str, dict[str, str]] | None = None
        for regex, template, methods in self._routes:
            matched = regex.match(path)
            if matched is None:
                continue
            if method in methods or not methods:
                return template, matched.groupdict()
            fallback = fallback or (template, {})
        return fallback or ("other", {})


class _Recorder:
    """The `send` of a FastAPI route: adds the request id header and notes the status."""

    __slots__ = ("id_header", "send", "started", "status")

    def __init__(self, send: Send, id_header: tuple[bytes, bytes]) -> None:
        self.send = send
        self.id_header = id_header
        self.status = 500
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.started = True
            message["headers"] = [*message.get("headers", ()), self.id_header]
        await self.send(message)


class Instrumented:
    def __init__(
        self,
        api: Any,
        pipeline: Pipeline,
        protocols: dict[str, Protocol[Any]],
        log_features: bool,
        shipper: PredictionShipper | None = None,
    ) -> None:
        """`protocols` maps each POST prediction route's template to its protocol."""
        self.api = api
        self.pipeline = pipeline
        self.protocols = protocols
        self.log_features = log_features
        self.shipper = shipper
        self.route_table = RouteTable(api)
        missing = set(protocols) - self.route_table.templates
        if missing:
            raise ValueError(f"prediction routes without an OpenAPI entry: {sorted(missing)}")
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}

    # Starlette/FastAPI attributes (state, routes…) stay reachable through the wrapper.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        route, params = self.route_table.match(method, path)
        method_label = method if method in METHODS else "other"
        headers = scope["headers"]
        rid = request_id(headers)
        context = RequestContext(rid, route, params, self.log_features)
        scope["mlstack"] = context
        id_header = (REQUEST_ID_HEADER, rid.encode("latin-1"))
        status = 500
        response_started = False
        metrics.IN_FLIGHT.inc()
        try:
            protocol = self.protocols.get(route) if method == "POST" else None
            if protocol is not None:
                # The pipeline adds the id header itself and says its status: no send wrapper.
                await self.pipeline(protocol, context, headers, receive, send, id_header)
                status = context.status or status
                response_started = context.status != 0
            else:
                store = getattr(self.api.state, "store", None)
                if store is not None and store.current is not None:
                    context.model_version = store.current.version
                recorder = _Recorder(send, id_header)
                try:
                    await self.api(scope, receive, recorder)
                finally:
                    status = recorder.status
                    response_started = recorder.started
        except Exception:
            log.exception("request.crashed", request_id=rid, route=route)
            context.error = "internal error"
            context.error_source = "model"
            if not response_started and not context.status:
                await send_response(
                    send, json_response(500, {"detail": "internal error"}), (id_header,)
                )
            status = 500
        finally:
            metrics.IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            self._count(route, method_label, status, elapsed)
            shipper = self.shipper
            if shipper is not None and context.predicting:
                shipper.add(record(context, status, elapsed, shipper.features))
            log.info(
                "request.finished",
                request_id=rid,
                method=method,
                route=route,
                path=path,
                status=status,
                latency_ms=round(elapsed * 1000, 3),
                **context.log_fields(),
            )

    def _count(self, route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = metrics.REQUESTS.labels(route, method, str(status))
        counter.inc()
        duration = self._durations.get(key[:2])
        if duration is None:
            duration = self._durations[key[:2]] = metrics.REQUEST_DURATION.labels(route, method)
        metrics.observe_one(duration, elapsed)
