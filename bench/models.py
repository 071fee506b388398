"""The models under test: trained by the project's own CLI into a real MLflow server, then
exported, unchanged, to what each peer loads.

mlstack reads the registry itself. The peers get the very same fitted estimator: a joblib
file (MLServer, KServe) and a local copy of the logged MLflow model (`mlflow models serve`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.processes import LOAD_CORE, Started, Supervisor, free_port
from bench.settings import REPO_ROOT
from devsupport.processes import MLFLOW_SERVER_ENV, mlflow_server_command

ALIAS = "champion"
EXPERIMENT = "bench"
# Family given to `python -m training --candidates`, and the registered name it is served as.
REGISTERED: dict[str, tuple[str, str]] = {
    "logreg": ("logreg", "bench-logreg"),
    "random_forest": ("random_forest", "bench-rf"),
}


@dataclass(frozen=True)
class BenchModel:
    """One registered model and its copies for the peers."""

    key: str
    name: str  # registered model name
    features: tuple[str, ...]
    classes: tuple[str, ...]
    joblib_file: Path
    mlflow_dir: Path
    estimator: Any

    def rows(self, count: int) -> np.ndarray:
        """`count` iris rows (float64, feature order): the first is the brief's 5.1/3.5/1.4/0.2;
        a batch mixes all three species."""
        from sklearn.datasets import load_iris

        data = np.asarray(load_iris().data, dtype=np.float64)
        if count == 1:
            return data[:1]
        picks = np.random.default_rng(0).choice(len(data), size=count, replace=False)
        return data[np.sort(picks)]

    def expected(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities in `classes` order, as scikit-learn computes them."""
        proba = np.asarray(self.estimator.predict_proba(rows))
        order = [list(map(str, self.estimator.classes_)).index(c) for c in self.classes]
        return proba[:, order]


@dataclass(frozen=True)
class Tracking:
    url: str
    process: Started


def start_mlflow(supervisor: Supervisor, directory: Path, timeout: float) -> Tracking:
    """A real `mlflow server` (SQLite, artifacts served, two processes), on the load core."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    directory.mkdir(parents=True, exist_ok=True)
    process = supervisor.start(
        "mlflow-server",
        mlflow_server_command(directory, port),
        core=LOAD_CORE,
        env=MLFLOW_SERVER_ENV,
    )
    probe = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"mlflow server exited:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(probe, timeout=2) as response:
                if response.status == 200:
                    return Tracking(url, process)
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"mlflow server on {url} not up after {timeout:g} s:\n{process.log_tail()}")


def train_and_export(key: str, tracking_url: str, directory: Path) -> BenchModel:
    """Register `key` with `python -m training`, then write the peers' copies of it."""
    family, name = REGISTERED[key]
    cmd = [
        sys.executable,
        "-m",
        "training",
        "--candidates",
        family,
        "--model-name",
        name,
        "--experiment",
        EXPERIMENT,
        "--min-score",
        "0",
    ]
    result = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_url},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"training {name} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return _export(key, name, tracking_url, directory / key)


def _export(key: str, name: str, tracking_url: str, directory: Path) -> BenchModel:
    import joblib
    import mlflow
    import mlflow.artifacts
    import mlflow.sklearn

    from training import contract

    mlflow.set_tracking_uri(tracking_url)
    uri = f"models:/{name}@{ALIAS}"
    directory.mkdir(parents=True, exist_ok=True)
    mlflow_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(directory / "mlflow")))
    manifest = contract.Manifest.from_json((mlflow_dir / contract.MANIFEST_FILE).read_text())
    estimator = mlflow.sklearn.load_model(str(mlflow_dir))
    joblib_file = directory / "model.joblib"
    joblib.dump(estimator, joblib_file)
    return BenchModel(
        key=key,
        name=name,
        features=tuple(manifest.features),
        classes=tuple(manifest.classes),
        joblib_file=joblib_file,
        mlflow_dir=mlflow_dir,
        estimator=estimator,
    )
