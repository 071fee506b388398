"""Load generation with wrk, pinned to the load core, and the medians of repeated runs."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.processes import LOAD_CORE
from bench.settings import BENCH_DIR

LUA_SCRIPT = BENCH_DIR / "wrk_post.lua"
# Slow peers under 64 connections answer in over a second: wrk's default 2 s timeout
# would count those as errors instead of measuring them.
_TIMEOUT = "30s"


class LoadError(RuntimeError):
    """wrk failed or printed no result."""


@dataclass(frozen=True)
class WrkRun:
    """One wrk run. Latencies in milliseconds."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class ScenarioResult:
    """Medians over the measured runs of one scenario; error counts are totals."""

    requests_per_second: float
    rows_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    # CPU of the server's process tree over all measured runs, per request wrk completed
    # (any status): what one request costs the server itself, far less sensitive than
    # throughput to what else runs on the cores.
    server_cpu_us_per_request: float | None  # None: no request completed
    runs: tuple[WrkRun, ...]


def run_wrk(
    wrk: str, url: str, body_file: Path, connections: int, seconds: float, log: Path
) -> WrkRun:
    """One wrk run: one thread (one core), `connections` connections, POSTing `body_file`."""
    cmd = [
        "taskset",
        "-c",
        str(LOAD_CORE),
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, math.ceil(seconds))}s",
        "--timeout",
        _TIMEOUT,
        "--script",
        str(LUA_SCRIPT),
        url,
        "--",
        str(body_file),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(cmd)}\n{result.stdout}{result.stderr}\n")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise LoadError(f"wrk exited {result.returncode} on {url}: {result.stderr.strip()}")
    raw = json.loads(lines[-1])
    return WrkRun(
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        non_2xx=int(raw["non_2xx"]),
        socket_errors=sum(
            int(raw[key]) for key in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )


def summarize(
    runs: list[WrkRun], rows_per_request: int, server_cpu_seconds: float
) -> ScenarioResult:
    """Medians of `runs`; `server_cpu_seconds` is the server tree's CPU time over all of them
    (from just before the first to just after the last)."""
    rps = statistics.median(run.requests_per_second for run in runs)
    requests = sum(run.requests for run in runs)
    return ScenarioResult(
        requests_per_second=rps,
        rows_per_second=rps * rows_per_request,
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        non_2xx=sum(run.non_2xx for run in runs),
        socket_errors=sum(run.socket_errors for run in runs),
        server_cpu_us_per_request=server_cpu_seconds * 1e6 / requests if requests else None,
        runs=tuple(runs),
    )
