"""FastAPI dependencies as typed aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from mlflow import MlflowClient

from control.auth import ApiKeyCheck
from control.errors import PayloadTooLarge
from control.prediction_log import PredictionLog
from control.settings import ControlSettings
from control.training_jobs import TrainingJobs


def get_settings(request: Request) -> ControlSettings:
    settings: ControlSettings = request.app.state.settings
    return settings


def get_log(request: Request) -> PredictionLog:
    store: PredictionLog = request.app.state.prediction_log
    return store


def get_client(request: Request) -> MlflowClient:
    client: MlflowClient = request.app.state.mlflow
    return client


def get_training_jobs(request: Request) -> TrainingJobs:
    jobs: TrainingJobs = request.app.state.training_jobs
    return jobs


def require_api_key(request: Request) -> None:
    auth: ApiKeyCheck = request.app.state.auth
    auth.check(request.headers.get(auth.header))


def caller(request: Request) -> str:
    """Who asked, for audit events: the peer address (keys carry no identity)."""
    client = request.client
    return f"api:{client.host}" if client else "api"


SettingsDep = Annotated[ControlSettings, Depends(get_settings)]
LogDep = Annotated[PredictionLog, Depends(get_log)]
ClientDep = Annotated[MlflowClient, Depends(get_client)]
TrainingJobsDep = Annotated[TrainingJobs, Depends(get_training_jobs)]
CallerDep = Annotated[str, Depends(caller)]
ApiKeyDep = Depends(require_api_key)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes whether declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"body of {declared} bytes is over the limit of {limit} bytes "
            "(MLSTACK_CONTROL_MAX_BODY_BYTES)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"body is over the limit of {limit} bytes (MLSTACK_CONTROL_MAX_BODY_BYTES)"
            )
        chunks.append(chunk)
    return b"".join(chunks)
