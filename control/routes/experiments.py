"""Experiments, each with its best training round."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from control import registry
from control.deps import ClientDep, SettingsDep
from control.routes.keyed import KeyedRoute
from control.schemas import AUTH, INVALID, REGISTRY_FAILED, ExperimentView, errors

router = APIRouter(
    prefix="/v1/experiments",
    tags=["experiments"],
    route_class=KeyedRoute,
    responses=errors(AUTH),
)


@router.get(
    "",
    response_model=list[ExperimentView],
    summary="Experiments and their best runs",
    responses=errors(INVALID, REGISTRY_FAILED),
)
def experiments(
    client: ClientDep,
    settings: SettingsDep,
    metric: Annotated[
        str | None, Query(description="Held-out metric that ranks runs (default: setting).")
    ] = None,
) -> list[ExperimentView]:
    return registry.list_experiments(client, metric or settings.main_metric)
