"""POST /v1/webhooks/mlflow: an MLflow alias event, verified, relayed to every inference pod.

Open without an API key (MLflow cannot send one): the delivery's signature, made with the
webhook's secret, is what lets it in. With no secret set the route answers 404.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from control import metrics
from control import webhooks as relaying
from control.deps import SettingsDep
from kernel import webhooks

log = structlog.get_logger("control.webhooks")
router = APIRouter(tags=["webhooks"])


class Relayed(BaseModel):
    outcome: str  # relayed or ignored
    reason: str
    pods: list[dict[str, Any]]  # each target's status or error


@router.post(
    webhooks.PATH,
    response_model=Relayed,
    summary="MLflow webhook: an alias event is relayed to every inference pod",
    responses={
        400: {"description": "Not an MLflow delivery: a header or the body is malformed"},
        401: {"description": "The signature does not match the webhook secret"},
        404: {"description": "Webhooks are off (no MLSTACK_CONTROL_WEBHOOK_SECRET_FILE)"},
        408: {"description": "The delivery's timestamp is outside the allowed window"},
        409: {"description": "The delivery id was already accepted (a replay)"},
        413: {"description": "Body over 64 KiB"},
    },
)
async def mlflow_webhook(request: Request, settings: SettingsDep) -> JSONResponse:
    check: webhooks.DeliveryCheck | None = request.app.state.webhooks
    if check is None:
        return JSONResponse(
            {"detail": "webhooks are off: set MLSTACK_CONTROL_WEBHOOK_SECRET_FILE to receive them"},
            404,
        )
    try:
        headers, body, event = await webhooks.receive_delivery(
            check, request.receive, request.scope["headers"]
        )
    except webhooks.WebhookRefused as exc:
        metrics.WEBHOOKS.labels(str(exc.status)).inc()
        log.warning("webhook.refused", status=exc.status, reason=str(exc))
        return JSONResponse({"detail": str(exc)}, exc.status)
    if event is None or event.name != settings.model_name:
        metrics.WEBHOOKS.labels("ignored").inc()
        what = "not an alias event" if event is None else f"model {event.name!r}"
        return JSONResponse(
            {"outcome": "ignored", "reason": f"{what}: not served here", "pods": []}
        )
    urls = await run_in_threadpool(relaying.targets, settings)
    pods = await relaying.relay(urls, headers, body, settings.webhook_relay_timeout_seconds)
    reached = sum(1 for p in pods if p.get("status") == 200)
    metrics.WEBHOOKS.labels("relayed").inc()
    metrics.WEBHOOK_RELAYS.labels("delivered").inc(reached)
    metrics.WEBHOOK_RELAYS.labels("failed").inc(len(pods) - reached)
    log.info(
        "webhook.relayed",
        delivery_id=event.delivery_id,
        action=event.action,
        alias=event.alias,
        version=event.version,
        pods=len(pods),
        delivered=reached,
    )
    return JSONResponse(
        {
            "outcome": "relayed",
            "reason": f"{event.alias} {event.action}: relayed to {reached} of {len(pods)} pods",
            "pods": pods,
        }
    )
