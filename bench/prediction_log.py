"""The `mlstack-log` variant's control plane, and where its prediction records went.

A real `mlstack serve` (the control/ service: SQLite in the bench's scratch directory, its API
key on) receives the records the service ships. It stands in for a control plane on another
node, but two cores leave it none of its own: the server has core 0, wrk core 1. At normal
priority on the load core it would take CPU from wrk under load, so wrk would send fewer
requests and mlstack-log would look slower than the service is. It therefore runs there under
SCHED_IDLE (every thread, set once it is ready): it gets the CPU wrk leaves idle and, while
wrk wants the core, only the kernel's smallest share. Records it cannot take in time wait in
the service's queue; beyond the queue's bound they are dropped, and `delivery()` counts them.
After the load the core is free again and the drain lets it catch up.

What logging costs the inference process itself (building, queueing and sending the records)
is the server's own CPU per request, which the runner measures for every server.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.processes import LOAD_CORE, Started, Supervisor, free_port
from bench.settings import REPO_ROOT

_HEADER = "x-api-key"  # the control plane's default MLSTACK_CONTROL_API_KEY_HEADER
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ControlPlane:
    url: str
    key_file: Path
    process: Started
    ready_at: float  # time.monotonic() when it first answered
    cpu_at_ready: float  # CPU seconds it had used by then (start-up, migration)


@dataclass(frozen=True)
class LogDelivery:
    """Where the records of one load phase went: one record per /predict request."""

    requests: int  # /predict requests the service answered (mlstack_requests_total)
    shipped: int  # accepted by the control plane (mlstack_prediction_log_shipped_total)
    dropped: int  # queue full or refused (mlstack_prediction_log_dropped_total)
    queued: int  # still waiting in the service when counted (mlstack_prediction_log_queue)
    stored: int  # what the control plane holds (GET /v1/predictions `total`)
    control_cpu_seconds: float  # CPU the control plane used since it was ready (load core)
    control_seconds: float  # wall time since it was ready: the load, checks and the drain


def start_control_plane(
    supervisor: Supervisor, directory: Path, tracking_url: str, timeout: float
) -> ControlPlane:
    """`python -m control serve` on a free port of the load core, ready (its database
    migrated), then under SCHED_IDLE. Raises RuntimeError when it exits, TimeoutError when it
    is not ready within `timeout` seconds, OSError when the kernel refuses SCHED_IDLE."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / "api-key"
    key_file.write_text(secrets.token_urlsafe(24) + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = supervisor.start(
        f"control-plane-{directory.name}",
        [sys.executable, "-m", "control", "serve", "--host", "127.0.0.1", "--port", str(port)],
        core=LOAD_CORE,
        env={
            "MLFLOW_TRACKING_URI": tracking_url,
            "MLSTACK_CONTROL_SQLITE_PATH": str(directory / "predictions.db"),
            "MLSTACK_CONTROL_API_KEY_FILE": str(key_file),
        },
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + timeout
    while _status(f"{url}/readyz") != 200:
        if not process.alive():
            raise RuntimeError(f"control plane exited:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            supervisor.stop(process)
            raise TimeoutError(
                f"control plane on {url} not ready after {timeout:g} s:\n{process.log_tail()}"
            )
        time.sleep(_POLL_SECONDS)
    try:
        process.run_only_when_idle()
    except OSError:
        supervisor.stop(process)
        raise
    return ControlPlane(url, key_file, process, time.monotonic(), process.cpu_seconds())


def delivery(metrics_url: str, plane: ControlPlane, timeout: float) -> LogDelivery:
    """The counts once the service's queue is empty and the control plane holds every record
    it accepted, or as they stand after `timeout` seconds. Raises RuntimeError when no record
    reached the control plane."""
    deadline = time.monotonic() + timeout
    while True:
        counts = _count(metrics_url, plane)
        settled = counts.queued == 0 and counts.stored == counts.shipped
        if settled or time.monotonic() > deadline:
            break
        time.sleep(_POLL_SECONDS)
    if counts.stored == 0:
        raise RuntimeError(
            f"no prediction record reached the control plane at {plane.url} "
            f"({counts}):\n{plane.process.log_tail()}"
        )
    return counts


def _count(metrics_url: str, plane: ControlPlane) -> LogDelivery:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def total(name: str, **labels: str) -> int:
        matching = (
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
        return int(sum(matching))

    key = plane.key_file.read_text().strip()
    request = urllib.request.Request(f"{plane.url}/v1/predictions?limit=1", headers={_HEADER: key})
    with urllib.request.urlopen(request, timeout=10) as response:
        stored = int(json.loads(response.read())["total"])
    return LogDelivery(
        requests=total("mlstack_requests_total", route="/predict"),
        shipped=total("mlstack_prediction_log_shipped_total"),
        dropped=total("mlstack_prediction_log_dropped_total"),
        queued=total("mlstack_prediction_log_queue"),
        stored=stored,
        control_cpu_seconds=plane.process.cpu_seconds() - plane.cpu_at_ready,
        control_seconds=time.monotonic() - plane.ready_at,
    )


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None
