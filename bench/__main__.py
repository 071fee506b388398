"""`python -m bench` (`make bench`): mlstack against MLServer, KServe and `mlflow models serve`,
mlstack against itself with its prediction log on, and mlstack's protocol routes against the
peer that defines each protocol and against its own `/predict`.

Exit status: 0 when every server was measured (targets are reported, not enforced),
1 when a server failed to start or answered wrongly, 2 for invalid settings, 130 on Ctrl-C.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.environments import ToolError, ensure_wrk, requirements
from bench.models import start_mlflow, train_and_export
from bench.peers import Context, servers
from bench.processes import pin_self_to_load_core, supervised
from bench.report import protocol_targets, render, targets, write_json
from bench.runner import Runner, ServerRun
from bench.settings import OWN, REPO_ROOT, SCENARIOS, BenchSettings


def main() -> int:
    try:
        settings = BenchSettings()
    except ValidationError as exc:
        for error in exc.errors():
            print(f"error: {error['msg']}", file=sys.stderr)
        return 2
    try:
        return _run(settings)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the benchmark started was stopped", file=sys.stderr)
        return 130
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(settings: BenchSettings) -> int:
    pin_self_to_load_core()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir = settings.results_dir / stamp
    print(f"bench: {_plan(settings)}; results in {_shown(out_dir)}", flush=True)
    wrk = ensure_wrk()
    chosen = servers(settings.servers)
    for server in chosen:
        server.prepare()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="mlstack-bench-"))
    runs: list[ServerRun] = []
    try:
        with supervised(out_dir / "logs") as supervisor:
            print("bench: starting mlflow server and training the models", flush=True)
            tracking = start_mlflow(supervisor, workdir / "mlflow", settings.start_timeout_seconds)
            models = [
                train_and_export(key, tracking.url, workdir / "models") for key in settings.models
            ]
            context = Context(tracking.url, workdir, settings.start_timeout_seconds)
            runner = Runner(settings, supervisor, context, wrk)
            for model in models:
                for server in chosen:
                    runs.append(runner.measure(server, model))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    goals = targets(runs)
    protocol_goals = protocol_targets(runs)
    meta = _meta(settings, wrk, load_before)
    text = render(runs, goals, _header(meta), protocol_goals)
    print("\n" + text, flush=True)
    write_json(out_dir / "results.json", runs, goals, meta, protocol_goals)
    (out_dir / "report.md").write_text(text)
    print(f"bench: wrote {_shown(out_dir / 'results.json')} and report.md", flush=True)
    return 1 if any(run.error for run in runs) else 0


def _plan(settings: BenchSettings) -> str:
    mode = "quick, " if settings.quick else ""
    return (
        f"{mode}{settings.repeats} x {settings.duration_seconds:g} s per scenario after "
        f"{settings.warmup_seconds:g} s warm-up, {settings.cold_starts} cold starts; "
        f"servers {','.join(settings.servers)}; models {','.join(settings.models)}"
    )


def _meta(
    settings: BenchSettings, wrk: str, load_before: tuple[float, float, float]
) -> dict[str, Any]:
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": settings.model_dump(mode="json"),
        "scenarios": [vars(s) for s in SCENARIOS],
        "host": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "wrk": wrk_version.splitlines()[0] if wrk_version else "?",
        "peers": {name: requirements(name) for name in settings.servers if name not in OWN},
    }


def _header(meta: dict[str, Any]) -> list[str]:
    host, config = meta["host"], meta["settings"]
    load = "/".join(f"{x:.1f}" for x in host["load_average_before"])
    return [
        f"## mlstack benchmark, {meta['date_utc']}",
        "",
        f"{host['cpu']}, {host['cores']} cores: servers pinned to core 0, wrk (1 thread) to "
        f"core 1, loopback. {config['repeats']} x {config['duration_seconds']:g} s per "
        f"scenario after {config['warmup_seconds']:g} s warm-up; {config['cold_starts']} cold "
        f"starts per server. Load average before the run {load} (a shared machine: compare "
        "ratios, not absolute figures).",
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
