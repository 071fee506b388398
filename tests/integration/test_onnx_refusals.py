"""An ONNX version that fails the server's checks (custom operator, opset too new, over the
size bound, external data outside its folder) is refused before onnxruntime loads it: the
swap is counted as refused, the reason is in /readyz and the log, and the live version serves
on. A real mlflow server and a real uvicorn process; the ONNX files are real ones."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import mlflow
import mlflow.onnx
import mlflow.sklearn
import numpy as np
import onnx
import orjson
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from onnx import helper, numpy_helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.processes import Process, metric_samples, start_app, wait_until
from training import contract

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MAX_BYTES = 64 * 1024  # the service's MLSTACK_ONNX_MAX_BYTES here
JSON = {"content-type": "application/json"}
X, Y = load_iris(return_X_y=True, as_frame=True)
X.columns = FEATURES
X32 = X.astype(np.float32)
MODEL = LogisticRegression(max_iter=500).fit(X, Y)


def _classifier() -> onnx.ModelProto:
    from skl2onnx import to_onnx

    return to_onnx(MODEL, X32.to_numpy()[:1], options={id(MODEL): {"zipmap": False}})


def _custom_op(model: onnx.ModelProto, _: Path) -> None:
    # What a custom-operator library would implement: the graph names it, the server refuses.
    node = helper.make_node("Exfiltrate", ["probabilities"], ["leak"], domain="evil.ops")
    model.graph.node.append(node)
    model.opset_import.append(helper.make_opsetid("evil.ops", 1))


def _opset_too_new(model: onnx.ModelProto, _: Path) -> None:
    for opset in model.opset_import:
        if opset.domain == "":
            opset.version = 99


def _oversized(model: onnx.ModelProto, _: Path) -> None:
    padding = numpy_helper.from_array(np.zeros(MAX_BYTES // 4, np.float32), "padding")
    model.graph.initializer.append(padding)


def _escaping(model: onnx.ModelProto, folder: Path) -> None:
    (folder.parent / "weights.bin").write_bytes(b"\0" * 64)
    padding = numpy_helper.from_array(np.zeros(16, np.float32), "padding")
    padding.ClearField("raw_data")
    padding.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../weights.bin"), ("offset", "0"), ("length", "64")):
        padding.external_data.add(key=key, value=value)
    model.graph.initializer.append(padding)


def _log_onnx(uri: str, name: str, alter: Callable[[onnx.ModelProto, Path], None]) -> str:
    """An onnx-flavour version as mlflow.onnx writes it, its graph then altered by `alter`
    (given the graph and the model's folder); the new version's number."""
    mlflow.set_tracking_uri(uri)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run() as run:
        folder = Path(tmp) / "model"
        model = _classifier()
        mlflow.onnx.save_model(model, str(folder), save_as_external_data=False,
                               signature=infer_signature(X32, MODEL.predict_proba(X)))  # fmt: skip
        alter(model, folder)
        onnx.save(model, str(folder / "model.onnx"))
        mlflow.log_artifacts(str(folder), "model")
    return str(mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version)


@pytest.fixture(scope="module")
def served(
    mlflow_server: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, str, str]]:
    """A service serving a good ONNX v1, with an ONNX size bound of MAX_BYTES."""
    uri, name = mlflow_server.url, f"onnx-checks-{uuid.uuid4().hex[:8]}"
    good = _log_onnx(uri, name, lambda model, folder: None)
    MlflowClient(uri).set_registered_model_alias(name, contract.ALIAS_CHAMPION, good)
    process = start_app(tmp_path_factory.mktemp("onnx-checks"), uri, name,
                        env={"MLSTACK_ONNX_MAX_BYTES": str(MAX_BYTES)})  # fmt: skip
    yield process, name, good
    process.stop()


REFUSALS = [
    (_custom_op, "uses operator 'Exfiltrate' of domain 'evil.ops': only the standard operator"),
    (_opset_too_new, "imports opset 99 of domain 'ai.onnx', newer than"),
    (_oversized, f"bytes, over MLSTACK_ONNX_MAX_BYTES ({MAX_BYTES})"),
    (_escaping, "keeps its data in '../weights.bin', outside the model's folder"),
]


@pytest.mark.parametrize(
    ("alter", "reason"), REFUSALS, ids=["custom-op", "opset", "size", "external-data"]
)
def test_unfit_onnx_version_is_refused_and_the_live_one_serves_on(
    mlflow_server: Process,
    served: tuple[Process, str, str],
    alter: Callable[[onnx.ModelProto, Path], None],
    reason: str,
) -> None:
    app, name, good = served
    refused_key = "mlstack_model_reloads_total{outcome=refused}"
    refused_before = metric_samples(app.url)[refused_key]
    version = _log_onnx(mlflow_server.url, name, alter)
    MlflowClient(mlflow_server.url).set_registered_model_alias(
        name, contract.ALIAS_CHAMPION, version
    )

    def refused() -> bool:
        return httpx.get(f"{app.url}/readyz").json().get("refused", {}).get("version") == version

    wait_until(refused, 30, f"v{version} refused")
    body = httpx.get(f"{app.url}/readyz").json()
    assert reason in body["refused"]["reason"]
    assert body["model_version"] == good
    rows = X32.head(3)
    body = {"columns": FEATURES, "data": rows.to_numpy().tolist()}
    answer = httpx.post(f"{app.url}/predict", content=orjson.dumps(body), headers=JSON)
    assert answer.status_code == 200 and answer.json()["model_version"] == good
    np.testing.assert_allclose(answer.json()["probabilities"], MODEL.predict_proba(rows), atol=1e-5)
    assert metric_samples(app.url)[refused_key] == refused_before + 1
    assert reason in app.output()
