"""Runs every server through every scenario, then its cold starts, one server at a time."""

from __future__ import annotations

import http.client
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadError, ScenarioResult, WrkRun, run_wrk, summarize
from bench.models import BenchModel
from bench.peers import Context, Server
from bench.prediction_log import LogDelivery
from bench.probe import WrongAnswer, check, first_prediction
from bench.processes import SERVER_CORE, Started, Supervisor
from bench.settings import SCENARIOS, BenchSettings, Scenario

_FAILURES = (
    WrongAnswer,
    LoadError,
    TimeoutError,
    RuntimeError,
    OSError,
    urllib.error.URLError,
    http.client.HTTPException,
)


@dataclass
class ServerRun:
    """Everything measured for one server serving one model."""

    server: str
    label: str
    model: str
    first_start_seconds: float | None = None  # first start: mlstack downloads the model here
    cold_start_seconds: list[float] = field(default_factory=list)  # later starts, cached model
    peak_rss_bytes: int | None = None
    scenarios: dict[str, ScenarioResult] = field(default_factory=dict)
    prediction_log: LogDelivery | None = None  # mlstack-log only: where the records went
    shadow: dict[str, Any] | None = None  # mlstack-shadow only: what its shadow did
    error: str | None = None


@dataclass(frozen=True)
class Runner:
    settings: BenchSettings
    supervisor: Supervisor
    context: Context
    wrk: str

    def measure(self, server: Server, model: BenchModel) -> ServerRun:
        """Load scenarios on one fresh process, then `cold_starts` restarts. A failure is
        recorded in the result (and printed), not raised: the other servers still run."""
        run = ServerRun(server.name, server.label, model.key)
        try:
            with server.companions(self.supervisor, model, self.context):
                self._load(server, model, run)
                if server.cold_starts:
                    self._cold_starts(server, model, run)
        except _FAILURES as exc:
            run.error = f"{type(exc).__name__}: {exc}"
            _say(f"  {server.name:<19} {model.key:<14} FAILED: {run.error[:2000]}")
        return run

    def _start(self, server: Server, model: BenchModel, tag: str) -> tuple[Started, str]:
        launch = server.launch(model, self.context)
        process = self.supervisor.start(
            f"{server.name}-{model.key}-{tag}",
            launch.argv,
            core=SERVER_CORE,
            env=launch.env,
            cwd=launch.cwd,
        )
        return process, launch.predict_url

    def _load(self, server: Server, model: BenchModel, run: ServerRun) -> None:
        process, url = self._start(server, model, "load")
        try:
            run.first_start_seconds = first_prediction(
                server, model, url, process, self.settings.start_timeout_seconds
            )
            _say(f"  {server.name:<19} {model.key:<14} answered {run.first_start_seconds:.1f} s")
            server.settle(url, self.settings.start_timeout_seconds)
            bodies = self._bodies(server, model)
            for rows in bodies:
                check(server, model, url, model.rows(rows))  # a correct 200 before measuring
            for scenario in SCENARIOS:
                run.scenarios[scenario.name] = self._scenario(
                    server, model, process, url, bodies[scenario.rows], scenario
                )
            check(server, model, url, model.rows(1))  # still correct after the load
            run.peak_rss_bytes = process.peak_rss_bytes()
            run.prediction_log = server.prediction_log(url)
            run.shadow = server.shadow_figures(url)
            if run.shadow is not None:
                f = run.shadow
                _say(
                    f"  {server.name:<19} {model.key:<14} shadow: {f.get('requests', 0):,} "
                    f"requests shadowed, {f.get('dropped', 0):,} dropped, agreement "
                    f"{f.get('agreement')}"
                )
            if run.prediction_log is not None:
                log = run.prediction_log
                _say(
                    f"  {server.name:<19} {model.key:<14} prediction log: {log.requests:,} "
                    f"requests, {log.shipped:,} shipped, {log.dropped:,} dropped, "
                    f"{log.queued:,} queued, {log.stored:,} stored; control plane "
                    f"{log.control_cpu_seconds:.1f} CPU s in {log.control_seconds:.0f} s"
                )
        finally:
            self.supervisor.stop(process)

    def _scenario(
        self,
        server: Server,
        model: BenchModel,
        process: Started,
        url: str,
        body: Path,
        scenario: Scenario,
    ) -> ScenarioResult:
        log = self.supervisor.log_dir / "wrk.log"
        if self.settings.warmup_seconds > 0:
            run_wrk(self.wrk, url, body, scenario.connections, self.settings.warmup_seconds, log)
        # The server tree's own CPU over the measured runs (not the warm-up): per request, it
        # depends far less than throughput on what else (wrk, a control plane) runs.
        cpu_before = process.cpu_seconds()
        runs: list[WrkRun] = [
            run_wrk(self.wrk, url, body, scenario.connections, self.settings.duration_seconds, log)
            for _ in range(self.settings.repeats)
        ]
        result = summarize(runs, scenario.rows, process.cpu_seconds() - cpu_before)
        unit = "req/s" if scenario.rows == 1 else "rows/s"
        rate = result.requests_per_second if scenario.rows == 1 else result.rows_per_second
        errors = result.non_2xx + result.socket_errors
        cpu = result.server_cpu_us_per_request
        _say(
            f"  {server.name:<19} {model.key:<14} {scenario.name:<12} {rate:>10,.0f} {unit:<6} "
            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
            f"CPU {'-' if cpu is None else f'{cpu:6.0f}'} µs/req"
            + (f"  {errors} errors" if errors else "")
        )
        return result

    def _cold_starts(self, server: Server, model: BenchModel, run: ServerRun) -> None:
        for attempt in range(self.settings.cold_starts):
            time.sleep(0.5)  # let the previous process's sockets and memory go
            process, url = self._start(server, model, f"cold{attempt + 1}")
            try:
                seconds = first_prediction(
                    server, model, url, process, self.settings.start_timeout_seconds
                )
            finally:
                self.supervisor.stop(process)
            run.cold_start_seconds.append(seconds)
        starts = ", ".join(f"{s:.2f}" for s in run.cold_start_seconds)
        _say(f"  {server.name:<19} {model.key:<14} cold starts {starts} s")

    def _bodies(self, server: Server, model: BenchModel) -> dict[int, Path]:
        directory = self.context.workdir / "bodies"
        directory.mkdir(parents=True, exist_ok=True)
        bodies = {}
        for rows in sorted({scenario.rows for scenario in SCENARIOS}):
            path = directory / f"{server.name}-{model.key}-{rows}.json"
            path.write_bytes(server.body(model, model.rows(rows)))
            bodies[rows] = path
        return bodies


def _say(line: str) -> None:
    print(line, flush=True)
