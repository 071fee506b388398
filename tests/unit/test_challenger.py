"""The pieces of the challenger on live traffic that need no process: the delivery check's
window and memory, the canary's buckets, the traffic file's refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from app.model_store import read_traffic
from app.settings import Traffic
from app.shadow import canary_bucket
from kernel.keys import KeySource
from kernel.webhooks import DeliveryCheck, WebhookRefused, alias_event

SECRET = b"unit-secret"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _headers(delivery: str, stamp: int, body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    digest = hmac.new(secret, f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "x-mlflow-delivery-id": delivery,
        "x-mlflow-timestamp": str(stamp),
        "x-mlflow-signature": "v1," + base64.b64encode(digest).decode(),
    }


def test_a_delivery_id_is_refused_within_the_window_and_forgotten_after_it() -> None:
    clock = Clock(1_000_000.0)
    check = DeliveryCheck(KeySource(SECRET), tolerance_seconds=300, clock=clock)
    body = b"{}"
    assert check.verify(_headers("d1", 1_000_000, body), body) == "d1"
    with pytest.raises(WebhookRefused) as replay:
        check.verify(_headers("d1", 1_000_000, body), body)
    assert replay.value.status == 409
    # Later, the old id is forgotten, but its timestamp is refused as stale anyway.
    clock.now += 1000
    with pytest.raises(WebhookRefused) as stale:
        check.verify(_headers("d1", 1_000_000, body), body)
    assert stale.value.status == 408
    assert check.verify(_headers("d2", 1_001_000, body), body) == "d2"
    assert len(check._seen) == 1  # d1 is gone


def test_a_timestamp_from_the_future_is_refused_too() -> None:
    check = DeliveryCheck(KeySource(SECRET), tolerance_seconds=60, clock=Clock(5000.0))
    with pytest.raises(WebhookRefused) as future:
        check.verify(_headers("d", 5100, b"x"), b"x")
    assert future.value.status == 408 and "-100 s" in str(future.value)


def test_a_rotated_secret_file_keeps_accepting_the_old_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("new-secret\nold-secret\n")
    check = DeliveryCheck(
        KeySource(path=secret, setting="S", name="the webhook secret"), clock=Clock(100.0)
    )
    for index, key in enumerate((b"new-secret", b"old-secret")):
        assert check.verify(_headers(f"d{index}", 100, b"{}", key), b"{}")
    with pytest.raises(WebhookRefused) as wrong:
        check.verify(_headers("d9", 100, b"{}", b"other"), b"{}")
    assert wrong.value.status == 401


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-mlflow-timestamp": "1", "x-mlflow-signature": "v1,x"}, "x-mlflow-delivery-id"),
        ({"x-mlflow-delivery-id": "d", "x-mlflow-signature": "v1,x"}, "x-mlflow-timestamp"),
        (
            {"x-mlflow-delivery-id": "d", "x-mlflow-timestamp": "soon", "x-mlflow-signature": "v1"},
            "not a Unix time",
        ),
        (
            {"x-mlflow-delivery-id": "d", "x-mlflow-timestamp": "1", "x-mlflow-signature": "v2,x"},
            "expected v1",
        ),
    ],
)
def test_malformed_headers_are_refused_naming_the_header(
    headers: dict[str, str], message: str
) -> None:
    check = DeliveryCheck(KeySource(SECRET), clock=Clock(1.0))
    with pytest.raises(WebhookRefused) as refused:
        check.verify(headers, b"{}")
    assert refused.value.status == 400 and message in str(refused.value)


def test_alias_events_are_read_and_other_events_ignored() -> None:
    created = {
        "entity": "model_version_alias",
        "action": "created",
        "data": {"name": "m", "alias": "champion", "version": "3"},
    }
    event = alias_event("d", json.dumps(created).encode())
    assert event is not None and (event.name, event.alias, event.version) == ("m", "champion", "3")
    deleted = {**created, "action": "deleted", "data": {"name": "m", "alias": "champion"}}
    gone = alias_event("d", json.dumps(deleted).encode())
    assert gone is not None and gone.version is None
    run = {"entity": "model_version", "action": "created", "data": {}}
    assert alias_event("d", json.dumps(run).encode()) is None
    with pytest.raises(WebhookRefused, match="name and alias"):
        alias_event("d", json.dumps({**created, "data": {"name": 1}}).encode())
    with pytest.raises(WebhookRefused, match="not JSON"):
        alias_event("d", b"{")


def test_canary_buckets_are_stable_and_spread_evenly() -> None:
    assert canary_bucket(b"user-1") == canary_bucket(b"user-1")
    buckets = [canary_bucket(f"user-{i}".encode()) for i in range(20_000)]
    assert all(0 <= b < 10_000 for b in buckets)
    # Sequential keys, the worst case for a weak hash: each fifth of the range gets its share
    # (binomial, 5 standard deviations: ±283 of 4000).
    for fifth in range(5):
        count = sum(fifth * 2000 <= b < (fifth + 1) * 2000 for b in buckets)
        assert abs(count - 4000) <= 283, (fifth, count)


def test_the_traffic_file_overrides_key_by_key_and_refuses_naming_the_key(tmp_path: Path) -> None:
    default = Traffic(shadow_percent=10.0, canary_percent=0.0)
    path = tmp_path / "traffic.json"
    assert read_traffic(None, default) == default
    assert read_traffic(path, default) == default  # not there (yet): the settings
    path.write_text(json.dumps({"canary_percent": 20}))
    assert read_traffic(path, default) == Traffic(10.0, 20.0)
    for content, message in (
        ({"canary_percent": 101}, "canary_percent must be a number from 0 to 100"),
        ({"shadow_percent": True}, "shadow_percent must be a number"),
        ({"canary": 5}, "unknown keys ['canary']"),
        ([1], "expected an object"),
    ):
        path.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            read_traffic(path, default)
    path.write_text("{")
    with pytest.raises(ValueError, match="unreadable JSON"):
        read_traffic(path, default)
