"""Registered models: the registry at a glance, promotion and rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from control import registry
from control.deps import ApiKeyDep, CallerDep, ClientDep
from control.schemas import AliasChange, AliasMove, ModelDetail, ModelSummary, Rollback

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ApiKeyDep])

Name = Annotated[str, Path(min_length=1, max_length=256)]


@router.get("", response_model=list[ModelSummary], summary="Every registered model")
def models(client: ClientDep) -> list[ModelSummary]:
    return registry.list_models(client)


@router.get(
    "/{name}",
    response_model=ModelDetail,
    summary="One model: versions (newest first) with aliases, gate metric and decision",
)
def model(name: Name, client: ClientDep) -> ModelDetail:
    return registry.model_detail(client, name)


@router.put(
    "/{name}/aliases/{alias}",
    response_model=AliasChange,
    summary="Point an alias at a version (refused on a signature change unless forced)",
    responses={404: {"description": "No such model or version"}, 409: {"description": "Refused"}},
)
def move_alias(
    name: Name,
    alias: Annotated[str, Path(min_length=1, max_length=256)],
    body: AliasMove,
    client: ClientDep,
    by: CallerDep,
) -> AliasChange:
    return registry.move_alias(client, name, alias, body.version, body.force, by)


@router.post(
    "/{name}/rollback",
    response_model=AliasChange,
    summary="Move an alias (default champion) back to the version it held before",
    responses={409: {"description": "No previous holder recorded"}},
)
def rollback(
    name: Name, client: ClientDep, by: CallerDep, body: Annotated[Rollback | None, Body()] = None
) -> AliasChange:
    return registry.rollback(client, name, (body or Rollback()).alias, by)
