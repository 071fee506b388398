"""GET /model: what is being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.deps import ApiKeyDep, ProtocolsDep, StoreDep
from app.errors import NotReady
from app.model_store import LoadedModel, ModelStore
from app.pipeline import Protocol
from app.routes.responses import AUTH, errors
from app.shadow import ShadowQueue

router = APIRouter()


class PairFigures(BaseModel):
    live_version: str
    shadow_version: str
    rows: int = Field(description="Rows the shadow predicted since it was loaded beside the live.")
    agreed_rows: int
    agreement: float | None = Field(description="agreed_rows / rows; null before any row.")
    requests: int
    dropped: int = Field(description="Sampled requests dropped: the shadow queue was full.")
    errors: int
    since: float


class ShadowDescription(BaseModel):
    alias: str
    version: str | None = Field(description="The version shadowed here; null when none is.")
    shadow_percent: float
    canary_percent: float
    error: str | None = Field(description="Why the alias's version is not loaded, if it failed.")
    figures: PairFigures | None = Field(
        description="This pod's live agreement of the shadow with the live model."
    )


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
    examples: dict[str, Any] | None = Field(
        description="Rows of the version's input example as a request body of each protocol "
        "(predict, v2, kserve_v1, mlflow), to try the model at once; null without an input "
        "example."
    )
    shadow: ShadowDescription | None = Field(
        None,
        description="The challenger beside the live model; null when MLSTACK_SHADOW_ALIAS is "
        "empty.",
    )


@router.get(
    "/model",
    response_model=ModelDescription,
    summary="The model being served",
    responses=errors(AUTH, {503: "No model loaded yet"}),
)
async def describe_model(
    request: Request, store: StoreDep, protocols: ProtocolsDep, _: ApiKeyDep
) -> ModelDescription:
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
        examples=examples(model, protocols),
        shadow=describe_shadow(store, request.app.state.shadow, model),
    )


def describe_shadow(
    store: ModelStore, queue: ShadowQueue | None, live: LoadedModel
) -> ShadowDescription | None:
    if queue is None:
        return None
    shadow = store.shadow
    return ShadowDescription(
        alias=store.settings.shadow_alias,
        version=shadow.version if shadow is not None else None,
        shadow_percent=store.traffic.shadow_percent,
        canary_percent=store.traffic.canary_percent,
        error=store.shadow_error,
        figures=PairFigures(**queue.stats(live, shadow)) if shadow is not None else None,
    )


def examples(model: LoadedModel, protocols: dict[str, Protocol[Any]]) -> dict[str, Any] | None:
    """Example request bodies of every protocol, from the version's input example."""
    rows = model.examples
    if rows is None:
        return None
    bodies = {}
    for protocol in protocols.values():
        body = protocol.example(model, rows)
        if body is not None:
            bodies[protocol.name] = body
    return bodies
