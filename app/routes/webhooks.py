"""POST /v1/webhooks/mlflow: MLflow's alias events, verified, trigger an immediate alias check.

Open without an API key: MLflow cannot send one. What it sends instead is a signature made with
the webhook's secret (MLSTACK_WEBHOOK_SECRET_FILE); with no secret set the route answers 404,
and an unsigned or wrongly signed delivery is refused. Polling stays: a lost delivery costs one
poll interval at most.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app import metrics
from app.deps import SettingsDep, StoreDep
from kernel import webhooks

log = structlog.get_logger("app.webhooks")
router = APIRouter()


class Delivery(BaseModel):
    outcome: str  # accepted (the aliases are checked now) or ignored
    reason: str


@router.post(
    webhooks.PATH,
    response_model=Delivery,
    summary="MLflow webhook: an alias event triggers an immediate alias check",
    responses={
        400: {"description": "Not an MLflow delivery: a header or the body is malformed"},
        401: {"description": "The signature does not match the webhook secret"},
        404: {"description": "Webhooks are off (no MLSTACK_WEBHOOK_SECRET_FILE)"},
        408: {"description": "The delivery's timestamp is outside the allowed window"},
        409: {"description": "The delivery id was already accepted (a replay)"},
        413: {"description": "Body over 64 KiB"},
    },
)
async def mlflow_webhook(request: Request, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    check: webhooks.DeliveryCheck | None = request.app.state.webhooks
    if check is None:
        return JSONResponse(
            {"detail": "webhooks are off: set MLSTACK_WEBHOOK_SECRET_FILE to receive them"}, 404
        )
    try:
        _, _, event = await webhooks.receive_delivery(
            check, request.receive, request.scope["headers"]
        )
    except webhooks.WebhookRefused as exc:
        metrics.WEBHOOKS.labels(str(exc.status)).inc()
        log.warning("webhook.refused", status=exc.status, reason=str(exc))
        return JSONResponse({"detail": str(exc)}, exc.status)
    followed = {settings.model_alias, settings.shadow_alias} - {""}
    if event is None or event.name != settings.model_name or event.alias not in followed:
        metrics.WEBHOOKS.labels("ignored").inc()
        what = "not an alias event" if event is None else f"{event.name}@{event.alias}"
        return JSONResponse({"outcome": "ignored", "reason": f"{what} is not followed here"})
    metrics.WEBHOOKS.labels("accepted").inc()
    log.info(
        "webhook.accepted",
        delivery_id=event.delivery_id,
        action=event.action,
        alias=event.alias,
        version=event.version,
    )
    store.wake()
    return JSONResponse(
        {"outcome": "accepted", "reason": f"{event.alias} {event.action}: checking the aliases"}
    )
