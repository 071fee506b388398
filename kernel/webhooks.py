"""MLflow's webhook deliveries: the signature check, the freshness window and replay refusal.

MLflow signs each delivery with `X-MLflow-Signature: v1,<base64 HMAC-SHA256>` over
`{delivery id}.{timestamp}.{body}`, the secret being the one the webhook was registered with.
The inference service and the control plane both receive deliveries, with this one check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kernel.keys import KeySource

PATH = "/v1/webhooks/mlflow"  # where the service and the control plane receive deliveries
SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"
# The events that move what serves.
ALIAS_EVENTS = frozenset({("model_version_alias", "created"), ("model_version_alias", "deleted")})
DEFAULT_TOLERANCE_SECONDS = 300.0
_MAX_DELIVERY_ID = 128
MAX_BODY_BYTES = 65_536  # an alias event is a few hundred bytes


class WebhookRefused(Exception):
    """A delivery that is not acted on; `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AliasEvent:
    """A verified alias delivery: `version` is None for a deleted alias."""

    delivery_id: str
    action: str
    name: str
    alias: str
    version: str | None


def sign(secret: bytes, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` value MLflow sends for this delivery."""
    content = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(secret, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


class DeliveryCheck:
    """Verifies deliveries. A delivery id is accepted once within the freshness window, and
    a timestamp further than `tolerance_seconds` from now (either way) is refused; ids older
    than the window are forgotten, since their timestamps are refused anyway."""

    def __init__(
        self,
        secret: KeySource,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
        remembered: int = 100_000,
    ) -> None:
        self._secret = secret
        self._tolerance = tolerance_seconds
        self._clock = clock
        self._remembered = remembered
        self._seen: OrderedDict[str, float] = OrderedDict()  # delivery id → its timestamp

    def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """The delivery id of a good delivery (`headers` with lower-case names). Raises
        WebhookRefused: 400 for a missing or malformed header, 401 for a wrong signature,
        408 for a stale timestamp, 409 for a delivery id already accepted."""
        delivery_id = _header(headers, DELIVERY_HEADER)
        if len(delivery_id) > _MAX_DELIVERY_ID:
            raise WebhookRefused(400, f"{DELIVERY_HEADER}: longer than {_MAX_DELIVERY_ID}")
        stamp = _header(headers, TIMESTAMP_HEADER)
        try:
            sent = float(int(stamp))
        except ValueError:
            raise WebhookRefused(
                400, f"{TIMESTAMP_HEADER}: {stamp[:40]!r} is not a Unix time in seconds"
            ) from None
        signature = _header(headers, SIGNATURE_HEADER)
        version, _, _ = signature.partition(",")
        if version != SIGNATURE_VERSION:
            raise WebhookRefused(
                400, f"{SIGNATURE_HEADER}: version {version[:10]!r}, expected {SIGNATURE_VERSION}"
            )
        # Every key in force is tried: a rotated secret file keeps the old one for a while.
        if not any(
            hmac.compare_digest(sign(key, delivery_id, stamp, body), signature)
            for key in self._secret.accepted()
        ):
            raise WebhookRefused(401, f"{SIGNATURE_HEADER}: the signature does not match")
        now = self._clock()
        age = now - sent
        if abs(age) > self._tolerance:
            raise WebhookRefused(
                408,
                f"{TIMESTAMP_HEADER}: the delivery is {age:.0f} s from this server's clock, more "
                f"than the {self._tolerance:.0f} s allowed (check the clocks)",
            )
        self._forget(now)
        if delivery_id in self._seen:
            raise WebhookRefused(409, f"{DELIVERY_HEADER} {delivery_id!r}: already delivered")
        self._seen[delivery_id] = sent
        return delivery_id

    def event(self, headers: Mapping[str, str], body: bytes) -> AliasEvent | None:
        """Verify a delivery and read its alias event (None: another event). Raises
        WebhookRefused as `verify` and `alias_event` do."""
        return alias_event(self.verify(headers, body), body)

    def _forget(self, now: float) -> None:
        seen = self._seen
        while seen and (
            len(seen) >= self._remembered or next(iter(seen.values())) < now - 2 * self._tolerance
        ):
            seen.popitem(last=False)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise WebhookRefused(400, f"{name}: missing (not an MLflow webhook delivery?)")
    return value


def alias_event(delivery_id: str, body: bytes) -> AliasEvent | None:
    """The alias event a verified body holds, None for any other event (a test delivery, a
    run or prompt event). Raises WebhookRefused (400) for a body that is not MLflow's form."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRefused(400, f"body: not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise WebhookRefused(400, "body: expected an object with entity, action and data")
    if (payload.get("entity"), payload.get("action")) not in ALIAS_EVENTS:
        return None
    data = payload.get("data")
    if not isinstance(data, dict):
        raise WebhookRefused(400, "data: expected an object with name and alias")
    name, alias, version = data.get("name"), data.get("alias"), data.get("version")
    if not isinstance(name, str) or not isinstance(alias, str):
        raise WebhookRefused(400, "data: name and alias must be strings")
    return AliasEvent(
        delivery_id, str(payload["action"]), name, alias, None if version is None else str(version)
    )


async def receive_delivery(
    check: DeliveryCheck, receive: Any, scope_headers: Any
) -> tuple[dict[str, str], bytes, AliasEvent | None]:
    """Read an ASGI request's body (at most MAX_BODY_BYTES) and verify it: its lower-cased
    headers, its body and its alias event (None: another event). Raises WebhookRefused, 413 for
    a body over the limit."""
    from kernel.errors import PayloadTooLarge
    from kernel.requests import read_body

    headers = lower(scope_headers)
    try:
        body = await read_body(
            receive,
            headers.get("content-length", "").encode("latin-1") or None,
            MAX_BODY_BYTES,
            "the webhook body limit",
        )
    except PayloadTooLarge as exc:
        raise WebhookRefused(413, str(exc)) from None
    return headers, body, check.event(headers, body)


def lower(headers: Any) -> dict[str, str]:
    """ASGI `(name, value)` byte pairs → a dict of lower-case names."""
    return {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1") for k, v in headers}
