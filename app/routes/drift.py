"""GET /drift: per-feature drift of recent inputs against the served version's baseline."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.deps import ApiKeyDep, SettingsDep, StoreDep
from app.errors import NoBaseline, NotReady

router = APIRouter()


class FeatureDrift(BaseModel):
    statistic: float | None  # None until the window holds MLSTACK_DRIFT_MIN_ROWS rows
    drifted: bool


class DriftReport(BaseModel):
    statistic: str
    threshold: float
    window_rows: int
    window_size: int
    min_rows: int
    baseline_version: str
    features: dict[str, FeatureDrift]


@router.get("/drift", response_model=DriftReport, summary="Feature drift (PSI) per feature")
async def drift_report(store: StoreDep, settings: SettingsDep, _: ApiKeyDep) -> DriftReport:
    model = store.current
    if model is None:
        raise NotReady("no model is loaded yet")
    window = model.drift
    if window is None:
        raise NoBaseline(
            f"{model.ref.name} v{model.version} has no drift baseline: add one with "
            f"`mlstack adopt {model.ref.name} {model.version} --data sample.csv` (a CSV of "
            "representative inputs); the service reports drift from its next poll"
        )
    enough = window.count >= settings.drift_min_rows
    values = window.psi() if enough else {}
    return DriftReport(
        statistic="psi",
        threshold=settings.drift_threshold,
        window_rows=window.count,
        window_size=settings.drift_window,
        min_rows=settings.drift_min_rows,
        baseline_version=model.version,
        features={
            name: FeatureDrift(
                statistic=values.get(name),
                drifted=values.get(name, 0.0) > settings.drift_threshold,
            )
            for name in window.features
        },
    )
