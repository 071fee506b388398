"""GET /drift: per-feature drift of recent inputs against the served version's baseline, and
the values seen outside each feature's training range."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.deps import ApiKeyDep, SettingsDep, StoreDep
from app.errors import NoBaseline, NotReady
from app.routes.responses import AUTH, errors

router = APIRouter()


class FeatureDrift(BaseModel):
    statistic: float | None  # None until the window holds MLSTACK_DRIFT_MIN_ROWS rows
    drifted: bool
    training_range: tuple[float, float] | None  # [min, max]; None: the baseline has no range
    out_of_range: int | None  # values outside it since the version loaded; None: no range


class DriftReport(BaseModel):
    statistic: str
    threshold: float
    window_rows: int
    window_size: int
    min_rows: int
    baseline_version: str
    # False: the baseline predates training ranges, so no value is counted (or refused).
    ranges_known: bool
    refuse_out_of_range: bool  # MLSTACK_REFUSE_OUT_OF_RANGE
    features: dict[str, FeatureDrift]


@router.get(
    "/drift",
    response_model=DriftReport,
    summary="Feature drift (PSI) per feature",
    responses=errors(
        AUTH,
        {409: "The served version has no drift baseline", 503: "No model loaded yet"},
    ),
)
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
    ranges = model.ranges
    bounds = ranges.ranges if ranges is not None else (None,) * len(window.features)
    counts = ranges.counts.tolist() if ranges is not None else [None] * len(window.features)
    return DriftReport(
        statistic="psi",
        threshold=settings.drift_threshold,
        window_rows=window.count,
        window_size=settings.drift_window,
        min_rows=settings.drift_min_rows,
        baseline_version=model.version,
        ranges_known=ranges is not None,
        refuse_out_of_range=settings.refuse_out_of_range,
        features={
            name: FeatureDrift(
                statistic=values.get(name),
                drifted=values.get(name, 0.0) > settings.drift_threshold,
                training_range=bound,
                out_of_range=None if bound is None else count,
            )
            for name, bound, count in zip(window.features, bounds, counts, strict=True)
        },
    )
