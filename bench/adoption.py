"""`make bench-adopt`: a notebook model (a Pipeline logged with plain MLflow calls) served by
mlstack, before and after `mlstack adopt`.

Prints, for each model:
- the time from the alias moving to the service answering with the new version, without
  extras (scikit-learn) and with them (ONNX): the median of `BENCH_ADOPT_MOVES` moves, with
  the service's own load time beside it (the rest is waiting for the next poll,
  `MLSTACK_POLL_SECONDS`, printed);
- how long `mlstack adopt` itself takes;
- `/predict` req/s, p50 and p99 for single rows at c=16 through each predictor, wrk on the
  load core and the server alone on the other.

A measurement, never a test: nothing is asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench.environments import ensure_wrk
from bench.load import run_wrk, summarize
from bench.models import start_mlflow
from bench.processes import SERVER_CORE, free_port, pin_self_to_load_core, supervised
from bench.settings import REPO_ROOT

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ROW = (5.1, 3.5, 1.4, 0.2)


class AdoptBenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_ADOPT_", extra="ignore", frozen=True)

    moves: int = Field(5, ge=1, description="Alias moves timed per predictor (median kept).")
    poll_seconds: float = Field(1.0, gt=0, description="The service's MLSTACK_POLL_SECONDS.")
    seconds: float = Field(10.0, gt=0, description="Length of each measured wrk run.")
    repeats: int = Field(3, ge=1, description="Measured wrk runs per predictor (median kept).")
    connections: int = Field(16, ge=1, description="wrk connections.")
    models: str = Field("logreg,random_forest", description="Pipelines to log: logreg, rf.")


def _pipeline(kind: str) -> Any:
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris()
    x = pd.DataFrame(iris.data, columns=list(FEATURES))
    y = [str(iris.target_names[t]) for t in iris.target]
    last = (
        LogisticRegression(max_iter=500)
        if kind == "logreg"
        else RandomForestClassifier(100, random_state=0)
    )
    return make_pipeline(StandardScaler(), last).fit(x, y), x.assign(species=y)


def _log(uri: str, name: str, pipe: Any, frame: Any) -> str:
    """What a notebook does: mlflow.sklearn.log_model with a signature and an input example."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    x = frame[list(FEATURES)]
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            pipe,
            name="model",
            signature=infer_signature(x, pipe.predict(x)),
            input_example=x.head(3),
            registered_model_name=name,
            pip_requirements=["scikit-learn"],
            # What MLflow's own error asks a notebook user to add for tree ensembles.
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    return str(info.registered_model_version)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{what} not within {timeout:g} s")


def _served(app: str) -> dict[str, Any]:
    """GET /model; {} while nothing is served (503)."""
    response = httpx.get(f"{app}/model", timeout=5)
    body: dict[str, Any] = response.json() if response.status_code == 200 else {}
    return body


def _load_seconds(app: str) -> float:
    """The service's total model load time so far (its load duration histogram's sum)."""
    for line in httpx.get(f"{app}/metrics", timeout=5).text.splitlines():
        if line.startswith("mlstack_model_load_duration_seconds_sum"):
            return float(line.split()[-1])
    return 0.0


def _move(uri: str, app: str, name: str, version: str) -> tuple[float, float, str]:
    """Move champion to `version`; (seconds until the service answers with it, the service's
    own load seconds for it, its predictor)."""
    from mlflow import MlflowClient

    loaded = _load_seconds(app)
    started = time.monotonic()
    MlflowClient(uri).set_registered_model_alias(name, "champion", version)
    _wait(lambda: _served(app).get("version") == version, 120, f"v{version} served")
    seconds = time.monotonic() - started
    return seconds, _load_seconds(app) - loaded, str(_served(app)["predictor"])


def _load(wrk: str, url: str, settings: AdoptBenchSettings, work: Path, server: Any) -> Any:
    body = work / "body.json"
    body.write_text(json.dumps(dict(zip(FEATURES, ROW, strict=True))))
    run_wrk(wrk, url, body, settings.connections, 2, work / "wrk.log")  # warm-up
    cpu = server.cpu_seconds()
    runs = [
        run_wrk(wrk, url, body, settings.connections, settings.seconds, work / "wrk.log")
        for _ in range(settings.repeats)
    ]
    return summarize(runs, 1, server.cpu_seconds() - cpu)


def main() -> int:
    settings = AdoptBenchSettings()
    pin_self_to_load_core()
    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-adopt-"))
    lines: list[str] = []
    with supervised(work / "logs") as supervisor:
        tracking = start_mlflow(supervisor, work / "mlflow", timeout=120)
        uri = tracking.url
        for kind in [k.strip() for k in settings.models.split(",") if k.strip()]:
            name = f"notebook-{kind}"
            pipe, frame = _pipeline(kind)
            versions = [_log(uri, name, pipe, frame) for _ in range(2 * settings.moves + 1)]
            from mlflow import MlflowClient

            MlflowClient(uri).set_registered_model_alias(name, "champion", versions[0])
            port = free_port()
            app = f"http://127.0.0.1:{port}"
            server = supervisor.start(
                f"mlstack-{kind}",
                [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
                core=SERVER_CORE,
                env={
                    "MLFLOW_TRACKING_URI": uri,
                    "MLSTACK_MODEL_NAME": name,
                    "MLSTACK_CACHE_DIR": str(work / f"cache-{kind}"),
                    "MLSTACK_POLL_SECONDS": str(settings.poll_seconds),
                    "PYTHONWARNINGS": "ignore",
                },
                cwd=REPO_ROOT,
            )
            first = versions[0]
            _wait(lambda a=app, v=first: _served(a).get("version") == v, 120, "the service")
            plain = [_move(uri, app, name, v) for v in versions[1 : settings.moves + 1]]
            sklearn = _load(wrk, f"{app}/predict", settings, work, server)

            sample = work / f"sample-{kind}.csv"
            frame.to_csv(sample, index=False)
            adopt_seconds = []
            for version in versions[settings.moves + 1 :]:
                started = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-m", "control", "adopt", name, version,
                     "--data", str(sample), "--target", "species"],
                    env={**os.environ, "MLFLOW_TRACKING_URI": uri},
                    capture_output=True, text=True, cwd=REPO_ROOT, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    raise RuntimeError(f"mlstack adopt failed:\n{done.stderr[-2000:]}")
                adopt_seconds.append(time.monotonic() - started)
            adopted = [_move(uri, app, name, v) for v in versions[settings.moves + 1 :]]
            onnx = _load(wrk, f"{app}/predict", settings, work, server)
            supervisor.stop(server)

            def median(values: list[float]) -> float:
                return statistics.median(values)

            lines.append(f"{name} (a Pipeline logged with mlflow.sklearn.log_model)")
            for label, moves in (("without adopt", plain), ("with adopt", adopted)):
                predictor = moves[0][2]
                lines.append(
                    f"  alias move -> serving, {label:<13} ({predictor:>7}): "
                    f"median {median([m[0] for m in moves]):.2f} s over {len(moves)} moves "
                    f"(load {median([m[1] for m in moves]):.3f} s, poll every "
                    f"{settings.poll_seconds:g} s)"
                )
            lines.append(f"  mlstack adopt: median {median(adopt_seconds):.1f} s")
            for label, result in (("sklearn", sklearn), ("onnx", onnx)):
                lines.append(
                    f"  /predict single row c={settings.connections} via {label:<7}: "
                    f"{result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                    f"p99 {result.p99_ms:.2f} ms, {result.non_2xx} non-2xx"
                )
            if sklearn.requests_per_second:
                ratio = onnx.requests_per_second / sklearn.requests_per_second
                lines.append(f"  onnx / sklearn throughput: {ratio:.1f}x")
            print("\n".join(lines), flush=True)
            lines.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
