"""The prediction log over HTTP: batches in from the inference service, pages out."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from control import metrics
from control.deps import LogDep, SettingsDep, read_body
from control.errors import InvalidInput, MalformedJson, PayloadTooLarge, describe
from control.routes.keyed import KeyedRoute
from control.schemas import (
    AUTH,
    INVALID,
    NOT_JSON,
    Accepted,
    Agreement,
    PredictionBatch,
    PredictionPage,
    PredictionQuery,
    errors,
)

# control.errors answers a failing database with 503.
_DATABASE_FAILED = {503: "The prediction log's database failed"}

router = APIRouter(
    prefix="/v1/predictions",
    tags=["predictions"],
    route_class=KeyedRoute,
    responses=errors(AUTH, _DATABASE_FAILED),
)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The batch's JSON schema with its `$defs` written in place: OpenAPI resolves `$ref`s
    from the document's root, where pydantic's local definitions are not."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return dict(walk(schema))


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    summary="Store a batch of prediction records (all or none)",
    responses=errors(
        NOT_JSON,
        {
            413: "Too many records or too large a body",
            422: "A record is invalid (named, e.g. records[3].status): the batch is refused whole",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _inlined(PredictionBatch.model_json_schema())}
            },
        }
    },
)
async def ingest(request: Request, store: LogDep, settings: SettingsDep) -> JSONResponse:
    try:
        body = await read_body(request, settings.max_body_bytes)
    except PayloadTooLarge:
        metrics.BATCHES.labels("too_large").inc()
        raise
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        metrics.BATCHES.labels("invalid").inc()
        raise MalformedJson(f"body is not valid JSON: {exc}") from None
    records = data.get("records") if isinstance(data, dict) else None
    if isinstance(records, list) and len(records) > settings.max_batch_records:
        metrics.BATCHES.labels("too_large").inc()
        raise PayloadTooLarge(
            f"{len(records)} records, over the limit of {settings.max_batch_records} per batch "
            "(MLSTACK_CONTROL_MAX_BATCH_RECORDS)"
        )
    try:
        batch = PredictionBatch.model_validate(data)
    except ValidationError as exc:
        metrics.BATCHES.labels("invalid").inc()
        raise InvalidInput(describe(exc.errors())) from None
    await run_in_threadpool(store.add, batch.records)
    metrics.BATCHES.labels("accepted").inc()
    for record in batch.records:
        metrics.RECORDS_INGESTED.labels(record.outcome).inc()
    return JSONResponse({"accepted": len(batch.records)}, status_code=202)


@router.get(
    "",
    response_model=PredictionPage,
    summary="Filtered page of records, newest first",
    responses=errors(INVALID),
)
def search(query: Annotated[PredictionQuery, Query()], store: LogDep) -> PredictionPage:
    total, items = store.query(query)
    return PredictionPage(total=total, items=items)


@router.get(
    "/agreement",
    response_model=Agreement,
    summary="How often a shadowed version agreed with the answers, from its shadow records",
    responses=errors(INVALID),
)
def agreement(
    store: LogDep,
    model_version: Annotated[str, Query(min_length=1, max_length=64)],
    live_version: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    since: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
) -> Agreement:
    return store.agreement(model_version, live_version, since)
