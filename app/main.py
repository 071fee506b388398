"""`create_app()`: the inference service as an ASGI application.

Run with `uvicorn --factory app.main:create_app` or `python -m app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app import metrics
from app.errors import ServiceError
from app.instrument import Instrumented
from app.model_store import ModelStore
from app.pipeline import Pipeline, Protocol
from app.prediction_log import PredictionShipper
from app.protocols import error_form, prediction_routes
from app.routes import drift, health, kserve_v1, mlflow_scoring, model, predict, v2, webhooks
from app.settings import Settings
from app.shadow import ShadowQueue, emitter
from kernel import log as kernel_log
from kernel.keys import ApiKeyCheck
from kernel.version import version
from kernel.webhooks import DeliveryCheck

log = structlog.get_logger("app.main")


def create_app(settings: Settings | None = None) -> Instrumented:
    """Build the service. Settings default to the environment (MLSTACK_*, MLFLOW_TRACKING_URI).

    Raises ValueError for unusable settings (e.g. an unreadable API-key file).
    """
    settings = settings or Settings()
    # httpx logs every MLflow call at INFO; the model store logs what matters as events.
    kernel_log.configure(settings.log_level, quiet=("httpx",))
    store = ModelStore(settings)
    auth = ApiKeyCheck(settings.api_key_source(), settings.api_key_header)
    metrics.MODEL_LOADED.set(0)
    shipping = settings.prediction_log()
    shipper = PredictionShipper(shipping) if shipping is not None else None
    protocols: dict[str, Protocol[Any]] = prediction_routes(settings.protocols)
    secret = settings.webhook_secret_source()
    deliveries = DeliveryCheck(secret, settings.webhook_tolerance_seconds) if secret else None
    shadow = ShadowQueue(settings.shadow_queue) if settings.shadow_alias else None
    if shadow is not None:
        # A pair that ended (a swap, a dropped shadow) takes its figures with it.
        store.on_pair = lambda live, other: shadow.forget(
            (live.ref.key, other.ref.key) if live is not None and other is not None else None
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "service.started",
            model=f"models:/{settings.model_name}@{settings.model_alias}",
            tracking_uri=settings.tracking_uri,
            poll_seconds=settings.poll_seconds,
            auth=auth.enabled,
            shadow_alias=settings.shadow_alias or None,
            shadow_percent=store.traffic.shadow_percent,
            canary_percent=store.traffic.canary_percent,
            webhooks=deliveries is not None,
        )
        # Everything allocated so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise show up as tail latency.
        gc.collect()
        gc.freeze()
        tasks = [
            asyncio.create_task(store.run(), name="model-follower"),
            asyncio.create_task(store.watch_traffic(), name="traffic-file"),
        ]
        if shipper is not None:
            tasks.append(asyncio.create_task(shipper.run(), name="prediction-log"))
        if shadow is not None:
            loop = asyncio.get_running_loop()
            shadow.start(emitter(loop, shipper.add) if shipper is not None else None)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if shadow is not None:
                await asyncio.to_thread(shadow.stop)
                await asyncio.sleep(0)  # the records the worker handed over are queued now
            if shipper is not None:
                await shipper.flush(seconds=5.0)
            store.close()
            log.info("service.stopped")

    api = FastAPI(
        title="mlstack inference",
        version=version(),
        summary=f"Serves models:/{settings.model_name}@{settings.model_alias} from MLflow.",
        lifespan=lifespan,
    )
    api.state.settings = settings
    api.state.store = store
    api.state.auth = auth
    api.state.protocols = protocols
    api.state.webhooks = deliveries
    api.state.shadow = shadow
    api.include_router(predict.docs_router)
    api.include_router(model.router)
    api.include_router(drift.router)
    api.include_router(health.router)
    api.include_router(v2.router)
    api.include_router(kserve_v1.router)
    api.include_router(mlflow_scoring.router)
    api.include_router(webhooks.router)

    @api.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        context = request.scope.get("mlstack")
        form = error_form(context.route, protocols) if context is not None else None
        if form is None:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        refusal = form.refuse(exc)
        return Response(refusal.body, refusal.status, media_type=refusal.content_type.decode())

    pipeline = Pipeline(store, auth, settings.limits, shadow)
    return Instrumented(api, pipeline, protocols, settings.log_features, shipper)
