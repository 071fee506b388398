"""The servers under test: how each is started, what it is sent, how its answer is read.

Each is configured as its users would configure it for speed: one worker, no per-request
access log. Every one returns class probabilities, so each does the same work per row.
Warnings are silenced for all alike (KServe 0.21 with a current FastAPI prints a
deprecation warning on every request otherwise).

`mlstack-log` is mlstack again, with its prediction log shipping to a real control plane;
`mlstack-shadow` with a challenger shadowed on every request.
`mlstack-v2`, `mlstack-v1` and `mlstack-invocations` are mlstack again, each sent the body of
the peer that defines that protocol (MLServer, KServe, `mlflow models serve`), to compare each
protocol route with its peer and with mlstack's own `/predict`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.environments import PeerEnv, ensure_peer_env
from bench.models import ALIAS, BenchModel
from bench.prediction_log import ControlPlane, LogDelivery, delivery, start_control_plane
from bench.processes import Supervisor, free_port
from bench.settings import BENCH_DIR, REPO_ROOT

_COMMON_ENV = {"PYTHONWARNINGS": "ignore"}


@dataclass(frozen=True)
class Launch:
    """What to run for one server process, and where it answers predictions."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path | None
    predict_url: str


@dataclass(frozen=True)
class Context:
    """What every launch may need: the tracking server and a scratch directory."""

    tracking_url: str
    workdir: Path
    start_timeout_seconds: float


class Server(ABC):
    """One server under test."""

    name: str
    label: str
    # False for mlstack's protocol routes: the same process as `mlstack`, so its starts say
    # nothing new (the load phase still checks its first answer).
    cold_starts: bool = True

    def prepare(self) -> None:  # noqa: B027 - most servers need nothing prepared
        """Install whatever the server needs (called once, before any launch)."""

    def companions(
        self, supervisor: Supervisor, model: BenchModel, context: Context
    ) -> AbstractContextManager[None]:
        """Processes the server talks to, running around all of its launches for `model`
        (none for most)."""
        return nullcontext()

    @abstractmethod
    def launch(self, model: BenchModel, context: Context) -> Launch: ...

    def settle(self, predict_url: str, timeout: float) -> None:  # noqa: B027 - most are settled
        """Wait until the server is as it is to be measured (called after its first answer)."""

    def shadow_figures(self, predict_url: str) -> dict[str, Any] | None:
        """mlstack-shadow only: what its shadow did during the load."""
        return None

    def prediction_log(self, predict_url: str) -> LogDelivery | None:
        """Where the prediction records of the load went (None: the server keeps none)."""
        return None

    @abstractmethod
    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        """The request body asking for probabilities of `rows` (float64, feature order)."""

    @abstractmethod
    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        """Probabilities in `model.classes` order from a decoded response; raises
        KeyError, IndexError, TypeError or ValueError when the answer has another shape."""


class Mlstack(Server):
    name = "mlstack"
    label = "mlstack"

    def prepare(self) -> None:
        if not (REPO_ROOT / "app" / "__main__.py").exists():
            raise RuntimeError("app/__main__.py is missing: the mlstack service cannot start")

    def launch(self, model: BenchModel, context: Context) -> Launch:
        port = free_port()
        return Launch(
            argv=[sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
            env={
                **_COMMON_ENV,
                "MLFLOW_TRACKING_URI": context.tracking_url,
                "MLSTACK_MODEL_NAME": model.name,
                "MLSTACK_MODEL_ALIAS": ALIAS,
                # Kept across restarts: later starts find the version cached and only
                # resolve the alias (the "cached model" cold start).
                "MLSTACK_CACHE_DIR": str(context.workdir / "mlstack-cache" / model.key),
            },
            cwd=REPO_ROOT,
            predict_url=f"http://127.0.0.1:{port}/predict",
        )

    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        if len(rows) == 1:  # one named record, as a user sends one row
            return json.dumps(dict(zip(model.features, map(float, rows[0]), strict=True))).encode()
        # Batches in mlstack's compact form (names once, rows as arrays), as KServe's V1 and
        # MLServer's V2 bodies are; {"instances": [records]} also works, at more cost per row.
        return json.dumps({"columns": list(model.features), "data": rows.tolist()}).encode()

    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        if "predictions" in payload:
            return np.array(
                [
                    [float(p["probabilities"][c]) for c in model.classes]
                    for p in payload["predictions"]
                ]
            )
        order = [payload["classes"].index(c) for c in model.classes]
        return np.asarray(payload["probabilities"], dtype=np.float64)[:, order]


class MlstackLog(Mlstack):
    """mlstack with its prediction log on: every request's record shipped to a real control
    plane (`mlstack serve`, SQLite), one per model, with the service's default batching."""

    name = "mlstack-log"
    label = "mlstack, prediction log on"
    _plane: ControlPlane | None = None

    def prepare(self) -> None:
        super().prepare()
        if not (REPO_ROOT / "control" / "__main__.py").exists():
            raise RuntimeError("control/__main__.py is missing: the control plane cannot start")

    @contextmanager
    def companions(
        self, supervisor: Supervisor, model: BenchModel, context: Context
    ) -> Iterator[None]:
        plane = start_control_plane(
            supervisor,
            context.workdir / "control" / model.key,
            context.tracking_url,
            context.start_timeout_seconds,
        )
        self._plane = plane
        try:
            yield
        finally:
            self._plane = None
            supervisor.stop(plane.process)

    @property
    def plane(self) -> ControlPlane:
        if self._plane is None:
            raise RuntimeError(f"{self.name}: launched outside companions()")
        return self._plane

    def launch(self, model: BenchModel, context: Context) -> Launch:
        launch = super().launch(model, context)
        shipping = {
            "MLSTACK_PREDICTION_LOG_URL": self.plane.url,
            "MLSTACK_PREDICTION_LOG_API_KEY_FILE": str(self.plane.key_file),
        }
        return dataclasses.replace(launch, env={**launch.env, **shipping})

    def prediction_log(self, predict_url: str) -> LogDelivery:
        metrics_url = predict_url.removesuffix("/predict") + "/metrics"
        return delivery(metrics_url, self.plane, timeout=30.0)


class MlstackShadow(Mlstack):
    """mlstack with a challenger shadowed on every request (MLSTACK_SHADOW_PERCENT=100): the
    other benchmark model's files registered as a challenger version of this one (the same
    model's when it is the only one trained), the alias removed after the run."""

    name = "mlstack-shadow"
    label = "mlstack, shadow at 100%"
    cold_starts = False  # mlstack's process: its starts say nothing new
    challenger = ""

    @contextmanager
    def companions(
        self, supervisor: Supervisor, model: BenchModel, context: Context
    ) -> Iterator[None]:
        from mlflow import MlflowClient

        from bench.models import REGISTERED
        from training import contract

        client = MlflowClient(context.tracking_url)
        source = client.get_model_version_by_alias(model.name, ALIAS)
        for _, other in REGISTERED.values():
            if other != model.name:
                try:
                    source = client.get_model_version_by_alias(other, ALIAS)
                except Exception:
                    continue
        # A logged model's source is models:/<model id>: MLflow asks for that id with it.
        model_id = source.model_id or source.source.removeprefix("models:/")
        challenger = client.create_model_version(
            model.name, source.source, run_id=source.run_id, model_id=model_id
        )
        self.challenger = str(challenger.version)
        client.set_registered_model_alias(model.name, contract.ALIAS_CHALLENGER, self.challenger)
        try:
            yield
        finally:
            client.delete_registered_model_alias(model.name, contract.ALIAS_CHALLENGER)

    def launch(self, model: BenchModel, context: Context) -> Launch:
        launch = super().launch(model, context)
        return dataclasses.replace(launch, env={**launch.env, "MLSTACK_SHADOW_PERCENT": "100"})

    def settle(self, predict_url: str, timeout: float) -> None:
        """The shadow loads after the live model: wait for it before measuring."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shadow = self._described(predict_url).get("shadow") or {}
            if shadow.get("version") == self.challenger:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: the shadow v{self.challenger} did not load")

    def shadow_figures(self, predict_url: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + 30  # the queue drains, then the figures are final
        while True:
            figures: dict[str, Any] = (self._described(predict_url).get("shadow") or {}).get(
                "figures"
            ) or {}
            metrics = predict_url.removesuffix("/predict") + "/metrics"
            if time.monotonic() > deadline or _gauge(metrics, "mlstack_shadow_queue") == 0:
                return figures
            time.sleep(0.5)

    @staticmethod
    def _described(predict_url: str) -> dict[str, Any]:
        url = predict_url.removesuffix("/predict") + "/model"
        with urllib.request.urlopen(url, timeout=10) as response:
            described: dict[str, Any] = json.loads(response.read())
        return described


def _gauge(metrics_url: str, name: str) -> float | None:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


class _PeerInVenv(Server):
    """A peer installed into its own environment under bench/.venvs/."""

    _env: PeerEnv | None = None

    def prepare(self) -> None:
        self._env = ensure_peer_env(self.name)

    @property
    def env(self) -> PeerEnv:
        if self._env is None:
            raise RuntimeError(f"{self.name}: prepare() was not called")
        return self._env

    def _activated(self) -> dict[str, str]:
        """As if the environment were activated (mlflow runs `uvicorn` from PATH)."""
        return {
            **_COMMON_ENV,
            "VIRTUAL_ENV": str(self.env.root),
            "PATH": f"{self.env.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }


class MLServer(_PeerInVenv):
    """MLServer with its scikit-learn runtime, V2 inference protocol.

    `parallel_workers: 0` runs inference in the server process: the setting for one core
    (no inter-process hop), and the only one that works with these pins (the parallel
    worker dies at start with the uvloop that resolves today).
    """

    name = "mlserver"
    label = "MLServer 1.7.1"

    def launch(self, model: BenchModel, context: Context) -> Launch:
        repo = context.workdir / "mlserver" / model.key
        repo.mkdir(parents=True, exist_ok=True)
        (repo / "settings.json").write_text(json.dumps({"debug": False, "parallel_workers": 0}))
        (repo / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": model.name,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(model.joblib_file), "version": "1"},
                }
            )
        )
        port = free_port()
        return Launch(
            argv=[str(self.env.bin / "mlserver"), "start", str(repo)],
            env={
                **self._activated(),
                "MLSERVER_HOST": "127.0.0.1",
                "MLSERVER_HTTP_PORT": str(port),
                "MLSERVER_GRPC_PORT": str(free_port()),
                "MLSERVER_METRICS_PORT": str(free_port()),
            },
            cwd=repo,  # MLServer keeps its .metrics/.envs folders in the working directory
            predict_url=f"http://127.0.0.1:{port}/v2/models/{model.name}/infer",
        )

    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        return _v2_body(rows, "predict_proba")

    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        (output,) = [o for o in payload["outputs"] if o["name"] == "predict_proba"]
        proba = np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])
        return _reorder(proba, model)


class KServe(_PeerInVenv):
    """`kserve.ModelServer` with bench/kserve_sklearn.py, V1 protocol, REST only."""

    name = "kserve"
    label = "KServe 0.21.0"

    def launch(self, model: BenchModel, context: Context) -> Launch:
        port = free_port()
        return Launch(
            argv=[
                str(self.env.python),
                str(BENCH_DIR / "kserve_sklearn.py"),
                "--model_name",
                model.name,
                "--model_dir",
                str(model.joblib_file.parent),
                "--http_port",
                str(port),
                "--workers",
                "1",
                "--enable_grpc",
                "false",
                "--enable_latency_logging",
                "false",
                "--log_config_file",
                str(BENCH_DIR / "kserve_logging.json"),
            ],
            env=self._activated(),
            cwd=context.workdir,
            predict_url=f"http://127.0.0.1:{port}/v1/models/{model.name}:predict",
        )

    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        return _v1_body(rows)

    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        return _reorder(np.asarray(payload["predictions"], dtype=np.float64), model)


class MlflowServe(_PeerInVenv):
    """`mlflow models serve --env-manager local` on the logged model (pyfunc predict_proba)."""

    name = "mlflow"
    label = "mlflow models serve"

    def launch(self, model: BenchModel, context: Context) -> Launch:
        port = free_port()
        return Launch(
            argv=[
                str(self.env.bin / "mlflow"),
                "models",
                "serve",
                "--model-uri",
                str(model.mlflow_dir),
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            # The scoring server is uvicorn's CLI, which reads UVICORN_* variables.
            env={**self._activated(), "UVICORN_ACCESS_LOG": "false"},
            cwd=context.workdir,
            predict_url=f"http://127.0.0.1:{port}/invocations",
        )

    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        return _dataframe_split_body(model, rows)

    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        return _reorder(np.asarray(payload["predictions"], dtype=np.float64), model)


class _MlstackRoute(Mlstack):
    """mlstack serving one of its protocol routes, sent that protocol's peer's body."""

    cold_starts = False
    route: str  # path template, `{name}` the registered model's name
    service_env: dict[str, str] = {}  # MLSTACK_* settings the route needs

    def launch(self, model: BenchModel, context: Context) -> Launch:
        launch = super().launch(model, context)
        url = launch.predict_url.removesuffix("/predict") + self.route.format(name=model.name)
        return dataclasses.replace(launch, env={**launch.env, **self.service_env}, predict_url=url)


class MlstackV2(_MlstackRoute):
    """Open Inference Protocol V2, sent MLServer's body (asking for mlstack's output name)."""

    name = "mlstack-v2"
    label = "mlstack V2"
    route = "/v2/models/{name}/infer"

    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        return _v2_body(rows, "probabilities")

    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        (output,) = [o for o in payload["outputs"] if o["name"] == "probabilities"]
        if output["datatype"] != "FP32":
            raise ValueError(f"output 'probabilities' is {output['datatype']}, not FP32")
        proba = np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])
        # The class order is the output's parameter, or the response's.
        classes = (output.get("parameters") or {}).get("classes")
        if classes is None:
            classes = payload["parameters"]["classes"]
        order = [list(map(str, classes)).index(c) for c in model.classes]
        return proba[:, order]


class MlstackV1(_MlstackRoute):
    """KServe V1, sent KServe's body; probabilities on (the KServe peer answers them)."""

    name = "mlstack-v1"
    label = "mlstack V1"
    route = "/v1/models/{name}:predict"
    service_env = {"MLSTACK_V1_PROBABILITIES": "true"}

    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        return _v1_body(rows)

    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        # mlstack's V1 columns are the served model's classes: the manifest's order.
        return np.asarray(payload["predictions"], dtype=np.float64)


class MlstackInvocations(_MlstackRoute):
    """MLflow's scoring protocol, sent `mlflow models serve`'s body. The round logs its
    models with pyfunc predict_fn predict_proba, so /invocations answers probabilities, in
    the estimator's `classes_` order as MLflow's does."""

    name = "mlstack-invocations"
    label = "mlstack /invocations"
    route = "/invocations"

    def body(self, model: BenchModel, rows: np.ndarray) -> bytes:
        return _dataframe_split_body(model, rows)

    def probabilities(self, model: BenchModel, payload: Any) -> np.ndarray:
        return _reorder(np.asarray(payload["predictions"], dtype=np.float64), model)


def servers(names: tuple[str, ...]) -> list[Server]:
    """The servers called `names`, mlstack first (it is what the ratios compare)."""
    known: dict[str, type[Server]] = {
        "mlstack": Mlstack,
        "mlstack-log": MlstackLog,
        "mlstack-shadow": MlstackShadow,
        "mlstack-v2": MlstackV2,
        "mlstack-v1": MlstackV1,
        "mlstack-invocations": MlstackInvocations,
        "mlserver": MLServer,
        "kserve": KServe,
        "mlflow": MlflowServe,
    }
    return [known[name]() for name in known if name in names]


def _v2_body(rows: np.ndarray, output: str) -> bytes:
    """Open Inference Protocol V2: one FP64 tensor [rows, features], one output asked for."""
    request = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": output}],
    }
    return json.dumps(request).encode()


def _v1_body(rows: np.ndarray) -> bytes:
    """KServe V1: rows as arrays in feature order."""
    return json.dumps({"instances": rows.tolist()}).encode()


def _dataframe_split_body(model: BenchModel, rows: np.ndarray) -> bytes:
    """MLflow's scoring protocol, pandas' split orient."""
    split = {"columns": list(model.features), "data": rows.tolist()}
    return json.dumps({"dataframe_split": split}).encode()


def _reorder(proba: np.ndarray, model: BenchModel) -> np.ndarray:
    """Peers answer in the estimator's `classes_` order; compare in the manifest's."""
    order = [list(map(str, model.estimator.classes_)).index(c) for c in model.classes]
    return proba[:, order]
