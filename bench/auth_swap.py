"""`make bench-auth`: what MLflow's basic auth costs the path from an alias move to serving.

The same registry three times, a real `mlflow server` without its basic-auth app, with it
hashing the password on every call, and with it as the chart runs it (checked credentials
cached for 60 s), and a real service following `champion` with the account the chart gives it.
Prints, for each:
- one authenticated registry call (`GET .../registered-models/alias`, what every poll makes):
  median and p95 over `BENCH_AUTH_CALLS` calls;
- alias move -> the service answering with the new version: median and p95 over
  `BENCH_AUTH_MOVES` moves, with the service's own load time (download through MLflow's
  artifact proxy, checks, warm-up) beside it; the rest is waiting for the next poll
  (`MLSTACK_POLL_SECONDS`, printed).

A measurement, never a test: nothing is asserted.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench.adoption import _load_seconds, _log, _pipeline, _served, _wait
from bench.processes import SERVER_CORE, free_port, pin_self_to_load_core, supervised
from bench.settings import REPO_ROOT
from devsupport.processes import MLFLOW_SERVER_ENV, mlflow_auth_env, mlflow_server_command

NAME = "auth-bench"
ROLES = ("training", "control", "inference")


class AuthBenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_AUTH_", extra="ignore", frozen=True)

    moves: int = Field(10, ge=1, description="Alias moves timed per server.")
    calls: int = Field(50, ge=1, description="Registry calls timed per server.")
    poll_seconds: float = Field(1.0, gt=0, description="The service's MLSTACK_POLL_SECONDS.")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _run(auth: bool, cache_seconds: int, settings: AuthBenchSettings, work: Path) -> list[str]:
    label = f"basic auth, credentials cached {cache_seconds} s" if cache_seconds else "basic auth"
    label = label if auth else "no auth"
    directory = work / f"{int(auth)}-{cache_seconds}"
    directory.mkdir()
    secret_dir = directory / "secret"
    secret_dir.mkdir()
    for key in ("admin", *ROLES):
        (secret_dir / f"{key}-password").write_text(secrets.token_urlsafe(24))

    def password(role: str) -> str:
        return (secret_dir / f"{role}-password").read_text()

    with supervised(directory / "logs") as supervisor:
        port = free_port()
        uri = f"http://127.0.0.1:{port}"
        command = mlflow_server_command(directory, port)
        env = dict(MLFLOW_SERVER_ENV)
        if auth:
            command += ["--app-name", "basic-auth"]
            env.update(mlflow_auth_env(directory, password("admin"), cache_seconds))
        supervisor.start("mlflow-server", command, core=SERVER_CORE, env=env)
        _wait(lambda: httpx.get(f"{uri}/health", timeout=2).status_code == 200, 120, "mlflow")
        clients: dict[str, dict[str, str]] = {r: {} for r in ROLES}
        if auth:
            done = subprocess.run(
                [sys.executable, "-m", "control.accounts", "--tracking-uri", uri,
                 "--secret-dir", str(secret_dir),
                 *(f"--account={r}=mlstack-{r}" for r in ROLES)],
                capture_output=True, text=True, cwd=REPO_ROOT, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"accounts failed:\n{done.stderr[-2000:]}")
            clients = {
                r: {
                    "MLFLOW_TRACKING_USERNAME": f"mlstack-{r}",
                    "MLFLOW_TRACKING_PASSWORD": password(r),
                }
                for r in ROLES
            }
        os.environ.update(clients["training"])
        pipe, frame = _pipeline("logreg")
        versions = [_log(uri, NAME, pipe, frame) for _ in range(settings.moves + 1)]
        os.environ.update(clients["control"])
        from mlflow import MlflowClient

        MlflowClient(uri).set_registered_model_alias(NAME, "champion", versions[0])

        account = clients["inference"]
        credentials = (
            (account["MLFLOW_TRACKING_USERNAME"], account["MLFLOW_TRACKING_PASSWORD"])
            if auth
            else None
        )
        calls = []
        with httpx.Client(auth=credentials, timeout=10) as client:
            for _ in range(settings.calls):
                started = time.perf_counter()
                response = client.get(
                    f"{uri}/api/2.0/mlflow/registered-models/alias",
                    params={"name": NAME, "alias": "champion"},
                )
                calls.append(time.perf_counter() - started)
                response.raise_for_status()

        app_port = free_port()
        app = f"http://127.0.0.1:{app_port}"
        supervisor.start(
            "mlstack",
            [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(app_port)],
            core=SERVER_CORE,
            env={
                "MLFLOW_TRACKING_URI": uri,
                "MLSTACK_MODEL_NAME": NAME,
                "MLSTACK_CACHE_DIR": str(directory / "cache"),
                "MLSTACK_POLL_SECONDS": str(settings.poll_seconds),
                "PYTHONWARNINGS": "ignore",
                **account,
            },
            cwd=REPO_ROOT,
        )
        _wait(lambda: _served(app).get("version") == versions[0], 120, "the service")
        moves, loads = [], []
        for version in versions[1:]:
            loaded = _load_seconds(app)
            started = time.monotonic()
            MlflowClient(uri).set_registered_model_alias(NAME, "champion", version)
            _wait(lambda v=version: _served(app).get("version") == v, 120, f"v{version}")
            moves.append(time.monotonic() - started)
            loads.append(_load_seconds(app) - loaded)
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        os.environ.pop(key, None)
    ms = 1000
    return [
        f"{label}:",
        f"  registry call (GET alias): median {statistics.median(calls) * ms:.1f} ms, "
        f"p95 {_p95(calls) * ms:.1f} ms over {len(calls)} calls",
        f"  alias move -> serving: median {statistics.median(moves):.2f} s, p95 "
        f"{_p95(moves):.2f} s over {len(moves)} moves (load median {statistics.median(loads):.3f}"
        f" s, p95 {_p95(loads):.3f} s; poll every {settings.poll_seconds:g} s)",
    ]


def main() -> int:
    settings = AuthBenchSettings()
    pin_self_to_load_core()
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-auth-"))
    # The chart's default caches checked credentials for 60 s (mlflow.auth.cacheSeconds).
    for auth, cache_seconds in ((False, 0), (True, 0), (True, 60)):
        print("\n".join(_run(auth, cache_seconds, settings, work)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
