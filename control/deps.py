"""FastAPI dependencies as typed aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from mlflow import MlflowClient
from starlette.requests import ClientDisconnect

from control.prediction_log import PredictionLog
from control.settings import ENV_PREFIX, ControlSettings
from control.training_jobs import TrainingJobs
from kernel import requests
from kernel.keys import ApiKeyCheck


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
    auth.check(request.scope["headers"])


def caller(request: Request) -> str:
    """Who asked, for audit events: the peer address (keys carry no identity)."""
    client = request.client
    return f"api:{client.host}" if client else "api"


SettingsDep = Annotated[ControlSettings, Depends(get_settings)]
LogDep = Annotated[PredictionLog, Depends(get_log)]
ClientDep = Annotated[MlflowClient, Depends(get_client)]
TrainingJobsDep = Annotated[TrainingJobs, Depends(get_training_jobs)]
CallerDep = Annotated[str, Depends(caller)]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes whether declared or streamed."""
    try:
        return await requests.read_body(
            request.receive,
            request.headers.get("content-length", "").encode("latin-1") or None,
            limit,
            f"{ENV_PREFIX}MAX_BODY_BYTES",
        )
    except requests.ClientDisconnected:
        raise ClientDisconnect from None  # as Starlette's own body reader raises it
