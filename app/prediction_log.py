"""The prediction log: one record per prediction request (any protocol), shipped to the
control plane in batches.

The request path only appends a dict to a bounded deque. A background task sends a batch as soon
as `batch` records wait and what is left every `interval` seconds, retries with back-off while
the control plane is away, drops the oldest records when the queue is full (counted), and
flushes what is left on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import httpx
import orjson
import structlog

from app import metrics
from app.pipeline import RequestContext
from app.settings import PredictionLogSettings
from kernel.errors import KeyUnavailable

log = structlog.get_logger("app.prediction_log")

PATH = "/v1/predictions"


def record(
    context: RequestContext, status: int, latency_seconds: float, features: bool
) -> dict[str, Any]:
    """The prediction record of one finished request (the control plane's PredictionRecord)."""
    rows = context.rows
    entry: dict[str, Any] = {
        "request_id": context.request_id,
        "time": time.time(),
        "model_name": context.model_name,
        "model_version": context.model_version,
        "status": status,
        "outcome": "success" if status < 400 else "error",
        "error_source": context.error_source,
        "latency_ms": latency_seconds * 1000,
        "rows": 0 if context.labels is None else len(context.labels),
        "labels": context.labels or [],
        "confidences": context.confidences or [],
    }
    if features:
        entry["features"] = None if rows is None or context.labels is None else rows.tolist()
    return entry


class PredictionShipper:
    def __init__(self, settings: PredictionLogSettings) -> None:
        self._url = settings.url.rstrip("/") + PATH
        self._key = settings.api_key  # read per batch: a rotated key file takes effect
        self._key_header = settings.api_key_header
        self._batch = settings.batch
        self._interval = settings.interval_seconds
        self._timeout = settings.timeout_seconds
        self._queue: deque[dict[str, Any]] = deque()
        self._capacity = settings.queue
        self._wake = asyncio.Event()
        self.features = settings.features

    def add(self, record: dict[str, Any]) -> None:
        """Queue one record (event loop only: no lock). Drops the oldest when full."""
        queue = self._queue
        if len(queue) >= self._capacity:
            queue.popleft()
            metrics.PREDICTION_LOG_DROPPED.inc()
        queue.append(record)
        if len(queue) >= self._batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        """Ship forever; cancel to stop (then call `flush`).

        Full batches go as soon as they are full; what is left goes once per interval. (Sending
        whatever waits right after each answer would post a handful of records at a time under
        light traffic, and the per-request cost of those posts would land on /predict.) After a
        failed send, nothing is tried until the back-off delay has passed."""
        backoff = 0.0
        due = time.monotonic() + self._interval  # when a partial batch may go
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            while True:
                if backoff:
                    await asyncio.sleep(backoff)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._wake.wait(), timeout=max(0.0, due - time.monotonic())
                        )
                self._wake.clear()
                partial = time.monotonic() >= due
                if partial:
                    due = time.monotonic() + self._interval
                if await self._ship(client, partial):
                    backoff = 0.0
                else:
                    backoff = min(max(backoff * 2, self._interval), 30.0)

    async def _ship(self, client: httpx.AsyncClient, partial: bool) -> bool:
        """Every full batch, then (when `partial`) what is left. False when a send failed."""
        while len(self._queue) >= self._batch:
            if not await self._send_one(client):
                return False
        if partial and self._queue:
            return await self._send_one(client)
        return True

    async def flush(self, seconds: float) -> None:
        """Send what is queued, giving up after `seconds` (on shutdown)."""
        if not self._queue:
            return
        try:
            async with (
                asyncio.timeout(seconds),
                httpx.AsyncClient(timeout=self._timeout) as client,
            ):
                while self._queue and await self._send_one(client):
                    pass
        except TimeoutError:
            pass
        if self._queue:
            metrics.PREDICTION_LOG_DROPPED.inc(len(self._queue))
            log.warning("prediction_log.unflushed", records=len(self._queue))
            self._queue.clear()

    async def _send_one(self, client: httpx.AsyncClient) -> bool:
        batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
        metrics.PREDICTION_LOG_QUEUE.set(len(self._queue))
        headers = {"content-type": "application/json"}
        try:
            if self._key is not None:
                headers[self._key_header] = self._key.current().decode()
            response = await client.post(
                self._url, content=orjson.dumps({"records": batch}), headers=headers
            )
        except KeyUnavailable as exc:
            # The key file is unreadable: keep the records and retry (the key source logged it).
            self._requeue(batch)
            log.warning("prediction_log.send_failed", error=str(exc), records=len(batch))
            return False
        except httpx.HTTPError as exc:
            self._requeue(batch)
            log.warning("prediction_log.send_failed", error=str(exc), records=len(batch))
            return False
        if response.status_code >= 500 or response.status_code == 429:
            self._requeue(batch)
            log.warning("prediction_log.send_failed", status=response.status_code)
            return False
        if response.status_code >= 400:
            # The control plane refuses this batch for good (auth, validation): retrying would
            # loop forever, so it is counted as dropped and logged.
            metrics.PREDICTION_LOG_DROPPED.inc(len(batch))
            log.error(
                "prediction_log.refused",
                status=response.status_code,
                detail=response.text[:300],
                records=len(batch),
            )
            return True
        metrics.PREDICTION_LOG_SHIPPED.inc(len(batch))
        return True

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        # Back to the front, in order; when that overfills the queue the oldest go.
        room = self._capacity - len(self._queue)
        keep = batch[len(batch) - room :] if room < len(batch) else batch
        if len(keep) < len(batch):
            metrics.PREDICTION_LOG_DROPPED.inc(len(batch) - len(keep))
        self._queue.extendleft(reversed(keep))
        metrics.PREDICTION_LOG_QUEUE.set(len(self._queue))
