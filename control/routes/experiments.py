"""Experiments, each with its best training round."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from control import registry
from control.deps import ApiKeyDep, ClientDep, SettingsDep
from control.schemas import ExperimentView

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], dependencies=[ApiKeyDep])


@router.get("", response_model=list[ExperimentView], summary="Experiments and their best runs")
def experiments(
    client: ClientDep,
    settings: SettingsDep,
    metric: Annotated[
        str | None, Query(description="Held-out metric that ranks runs (default: setting).")
    ] = None,
) -> list[ExperimentView]:
    return registry.list_experiments(client, metric or settings.main_metric)
