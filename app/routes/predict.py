"""POST /predict: the hot path, as a bare ASGI handler.

read body → orjson → validate names and values → float32 array → predictor → orjson.
No pandas, no per-request pydantic model, no I/O, no lock. Errors are typed (app.errors)
and answered with their status and a message naming the field or limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.auth import ApiKeyCheck
from app.errors import NotReady, PayloadTooLarge, ServiceError, UnsupportedMediaType
from app.metrics import observe_many
from app.model_store import ModelStore
from app.parsing import SPLIT, decode, to_rows

Scope = dict[str, Any]
Receive = Any
Send = Any


class ClientDisconnected(Exception):
    """The client went away before sending its whole body."""


class PredictEndpoint:
    def __init__(self, store: ModelStore, auth: ApiKeyCheck, max_body: int, max_rows: int):
        self.store = store
        self.auth = auth
        self.max_body = max_body
        self.max_rows = max_rows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = scope.setdefault("mlstack", {})
        record = scope.get("mlstack_record")  # set when the prediction log is on
        try:
            body = await self._read(scope, receive)
            model = self.store.current  # read once: this request finishes on this model
            if model is None:
                raise NotReady("no model is loaded yet")
            context["model_version"] = model.version
            rows, form = to_rows(decode(body), model.features, self.max_rows)
            proba = model.predictor.predict_proba(rows)
        except ServiceError as exc:
            context["error"] = str(exc)
            if record is not None:
                record["error_source"] = exc.source
            await send_json(send, exc.status, {"detail": str(exc)})
            return
        except ClientDisconnected:
            context["error"] = "client disconnected"
            return

        top = proba.argmax(axis=1).tolist()
        classes = model.classes
        if len(top) == 1:  # the common case, without numpy calls on a one-row array
            confidence = [float(proba[0, top[0]])]
            model.class_counters[top[0]].inc()
            model.confidence.observe(confidence[0])
        else:
            for index, count in enumerate(np.bincount(top, minlength=len(classes)).tolist()):
                if count:
                    model.class_counters[index].inc(count)
            best = proba[np.arange(len(top)), top]
            observe_many(model.confidence, best)
            confidence = best.tolist()
        if model.drift is not None:
            model.drift.add(rows)
        labels = [classes[i] for i in top]
        if form == SPLIT:
            # Columnar in, columnar out: the compact batch form skips per-row objects.
            response: dict[str, Any] = {
                "classes": classes,
                "labels": labels,
                "probabilities": proba,
            }
        else:
            # A dict comprehension builds these small dicts faster than dict(zip(...)).
            response = {
                "predictions": [
                    {"label": label, "probabilities": {c: p for c, p in zip(classes, row)}}  # noqa: B905
                    for label, row in zip(labels, proba.tolist())  # noqa: B905 (equal lengths)
                ]
            }
        if "log_features" in context:
            context["features"] = rows.tolist()
        if record is not None:
            record["rows"] = len(top)
            record["labels"] = labels
            record["confidences"] = confidence
            if "features" in record:
                record["features"] = rows.tolist()
        await send_json(
            send,
            200,
            {"model_name": model.ref.name, "model_version": model.version, **response},
            ((b"x-model-version", model.version.encode()),),
        )

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        headers = scope["headers"]
        self.auth.check(headers)
        content_type = b""
        declared = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                declared = value
        if not content_type.lower().startswith(b"application/json"):
            raise UnsupportedMediaType(
                f"content type must be application/json, got {content_type.decode('latin-1')!r}"
            )
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise PayloadTooLarge(self._too_large(int(declared)))
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(self._too_large(size))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, size: int) -> str:
        return (
            f"body of {size} bytes is over the limit of {self.max_body} bytes "
            "(MLSTACK_MAX_BODY_BYTES)"
        )


async def send_json(
    send: Send, status: int, payload: Any, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- OpenAPI documentation of the route above (the handler itself parses by hand) ---


class Prediction(BaseModel):
    label: str = Field(description="Most probable class.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


class SplitResponse(BaseModel):
    model_name: str
    model_version: str
    classes: list[str]
    labels: list[str]
    probabilities: list[list[float]]


class Batch(BaseModel):
    instances: list[dict[str, float]] = Field(
        description="Records of feature name → number (at most MLSTACK_MAX_BATCH_ROWS)."
    )


class SplitBatch(BaseModel):
    columns: list[str] = Field(description="Feature names, each once, in any order.")
    data: list[list[float]] = Field(
        description="Rows of values in `columns` order (at most MLSTACK_MAX_BATCH_ROWS). "
        "The answer is columnar: `classes`, `labels`, `probabilities`."
    )


docs_router = APIRouter()


@docs_router.post(
    "/predict",
    response_model=PredictResponse | SplitResponse,
    summary="Predict one record or a batch",
    responses={
        400: {"description": "Malformed JSON"},
        401: {"description": "Missing API key (when auth is on)"},
        403: {"description": "Wrong API key"},
        413: {"description": "Body over MLSTACK_MAX_BODY_BYTES"},
        415: {"description": "Content type is not application/json"},
        422: {
            "description": "Missing, unknown, non-numeric or non-finite feature; empty or "
            "oversized batch"
        },
        503: {"description": "No model loaded yet"},
    },
)
async def predict_docs(
    body: dict[str, float] | Batch | SplitBatch,
) -> PredictResponse | SplitResponse:  # pragma: no cover
    """Feature names come from the served model's signature (see GET /model). The response
    has header `x-model-version`. Served by the handler above, never by this function."""
    raise NotImplementedError
