"""Probes and metrics: open without an API key, for kubelets and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from app import metrics
from app.deps import SettingsDep, StoreDep

router = APIRouter()


class Alive(BaseModel):
    status: str


class Refused(BaseModel):
    version: str
    reason: str


class Ready(BaseModel):
    status: str
    model_version: str
    refused: Refused | None = None  # the alias's version, refused: the live one serves on


class Unready(BaseModel):
    status: str
    reason: str


@router.get(
    "/livez",
    response_model=Alive,
    summary="Liveness: the process answers (never depends on MLflow)",
)
async def livez() -> JSONResponse:
    return JSONResponse({"status": "alive"})


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Readiness: a model is loaded",
    responses={503: {"model": Unready, "description": "No model loaded yet (with the reason)"}},
)
async def readyz(store: StoreDep) -> JSONResponse:
    model = store.current
    if model is None:
        return JSONResponse(
            {"status": "not ready", "reason": store.last_error or "no model loaded yet"},
            status_code=503,
        )
    body: dict[str, object] = {"status": "ready", "model_version": model.version}
    if store.refused is not None:
        # The alias points elsewhere, at a version that was refused: the live one serves on.
        version, reason = store.refused
        body["refused"] = {"version": version, "reason": reason}
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(store: StoreDep, settings: SettingsDep) -> Response:
    model = store.current
    if model is not None and model.drift is not None:
        # Drift is computed here, once per scrape, to keep it off the request path. Without a
        # baseline the drift metrics are absent, not zero.
        metrics.DRIFT_WINDOW_ROWS.set(model.drift.count)
        if model.drift.count >= settings.drift_min_rows:
            for feature, value in model.drift.psi().items():
                metrics.FEATURE_DRIFT.labels(feature).set(value)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
