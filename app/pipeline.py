"""The one request pipeline of every prediction route: parse → check → predict → observe →
render.

A protocol (`/predict`, Open Inference Protocol V2, KServe V1, MLflow `/invocations`) is a
parser and a renderer only. Everything else is here, once: the API key, the body limit, the
model read once per request, the training-range check, metrics, drift and what the prediction
log and the request log line need (the `RequestContext`).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from app.asgi import Response, send_response
from app.errors import ModelNotFound, NotReady, ServiceError
from app.metrics import observe_many, observe_one
from app.model_store import LoadedModel, ModelStore
from app.settings import Limits
from app.shadow import Job, ShadowQueue, canary_bucket
from kernel.keys import ApiKeyCheck
from kernel.requests import ClientDisconnected, Headers, Receive, Send, read_body

S = TypeVar("S")


class RequestContext:
    """What the steps of one request share, and what its log line and prediction record say.

    Created by the outer ASGI layer for every request; the pipeline fills it in. (Slots, no
    per-instance dict: one object fewer for the garbage collector on every request.)"""

    __slots__ = (
        "confidences",
        "error",
        "error_source",
        "labels",
        "log_features",
        "model_name",
        "model_version",
        "params",
        "predicting",
        "request_id",
        "route",
        "rows",
        "status",
    )

    def __init__(
        self, request_id: str, route: str, params: dict[str, str], log_features: bool = False
    ) -> None:
        self.request_id = request_id
        self.route = route
        self.params = params  # from the route's path template
        self.log_features = log_features
        self.predicting = False  # a prediction route: its outcome goes to the prediction log
        self.status = 0  # the status the pipeline answered with (0: none yet)
        self.model_name: str | None = None
        self.model_version: str | None = None
        self.error: str | None = None
        self.error_source: str | None = None
        self.rows: np.ndarray | None = None
        self.labels: list[str] | None = None
        self.confidences: list[float] | None = None

    def fail(self, exc: ServiceError) -> None:
        self.error = str(exc)
        self.error_source = exc.source

    def log_fields(self) -> dict[str, Any]:
        """The request log line's model and outcome fields (features only when asked)."""
        fields: dict[str, Any] = {}
        if self.model_version is not None:
            fields["model_version"] = self.model_version
        if self.error is not None:
            fields["error"] = self.error
        if self.log_features and self.rows is not None:
            fields["features"] = self.rows.tolist()
        return fields


class Request(NamedTuple):
    """What a parser is given: the raw body and headers, and the served model."""

    body: bytes
    headers: Headers
    content_type: bytes
    model: LoadedModel
    limits: Limits


class Prediction(NamedTuple):
    """The model's answer for the parsed rows."""

    proba: np.ndarray  # float32 [rows, classes], columns in `model.classes` order
    top: list[int]  # index of the predicted class of each row
    labels: list[str]
    confidence: list[float]  # probability of the predicted class of each row


class Protocol(ABC, Generic[S]):
    """One wire protocol: a parser to rows and a renderer of the prediction.

    `S` is what the parser keeps for the renderer (the requested outputs, the body's form)."""

    name: str  # also the key of its example body in GET /model
    # Templates of the protocol's other routes (metadata, health): their errors take the
    # protocol's form too (app.protocols.error_form).
    route_prefixes: tuple[str, ...] = ()

    @abstractmethod
    def parse(self, request: Request) -> tuple[np.ndarray, S]:
        """Float32 rows [n, features] in the model's feature order, and the renderer's state.

        Raises a ServiceError naming the field, shape or limit at fault."""

    @abstractmethod
    def render(self, state: S, prediction: Prediction, model: LoadedModel) -> Response: ...

    @abstractmethod
    def refuse(self, exc: ServiceError) -> Response:
        """The protocol's own error body for `exc`."""

    def example(self, model: LoadedModel, rows: np.ndarray) -> Any:
        """A request body of this protocol for `rows`, for clients to try the model with."""
        return None


def check_target(params: dict[str, str], model: LoadedModel) -> None:
    """A route naming a model (and a version) must name the one being served."""
    name = params.get("name")
    if name is not None and name != model.ref.name:
        raise ModelNotFound(
            f"model {name!r} is not served here: this server serves {model.ref.name!r}"
        )
    version = params.get("version")
    if version is not None and version != model.version:
        raise ModelNotFound(
            f"version {version!r} of {name!r} is not served here: the version being served is "
            f"{model.version!r}"
        )


def served_model(
    store: ModelStore, params: dict[str, str], not_ready: str | None = None
) -> LoadedModel:
    """The live model, for a metadata or readiness route naming it (`name`, `version`).

    Raises ModelNotFound for another model or version (also before any model is loaded, from
    the configured name) and NotReady, with `not_ready` or the last load error, without one."""
    model = store.current
    if model is None:
        name, served = params.get("name"), store.settings.model_name
        if name is not None and name != served:
            raise ModelNotFound(f"model {name!r} is not served here: this server serves {served!r}")
        raise NotReady(not_ready or store.last_error or "no model is loaded yet")
    check_target(params, model)
    return model


def predict(model: LoadedModel, rows: np.ndarray) -> Prediction:
    proba = model.predictor.predict_proba(rows)
    top = proba.argmax(axis=1).tolist()
    classes = model.classes
    if len(top) == 1:  # the common case, without numpy calls on a one-row array
        confidence = [float(proba[0, top[0]])]
    else:
        confidence = proba[np.arange(len(top)), top].tolist()
    return Prediction(proba, top, [classes[i] for i in top], confidence)


def check_ranges(model: LoadedModel, rows: np.ndarray, refuse: bool) -> None:
    """Count the values outside their feature's training range; with `refuse`, raise
    OutOfRange naming the first. Nothing to do for a version without ranges."""
    ranges = model.ranges
    if ranges is None:
        return
    outside = ranges.count(rows)
    if outside is not None and refuse:
        raise ranges.refusal(rows, outside)


def observe(model: LoadedModel, rows: np.ndarray, prediction: Prediction) -> None:
    """Per-class counts, the confidence histogram and the drift window."""
    top = prediction.top
    if len(top) == 1:
        model.class_counters[top[0]].inc()
        observe_one(model.confidence, prediction.confidence[0])
    else:
        for index, count in enumerate(np.bincount(top, minlength=len(model.classes)).tolist()):
            if count:
                model.class_counters[index].inc(count)
        observe_many(model.confidence, np.asarray(prediction.confidence))
    if model.drift is not None:
        model.drift.add(rows)


class Pipeline:
    """Serves one prediction request of any protocol."""

    def __init__(
        self,
        store: ModelStore,
        auth: ApiKeyCheck,
        limits: Limits,
        shadow: ShadowQueue | None = None,
    ) -> None:
        self.store = store
        self.auth = auth
        self.limits = limits
        self.shadow = shadow
        self._model_name = store.settings.model_name
        self._refuse_out_of_range = store.settings.refuse_out_of_range
        header = store.settings.canary_header
        self._canary_header = header.lower().encode("latin-1") if header else None

    def _canary(self, context: RequestContext, headers: Headers, percent: float) -> bool:
        """Whether this request goes to the canary: a stable pick by its key (the named
        header's value, else its request id), so a key always gets the same side."""
        key = None
        wanted = self._canary_header
        if wanted is not None:
            for name, value in headers:
                if name == wanted:
                    key = value
                    break
        if key is None:
            key = context.request_id.encode("latin-1", "replace")
        return canary_bucket(key) < percent * 100

    async def __call__(
        self,
        protocol: Protocol[Any],
        context: RequestContext,
        headers: Headers,
        receive: Receive,
        send: Send,
        id_header: tuple[bytes, bytes],
    ) -> None:
        """Answer one request; `context.status` says with which status (the answer carries
        `id_header` and the served version)."""
        context.predicting = True
        context.model_name = self._model_name
        try:
            self.auth.check(headers)
            content_type, declared = _content_headers(headers)
            body = await read_body(
                receive, declared, self.limits.max_body_bytes, "MLSTACK_MAX_BODY_BYTES"
            )
            store = self.store
            model = store.current  # read once: this request finishes on this model
            if model is None:
                raise NotReady("no model is loaded yet")
            shadow = store.shadow
            if shadow is not None:
                traffic = store.traffic
                canary, sampled = traffic.canary_percent, traffic.shadow_percent
                # A route naming a version (V2's /versions/{version}) gets that version.
                named = context.params.get("version") if context.params else None
                if named == shadow.version or (
                    named is None and canary and self._canary(context, headers, canary)
                ):
                    model, shadow = shadow, None  # the challenger answers this one itself
                elif not sampled or random.random() * 100 >= sampled:  # nosec B311: a sample
                    shadow = None
            context.model_name = model.ref.name
            context.model_version = model.version
            if context.params:  # a route naming the model (V2, KServe V1)
                check_target(context.params, model)
            rows, state = protocol.parse(Request(body, headers, content_type, model, self.limits))
            check_ranges(model, rows, self._refuse_out_of_range)
            prediction = predict(model, rows)
        except ServiceError as exc:
            context.fail(exc)
            refusal = protocol.refuse(exc)
            context.status = refusal.status
            await send_response(send, refusal, (id_header,))
            return
        except ClientDisconnected:
            context.error = "client disconnected"
            return
        observe(model, rows, prediction)
        context.rows = rows
        context.labels = prediction.labels
        context.confidences = prediction.confidence
        response = protocol.render(state, prediction, model)
        context.status = response.status
        await send_response(send, response, (*model.version_header, id_header))
        if shadow is not None and self.shadow is not None:  # after the answer is sent
            self.shadow.offer(
                Job(model, shadow, rows, prediction.top, prediction.confidence, context.request_id)
            )


def _content_headers(headers: Headers) -> tuple[bytes, bytes | None]:
    content_type = b""
    declared = None
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            declared = value
    return content_type, declared
