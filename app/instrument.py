"""The outermost ASGI layer: request id, in-flight gauge, request metrics, one log line per
request; dispatches POST /predict straight to its handler and everything else to FastAPI."""

from __future__ import annotations

import os
import time
from typing import Any

import structlog

from app import metrics
from app.prediction_log import PredictionShipper
from app.routes.predict import PredictEndpoint, Receive, Scope, Send, send_json

log = structlog.get_logger("app.request")

# Route labels come from this table, never from the request path.
ROUTES = frozenset(
    {
        "/predict",
        "/model",
        "/drift",
        "/livez",
        "/readyz",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
            break
    return os.urandom(16).hex()


class Instrumented:
    def __init__(
        self,
        api: Any,
        predict: PredictEndpoint,
        log_features: bool,
        shipper: PredictionShipper | None = None,
        ship_features: bool = False,
        model_name: str = "",
    ) -> None:
        self.api = api
        self.predict = predict
        self.log_features = log_features
        self.shipper = shipper
        self.ship_features = ship_features
        self.model_name = model_name
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
        route = path if path in ROUTES else "other"
        method_label = method if method in METHODS else "other"
        request_id = _request_id(scope["headers"])
        context: dict[str, Any] = {}
        if self.log_features:
            context["log_features"] = True
        scope["mlstack"] = context
        record: dict[str, Any] | None = None
        if self.shipper is not None and route == "/predict":
            record = {"rows": 0, "labels": [], "confidences": [], "error_source": None}
            if self.ship_features:
                record["features"] = None
            scope["mlstack_record"] = record
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        state = {"status": 500, "started": False}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            if route == "/predict" and method == "POST":
                await self.predict(scope, receive, send_with_id)
            else:
                store = getattr(self.api.state, "store", None)
                if store is not None and store.current is not None:
                    context["model_version"] = store.current.version
                await self.api(scope, receive, send_with_id)
        except Exception:
            log.exception("request.crashed", request_id=request_id, route=route)
            context["error"] = "internal error"
            if record is not None:
                record["error_source"] = "model"
            if not state["started"]:
                await send_json(send_with_id, 500, {"detail": "internal error"})
            state["status"] = 500
        finally:
            metrics.IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            status = int(state["status"])
            self._count(route, method_label, status, elapsed)
            if record is not None and self.shipper is not None:
                record["request_id"] = request_id
                record["time"] = time.time()
                record["model_name"] = self.model_name
                record["model_version"] = context.get("model_version")
                record["status"] = status
                record["outcome"] = "success" if status < 400 else "error"
                record["latency_ms"] = elapsed * 1000
                self.shipper.add(record)
            log.info(
                "request.finished",
                request_id=request_id,
                method=method,
                route=route,
                path=path,
                status=status,
                latency_ms=round(elapsed * 1000, 3),
                **context,
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
        duration.observe(elapsed)
