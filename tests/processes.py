"""Starting and stopping the real processes the tests run against."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hack.local import (
    Process,
    free_port,
    http_status,
    start,
    start_mlflow,
    wait_until,
)

__all__ = [
    "Process",
    "free_port",
    "http_status",
    "start_app",
    "start_mlflow",
    "train_model",
    "wait_until",
]


def train_model(tracking_uri: str, name: str, *args: str) -> None:
    """Run a real training round (`python -m training`) and fail with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "training", "--model-name", name, "--experiment", name, *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"training failed ({result.returncode}):\n{result.stderr[-3000:]}")


def start_app(
    directory: Path,
    tracking_uri: str,
    model_name: str,
    wait_ready: bool = True,
    env: dict[str, str] | None = None,
) -> Process:
    """A real uvicorn process: `python -m app` on a free port, following model_name@champion."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    process = start(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
        directory / f"app-{port}.log",
        url,
        env={
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLSTACK_MODEL_NAME": model_name,
            "MLSTACK_CACHE_DIR": str(directory / "cache"),
            "MLSTACK_POLL_SECONDS": "1",
            "MLSTACK_RETRY_MAX_SECONDS": "2",
            **(env or {}),
        },
    )
    try:
        wait_until(lambda: http_status(f"{url}/livez") == 200, 60, f"service live on {url}")
        if wait_ready:
            wait_until(lambda: http_status(f"{url}/readyz") == 200, 60, f"service ready on {url}")
    except TimeoutError:
        process.stop()
        raise TimeoutError(f"service did not start:\n{process.output()[-3000:]}") from None
    return process
