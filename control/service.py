"""`create_app()`: the control plane as an ASGI application.

Run with `uvicorn --factory control.service:create_app` or `mlstack serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from mlflow import MlflowClient

from control import errors
from control import log as control_log
from control.database import describe, migrate, open_engine
from control.instrument import RequestMetrics
from control.prediction_log import PredictionLog, apply_retention
from control.routes import experiments, health, models, predictions, training_jobs, webhooks
from control.settings import ControlSettings
from control.training_jobs import TrainingJobs
from kernel.keys import ApiKeyCheck
from kernel.version import version
from kernel.webhooks import DeliveryCheck

log = structlog.get_logger("control.service")


def create_app(settings: ControlSettings | None = None) -> FastAPI:
    """Build the service. Settings default to the environment (MLSTACK_CONTROL_*,
    MLFLOW_TRACKING_URI). Raises ValueError for unusable settings (e.g. an unreadable key file).
    The database is migrated when the application starts, before it answers."""
    settings = settings or ControlSettings()
    control_log.configure(settings.log_level)
    auth = ApiKeyCheck(settings.api_key_source(), settings.api_key_header)
    secret = settings.webhook_secret_source()
    deliveries = DeliveryCheck(secret, settings.webhook_tolerance_seconds) if secret else None
    engine = open_engine(settings.database_url())
    store = PredictionLog(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        revision = await asyncio.to_thread(migrate, engine)
        log.info(
            "service.started",
            database=describe(engine),
            schema=revision,
            tracking_uri=settings.tracking_uri,
            auth=auth.enabled,
            webhooks=deliveries is not None,
            retention_days=settings.retention_days,
        )
        if not auth.enabled:
            log.warning("auth.disabled", hint="set MLSTACK_CONTROL_API_KEY(_FILE)")
        retention = None
        if settings.retention_days > 0:
            retention = asyncio.create_task(
                apply_retention(
                    store, settings.retention_days, settings.retention_interval_seconds
                ),
                name="retention",
            )
        try:
            yield
        finally:
            if retention is not None:
                retention.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention
            engine.dispose()
            log.info("service.stopped")

    api = FastAPI(
        title="mlstack control plane",
        version=version(),
        summary="The prediction log, the registry at a glance, promotion and rollback.",
        lifespan=lifespan,
    )
    api.state.settings = settings
    api.state.auth = auth
    api.state.prediction_log = store
    api.state.mlflow = MlflowClient(settings.tracking_uri)
    api.state.training_jobs = TrainingJobs(settings)
    api.state.webhooks = deliveries
    for module in (health, predictions, models, experiments, training_jobs, webhooks):
        api.include_router(module.router)
    errors.install(api)

    api.add_middleware(RequestMetrics)
    return api
