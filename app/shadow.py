"""The challenger on live traffic: shadow predictions off the hot path, and the canary's pick.

A sampled request is offered to a bounded queue after its answer has been sent; a worker thread
predicts it with the shadow version, compares the labels and the probability of the live
model's predicted class, fills the metrics (labelled with both versions) and hands a flagged
record to the prediction log. A full queue drops the request and counts it: a response never
waits for the shadow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import structlog

from app import metrics
from app.model_store import LoadedModel

log = structlog.get_logger("app.shadow")

# Most queued requests predicted in one call of the shadow model.
BATCH_REQUESTS = 64
_STOP = object()


def canary_bucket(key: bytes) -> int:
    """A stable bucket in [0, 10000) for a request key: the same key always lands in the same
    bucket, in every pod and after restarts (a keyed hash, not Python's salted `hash`)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % 10_000


class Job(NamedTuple):
    live: LoadedModel
    shadow: LoadedModel
    rows: np.ndarray
    top: list[int]  # the live model's predicted class index per row
    confidence: list[float]  # the live model's probability of that class per row
    request_id: str


@dataclass
class PairStats:
    """What one (live, shadow) pair has shown since the shadow was loaded beside the live."""

    live_version: str
    shadow_version: str
    rows: int = 0
    agreed: int = 0
    requests: int = 0
    dropped: int = 0
    errors: int = 0
    started: float = field(default_factory=time.time)

    def view(self) -> dict[str, Any]:
        return {
            "live_version": self.live_version,
            "shadow_version": self.shadow_version,
            "rows": self.rows,
            "agreed_rows": self.agreed,
            "agreement": self.agreed / self.rows if self.rows else None,
            "requests": self.requests,
            "dropped": self.dropped,
            "errors": self.errors,
            "since": self.started,
        }


class _Bound:
    """A pair's metric children, bound once."""

    def __init__(self, live: LoadedModel, shadow: LoadedModel) -> None:
        labels = (live.version, shadow.version)
        self.rows = metrics.SHADOW_ROWS.labels(*labels)
        self.agreed = metrics.SHADOW_AGREED.labels(*labels)
        self.difference = metrics.SHADOW_DIFFERENCE.labels(*labels)
        self.duration = metrics.SHADOW_DURATION.labels(*labels)
        self.dropped = metrics.SHADOW_DROPPED.labels(*labels, "queue_full")
        self.errors = metrics.SHADOW_DROPPED.labels(*labels, "error")
        self.classes = [
            metrics.SHADOW_PREDICTIONS.labels(*labels, c) for c in shadow.predictor.classes
        ]
        # The shadow's column of each live class (-1: the shadow does not know the class).
        index = {c: i for i, c in enumerate(shadow.classes)}
        self.column = np.array([index.get(c, -1) for c in live.classes], dtype=np.int64)


class ShadowQueue:
    """The bounded queue and its worker thread. `offer` runs on the event loop; everything
    else on the worker."""

    def __init__(self, capacity: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._bound: dict[tuple[str, str], _Bound] = {}
        self._stats: dict[tuple[str, str], PairStats] = {}
        self._lock = threading.Lock()  # guards _stats (read by GET /model)
        self._emit: Callable[[dict[str, Any]], None] | None = None

    def start(self, emit: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Start the worker; `emit` gets each shadow prediction record (on the worker)."""
        self._emit = emit
        self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
        self._thread.start()

    def stop(self, seconds: float = 5.0) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=seconds)
        self._thread.join(seconds)
        self._thread = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def offer(self, job: Job) -> bool:
        """Queue one request for the shadow; False (counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            stats = self._pair(job.live, job.shadow)
            stats.dropped += 1
            self._bound_pair(job.live, job.shadow).dropped.inc()
            return False
        return True

    def stats(self, live: LoadedModel, shadow: LoadedModel) -> dict[str, Any]:
        """The pair's figures since its shadow was loaded (zeros before any request)."""
        return self._pair(live, shadow).view()

    def forget(self, keep: tuple[str, str] | None) -> None:
        """Drop the figures of every pair but `keep` (after a swap: a pair that ended)."""
        with self._lock:
            for key in [k for k in self._stats if k != keep]:
                del self._stats[key]

    def _pair(self, live: LoadedModel, shadow: LoadedModel) -> PairStats:
        key = (live.ref.key, shadow.ref.key)
        with self._lock:
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = PairStats(live.version, shadow.version)
            return stats

    def _bound_pair(self, live: LoadedModel, shadow: LoadedModel) -> _Bound:
        key = (live.ref.key, shadow.ref.key)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = _Bound(live, shadow)
        return bound

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs = [first]
            stop = False
            while len(jobs) < BATCH_REQUESTS:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                jobs.append(job)
            metrics.SHADOW_QUEUE.set(self._queue.qsize())
            for group in _by_pair(jobs):
                try:
                    self._predict(group)
                except Exception:  # a shadow that fails must never reach a response
                    log.exception("shadow.predict_failed", version=group[0].shadow.version)
                    stats = self._pair(group[0].live, group[0].shadow)
                    stats.errors += len(group)
                    self._bound_pair(group[0].live, group[0].shadow).errors.inc(len(group))
            if stop:
                return

    def _predict(self, jobs: list[Job]) -> None:
        live, shadow = jobs[0].live, jobs[0].shadow
        bound = self._bound_pair(live, shadow)
        rows = jobs[0].rows if len(jobs) == 1 else np.concatenate([j.rows for j in jobs])
        started = time.perf_counter()
        proba = shadow.predictor.predict_proba(rows)
        seconds = time.perf_counter() - started
        metrics.observe_one(bound.duration, seconds)
        top = proba.argmax(axis=1)
        live_top = np.fromiter((i for j in jobs for i in j.top), np.int64, len(rows))
        live_conf = np.fromiter((c for j in jobs for c in j.confidence), np.float64, len(rows))
        column = bound.column[live_top]
        agreed = column == top
        known = column >= 0
        shadow_p = np.where(known, proba[np.arange(len(rows)), np.maximum(column, 0)], 0.0)
        metrics.observe_many(bound.difference, np.abs(live_conf - shadow_p))
        agreed_rows = int(agreed.sum())
        bound.rows.inc(len(rows))
        bound.agreed.inc(agreed_rows)
        for index, count in enumerate(np.bincount(top, minlength=len(bound.classes)).tolist()):
            if count:
                bound.classes[index].inc(count)
        stats = self._pair(live, shadow)
        stats.rows += len(rows)
        stats.agreed += agreed_rows
        stats.requests += len(jobs)
        emit = self._emit
        if emit is None:
            return
        now = time.time()
        labels = [shadow.classes[i] for i in top.tolist()]
        confidence = proba[np.arange(len(rows)), top].tolist()
        share = seconds * 1000 / len(rows)
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            emit(
                {
                    "request_id": job.request_id,
                    "time": now,
                    "model_name": shadow.ref.name,
                    "model_version": shadow.version,
                    "status": 200,
                    "outcome": "success",
                    "error_source": None,
                    "latency_ms": share * (end - start),
                    "rows": end - start,
                    "labels": labels[start:end],
                    "confidences": confidence[start:end],
                    "shadow": True,
                    "live_version": live.version,
                    "agreed_rows": int(agreed[start:end].sum()),
                }
            )
            start = end


def _by_pair(jobs: list[Job]) -> list[list[Job]]:
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.live.ref.key, job.shadow.ref.key), []).append(job)
    return list(groups.values())


def emitter(loop: asyncio.AbstractEventLoop, add: Callable[[dict[str, Any]], None]) -> Callable:
    """A worker-side `emit` that queues the record on the event loop (the shipper's queue is
    the loop's alone)."""

    def emit(record: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(add, record)

    return emit
