"""Registered models: the registry at a glance, promotion and rollback."""

from __future__ import annotations

import pathlib
import tempfile
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import AfterValidator
from starlette.concurrency import run_in_threadpool

from control import registry
from control.deps import CallerDep, ClientDep, LogDep, SettingsDep, read_body
from control.errors import InvalidInput
from control.routes.keyed import KeyedRoute
from control.schemas import (
    AUTH,
    INVALID,
    NOT_JSON,
    REGISTRY_FAILED,
    VERSION_DIGITS,
    Adoption,
    AliasChange,
    AliasMove,
    ModelDetail,
    ModelSummary,
    Rollback,
    errors,
    version_number,
)
from training import contract

router = APIRouter(
    prefix="/v1/models", tags=["models"], route_class=KeyedRoute, responses=errors(AUTH)
)

Name = Annotated[str, Path(min_length=1, max_length=256)]


@router.get(
    "",
    response_model=list[ModelSummary],
    summary="Every registered model",
    responses=errors(REGISTRY_FAILED),
)
def models(client: ClientDep) -> list[ModelSummary]:
    return registry.list_models(client)


@router.get(
    "/{name}",
    response_model=ModelDetail,
    summary="One model: versions (newest first) with aliases, gate metric and decision",
    responses=errors(INVALID, {404: "No such model"}, REGISTRY_FAILED),
)
def model(name: Name, client: ClientDep, store: LogDep) -> ModelDetail:
    detail = registry.model_detail(client, name)
    champion = detail.aliases.get(contract.ALIAS_CHAMPION)
    challenger = detail.aliases.get(contract.ALIAS_CHALLENGER)
    if champion is not None and challenger is not None and champion != challenger:
        detail.challenger_agreement = store.agreement(challenger, champion)
    return detail


@router.put(
    "/{name}/aliases/{alias}",
    response_model=AliasChange,
    summary="Point an alias at a version (refused on a signature change unless forced)",
    responses=errors(
        NOT_JSON,
        {
            404: "No such model or version",
            409: "Refused: the signatures differ (without force), the version is not READY, "
            "or its live agreement is short of min_agreement over min_rows",
        },
        INVALID,
        REGISTRY_FAILED,
    ),
)
def move_alias(
    name: Name,
    alias: Annotated[str, Path(min_length=1, max_length=256)],
    body: AliasMove,
    client: ClientDep,
    by: CallerDep,
    store: LogDep,
) -> AliasChange:
    bar = None
    if body.min_agreement is not None:
        bar = registry.AgreementBar(body.min_agreement, body.min_rows, store.agreement)
    return registry.move_alias(client, name, alias, body.version, body.force, by, bar)


@router.post(
    "/{name}/rollback",
    response_model=AliasChange,
    summary="Move an alias (default champion) back to the version it held before",
    responses=errors(
        NOT_JSON,
        {
            404: "No such model",
            409: "No previous holder recorded, or the alias points to no version",
        },
        INVALID,
        REGISTRY_FAILED,
    ),
)
def rollback(
    name: Name, client: ClientDep, by: CallerDep, body: Annotated[Rollback | None, Body()] = None
) -> AliasChange:
    return registry.rollback(client, name, (body or Rollback()).alias, by)


@router.post(
    "/{name}/versions/{version}/adopt",
    response_model=Adoption,
    summary="Give a version mlstack's extras (ONNX export on parity, drift baseline, manifest)",
    description="The body is a CSV of sample rows with the version's feature columns (and the "
    "`target` column, when given, for the metrics). Idempotent; the model files never change.",
    responses=errors(
        {
            404: "No such model or version",
            413: "Body over MLSTACK_CONTROL_MAX_BODY_BYTES",
            422: "The version cannot be served, or the rows are unfit (named)",
        },
        REGISTRY_FAILED,
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def adopt(
    name: Name,
    version: Annotated[
        str,
        Path(min_length=1, max_length=10, pattern=VERSION_DIGITS),
        AfterValidator(version_number),
    ],
    request: Request,
    client: ClientDep,
    settings: SettingsDep,
    target: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> Adoption:
    body = await read_body(request, settings.max_body_bytes)
    if not body.strip():
        raise InvalidInput("body: send the sample rows as CSV (text/csv)")
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp) / "sample.csv"
        data.write_bytes(body)
        return await run_in_threadpool(registry.adopt, client, name, version, data, target)
