"""`make demo`: the whole loop on this machine, no cluster, no Docker.

MLflow on SQLite under .data/, a training round, the service following the champion, sample
predictions, an alias move picked up without a restart, a summary; then everything it
started is stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devsupport.processes import Process, free_port, http_status, start, start_mlflow, wait_until
from training import contract

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
MODEL = os.environ.get("MLSTACK_MODEL_NAME", contract.DEFAULT_MODEL_NAME)
POLL_SECONDS = 2


def _step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def _call(method: str, url: str, body: object | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _train(tracking_uri: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "training", "--model-name", MODEL, *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        check=True,
    )


def _registry(tracking_uri: str) -> list[dict[str, str]]:
    from mlflow import MlflowClient

    from training.registry import registry_state

    return registry_state(MlflowClient(tracking_uri), MODEL)


def _print_registry(tracking_uri: str) -> None:
    print(f"  {'version':<8} {'aliases':<22} {'gate decision':<14} {'score':<9} onnx")
    for row in _registry(tracking_uri):
        print(
            f"  {row['version']:<8} {row['aliases']:<22} {row['decision']:<14} "
            f"{row['score']:<9} {row['onnx']}"
        )


def main() -> int:
    started: list[Process] = []
    try:
        _step("starting MLflow (SQLite and artifacts under .data/mlflow)")
        mlflow = start_mlflow(
            DATA / "mlflow", int(os.environ.get("MLSTACK_DEMO_MLFLOW_PORT", "0")) or free_port()
        )
        started.append(mlflow)
        print(f"  MLflow UI: {mlflow.url}")

        _step("training round: every candidate family on iris")
        _train(mlflow.url)
        _step("training round: random forest only, no ONNX export (a second version)")
        _train(mlflow.url, "--candidates", "random_forest", "--no-onnx")
        _step("registry")
        _print_registry(mlflow.url)

        _step(f"starting the service (follows models:/{MODEL}@champion every {POLL_SECONDS} s)")
        port = free_port()
        service = start(
            [sys.executable, "-m", "app", "--port", str(port)],
            DATA / "service.log",
            f"http://127.0.0.1:{port}",
            env={
                "MLFLOW_TRACKING_URI": mlflow.url,
                "MLSTACK_MODEL_NAME": MODEL,
                "MLSTACK_POLL_SECONDS": str(POLL_SECONDS),
                "MLSTACK_CACHE_DIR": str(DATA / "model-cache"),
            },
        )
        started.append(service)
        wait_until(lambda: http_status(f"{service.url}/readyz") == 200, 90, "service ready")
        print(f"  ready at {service.url} (docs at {service.url}/docs)")

        record = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        other = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
        _step("POST /predict: one record")
        status, body = _call("POST", f"{service.url}/predict", record)
        print(f"  {status} {json.dumps(body)}")
        first_version = str(body["model_version"])
        _step("POST /predict: a batch of two")
        status, body = _call("POST", f"{service.url}/predict", {"instances": [record, other]})
        print(f"  {status} {json.dumps(body)}")
        _step("POST /predict: an invalid record (a string where a number belongs)")
        status, body = _call("POST", f"{service.url}/predict", {**record, "petal_width": "wide"})
        print(f"  {status} {json.dumps(body)}")

        target = next(r["version"] for r in _registry(mlflow.url) if r["version"] != first_version)
        _step(f"moving alias champion from v{first_version} to v{target} (no restart)")
        from mlflow import MlflowClient

        MlflowClient(mlflow.url).set_registered_model_alias(MODEL, contract.ALIAS_CHAMPION, target)
        moved_at = time.monotonic()
        wait_until(
            lambda: _call("GET", f"{service.url}/model")[1].get("version") == target,
            10 * POLL_SECONDS + 30,
            "the service to follow the alias",
        )
        print(f"  the service serves v{target} after {time.monotonic() - moved_at:.1f} s")
        status, body = _call("POST", f"{service.url}/predict", record)
        print(f"  {status} {json.dumps(body)}")
        _, description = _call("GET", f"{service.url}/model")

        _step("summary")
        _print_registry(mlflow.url)
        print(
            f"  served: {MODEL} v{description['version']} via {description['predictor']}, "
            f"the same process since start (pid {service.proc.pid})"
        )
        print(f"  MLflow data: {DATA / 'mlflow'} (browse it again with `make mlflow`)")
        print(f"  service log: {DATA / 'service.log'}")
        return 0
    except (subprocess.CalledProcessError, TimeoutError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for process in reversed(started):
            process.stop()
        if started:
            print("\nstopped everything the demo started")


if __name__ == "__main__":
    sys.exit(main())
