"""GET /model: what is being served."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.deps import ApiKeyDep, StoreDep
from app.errors import NotReady

router = APIRouter()


class ModelDescription(BaseModel):
    name: str
    alias: str
    version: str
    run_id: str
    source: str
    predictor: str
    features: list[str]
    classes: list[str]
    metrics: dict[str, float]
    dataset: str | None  # None: the version carries none of mlstack's extras
    dataset_sha256: str | None
    drift_baseline: bool
    loaded_at: float


@router.get("/model", response_model=ModelDescription, summary="The model being served")
async def describe_model(store: StoreDep, _: ApiKeyDep) -> ModelDescription:
    model = store.current
    if model is None:
        raise NotReady("no model is loaded yet")
    manifest = model.manifest
    return ModelDescription(
        name=model.ref.name,
        alias=model.ref.alias,
        version=model.version,
        run_id=model.ref.run_id,
        source=model.ref.source,
        predictor=model.predictor.kind,
        features=list(model.features),
        classes=list(model.classes),
        metrics={**(manifest.metrics if manifest else {}), **model.run_metrics},
        dataset=manifest.dataset if manifest else None,
        dataset_sha256=manifest.dataset_sha256 if manifest else None,
        drift_baseline=model.drift is not None,
        loaded_at=model.loaded_at,
    )
