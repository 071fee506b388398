"""Probes and metrics: open without an API key, for kubelets and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from control.deps import LogDep
from control.schemas import Probe, Unready

router = APIRouter(tags=["health"])


@router.get(
    "/livez",
    response_model=Probe,
    summary="Liveness: the process answers (depends on nothing else)",
)
async def livez() -> JSONResponse:
    return JSONResponse({"status": "alive"})


@router.get(
    "/readyz",
    response_model=Probe,
    summary="Readiness: the prediction log's database answers",
    responses={503: {"model": Unready, "description": "The database does not answer (why)"}},
)
async def readyz(store: LogDep) -> JSONResponse:
    try:
        await run_in_threadpool(store.ping)
    except Exception as exc:  # any database failure means not ready, with its reason
        return JSONResponse(
            {"status": "not ready", "reason": f"database: {type(exc).__name__}: {exc}"[:300]},
            status_code=503,
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
