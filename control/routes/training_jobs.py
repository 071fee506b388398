"""Training Jobs on demand: Kubernetes runs them, the concurrency limit bounds them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from control.deps import CallerDep, TrainingJobsDep
from control.jobs import MAX_PARALLELISM, PARALLELISM, training_parameters
from control.routes.keyed import KeyedRoute
from control.schemas import AUTH, CLUSTER_FAILED, INVALID, NOT_JSON, TrainingJobView, errors

router = APIRouter(
    prefix="/v1/training-jobs",
    tags=["training jobs"],
    route_class=KeyedRoute,
    responses=errors(AUTH, CLUSTER_FAILED),
)

JobId = Annotated[
    str, Path(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]

_PARAMETERS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "Training parameters (the flags of `python -m training`, snake_case); "
    "each one given is appended to the template Job's arguments. A template running the "
    "user's own command (`training.command`) takes none: send an empty body.",
    "properties": {
        **{name: {"description": info.description} for name, info in training_parameters().items()},
        PARALLELISM: {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PARALLELISM,
            "description": "Pods the round is spread over (an Indexed Job; default: the "
            "template's, the chart's training.parallelism).",
        },
    },
}


@router.post(
    "",
    status_code=201,
    response_model=TrainingJobView,
    summary="Start a training round as a Kubernetes Job (parameters checked first)",
    responses=errors(
        NOT_JSON,
        {
            409: "At the concurrency limit, or no template",
            422: "A parameter is unknown or invalid (named)",
        },
    ),
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": _PARAMETERS_SCHEMA}}}
    },
)
async def create(
    jobs: TrainingJobsDep,
    by: CallerDep,
    parameters: Annotated[dict[str, Any] | None, Body()] = None,
) -> JSONResponse:
    view = await run_in_threadpool(jobs.create, parameters or {}, by)
    return JSONResponse(
        view.model_dump(mode="json"),
        status_code=201,
        headers={"location": f"{router.prefix}/{view.id}"},
    )


@router.get("", response_model=list[TrainingJobView], summary="Training Jobs, newest first")
def list_jobs(jobs: TrainingJobsDep) -> list[TrainingJobView]:
    return jobs.list()


@router.get(
    "/{job_id}",
    response_model=TrainingJobView,
    summary="One training Job: state, times, MLflow run, registered version, gate, last log lines",
    responses=errors(INVALID, {404: "No such training Job"}),
)
def get_job(jobs: TrainingJobsDep, job_id: JobId) -> TrainingJobView:
    return jobs.get(job_id)
