"""Any MLflow classifier, logged by people's own code with plain MLflow calls, is served; what
mlstack cannot serve is refused with a reason; `mlstack adopt` and `mlstack gate` give such a
version what the training round gives. A real mlflow server, real uvicorn processes, the real
`mlstack` command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.onnx
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import orjson
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.integration.custom_types import Clip
from tests.processes import Process, metric_samples, start_app, wait_until
from training import contract

CLASSES = np.array(["setosa", "versicolor", "virginica"])
TARGET = "species"
REQUIREMENTS = ["scikit-learn"]
# The drift window fills fast enough for a test to see drift exported.
APP_ENV = {"MLSTACK_DRIFT_WINDOW": "50", "MLSTACK_DRIFT_MIN_ROWS": "10"}


def _iris() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return x, CLASSES[y]


X, Y = _iris()


def _pipeline() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _log_sklearn(uri: str, name: str, model: Any, **kwargs: Any) -> str:
    """`mlflow.sklearn.log_model` as a notebook calls it; the new version's number."""
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            pip_requirements=REQUIREMENTS,
            **kwargs,
        )
    return str(info.registered_model_version)


def _champion(uri: str, name: str, version: str) -> None:
    MlflowClient(uri).set_registered_model_alias(name, contract.ALIAS_CHAMPION, version)


def _predict(app: Process, rows: pd.DataFrame) -> dict[str, Any]:
    body = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
    response = httpx.post(
        f"{app.url}/predict",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _mlstack(uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control", *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _csv(path: Path, rows: pd.DataFrame, labels: np.ndarray | None = None) -> Path:
    frame = rows if labels is None else rows.assign(**{TARGET: labels})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def app_for(tmp_path: Path, mlflow_server: Process) -> Iterator[Any]:
    """Start a real service following `name`; every one started is stopped."""
    started: list[Process] = []

    def start(name: str, **env: str) -> Process:
        process = start_app(tmp_path / f"app-{len(started)}", mlflow_server.url, name,
                            env={**APP_ENV, **env})  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_notebook_pipeline_is_served_and_answers_what_mlflow_answers(
    mlflow_server: Process, app_for: Any
) -> None:
    uri, name = mlflow_server.url, _name("notebook")
    pipe = _pipeline()
    version = _log_sklearn(
        uri, name, pipe, signature=infer_signature(X, pipe.predict(X)), input_example=X.head(3)
    )
    _champion(uri, name, version)
    app = app_for(name)

    rows = X.sample(40, random_state=1)
    answer = _predict(app, rows)
    assert answer["model_version"] == version
    expected_labels = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(rows)
    assert answer["labels"] == [str(label) for label in expected_labels]
    model = mlflow.sklearn.load_model(f"models:/{name}@champion")
    assert answer["classes"] == [str(c) for c in model.classes_]
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(rows), atol=1e-5)

    described = httpx.get(f"{app.url}/model").json()
    assert described["predictor"] == "sklearn"
    assert described["features"] == list(X.columns)
    assert described["drift_baseline"] is False
    drift = httpx.get(f"{app.url}/drift")
    assert drift.status_code == 409
    assert f"mlstack adopt {name} {version} --data" in drift.json()["detail"]
    assert not any(k.startswith("mlstack_feature_drift") for k in metric_samples(app.url))


def test_onnx_flavour_model_is_served_through_onnx_runtime(
    mlflow_server: Process, app_for: Any
) -> None:
    import onnxruntime as ort
    from skl2onnx import to_onnx

    uri, name = mlflow_server.url, _name("onnx-flavour")
    pipe = _pipeline()
    x32 = X.astype(np.float32)
    onx = to_onnx(pipe, x32.to_numpy()[:1], options={id(pipe): {"zipmap": False}})
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.onnx.log_model(
            onx,
            name="model",
            signature=infer_signature(x32, pipe.predict_proba(X)),
            input_example=x32.head(2),
            registered_model_name=name,
            pip_requirements=["onnxruntime"],
        )
    version = str(info.registered_model_version)
    _champion(uri, name, version)
    app = app_for(name)

    rows = x32.sample(30, random_state=2)
    answer = _predict(app, rows)
    assert answer["model_version"] == version
    # MLflow's own onnx loader, run as MLflow runs it: onnxruntime on the logged graph.
    logged = mlflow.onnx.load_model(f"models:/{name}@champion")
    session = ort.InferenceSession(logged.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, proba = session.run(["label", "probabilities"], {"X": rows.to_numpy()})
    assert answer["labels"] == [str(label) for label in labels]
    np.testing.assert_allclose(answer["probabilities"], proba, atol=1e-6)
    described = httpx.get(f"{app.url}/model").json()
    assert described["predictor"] == "onnx"
    assert described["classes"] == list(CLASSES)


def test_adopt_gives_a_notebook_version_onnx_and_drift_from_the_next_poll(
    mlflow_server: Process, app_for: Any, tmp_path: Path
) -> None:
    uri, name = mlflow_server.url, _name("adopted")
    pipe = _pipeline()
    version = _log_sklearn(
        uri, name, pipe, signature=infer_signature(X, pipe.predict(X)), input_example=X.head(3)
    )
    _champion(uri, name, version)
    client = MlflowClient(uri)
    model_uri = client.get_model_version_download_uri(name, version)
    before = sorted(f.path for f in mlflow.artifacts.list_artifacts(artifact_uri=model_uri))
    app = app_for(name)
    assert httpx.get(f"{app.url}/model").json()["predictor"] == "sklearn"

    sample = _csv(tmp_path / "sample.csv", X, Y)
    adopted = _mlstack(uri, "adopt", name, version, "--data", str(sample), "--target", TARGET)
    assert adopted.returncode == 0, adopted.stderr
    assert "adopted" in adopted.stdout and "onnx yes" in adopted.stdout

    wait_until(
        lambda: httpx.get(f"{app.url}/model").json()["predictor"] == "onnx",
        30,
        "the service serving the adopted ONNX export",
    )
    described = httpx.get(f"{app.url}/model").json()
    assert described["drift_baseline"] is True
    assert described["dataset"] == "sample"
    rows = X.sample(20, random_state=3)
    answer = _predict(app, rows)
    np.testing.assert_allclose(answer["probabilities"], pipe.predict_proba(rows), atol=1e-5)
    drift = httpx.get(f"{app.url}/drift")
    assert drift.status_code == 200
    assert set(drift.json()["features"]) == set(X.columns)
    assert drift.json()["ranges_known"] is True  # adopt's baseline has the sample's ranges
    ranges = {n: f["training_range"] for n, f in drift.json()["features"].items()}
    assert ranges == {c: [X[c].min(), X[c].max()] for c in X.columns}
    drifted = {k for k in metric_samples(app.url) if k.startswith("mlstack_feature_drift_psi{")}
    assert len(drifted) == len(X.columns)

    tags = client.get_model_version(name, version).tags
    assert tags[contract.TAG_ONNX] == "true"
    assert float(tags[contract.TAG_ONNX_MAX_ABS_DIFF]) <= 1e-5
    extras = tags[contract.TAG_EXTRAS_URI]
    again = _mlstack(uri, "adopt", name, version, "--data", str(sample), "--target", TARGET)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert client.get_model_version(name, version).tags[contract.TAG_EXTRAS_URI] == extras
    after = sorted(f.path for f in mlflow.artifacts.list_artifacts(artifact_uri=model_uri))
    assert after == before  # the version's own model files never change


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (X.drop(columns=["petal_width"]), "lacks the model's feature columns 'petal_width'"),
        (X.assign(species=Y), "pass --target NAME"),
        (X.assign(petal_width=["wide", *X["petal_width"].astype(str)[1:]]), "not numeric"),
    ],
    ids=["missing-column", "unnamed-target", "text-value"],
)
def test_adopt_refuses_unfit_data_naming_the_column_and_writes_nothing(
    mlflow_server: Process, tmp_path: Path, rows: pd.DataFrame, message: str
) -> None:
    uri, name = mlflow_server.url, _name("adopt-bad")
    pipe = _pipeline()
    version = _log_sklearn(uri, name, pipe, signature=infer_signature(X, pipe.predict(X)))
    result = _mlstack(uri, "adopt", name, version, "--data", str(_csv(tmp_path / "s.csv", rows)))
    assert result.returncode == 2
    assert message in result.stderr
    assert contract.TAG_EXTRAS_URI not in MlflowClient(uri).get_model_version(name, version).tags


def test_gate_promotes_a_better_version_and_keeps_the_champion_against_a_worse_one(
    mlflow_server: Process, app_for: Any, tmp_path: Path
) -> None:
    uri, name = mlflow_server.url, _name("gated")
    weak = DummyClassifier(strategy="prior").fit(X, Y)
    signature = infer_signature(X, weak.predict(X))
    v1 = _log_sklearn(uri, name, weak, signature=signature)
    _champion(uri, name, v1)
    app = app_for(name)
    v2 = _log_sklearn(uri, name, _pipeline(), signature=signature)
    holdout = _csv(tmp_path / "holdout.csv", X, Y)

    gated = _mlstack(uri, "gate", name, v2, "--data", str(holdout), "--target", TARGET,
                     "--metric", "accuracy", "--json")  # fmt: skip
    assert gated.returncode == 0, gated.stderr
    result = contract.TrainingResult.from_json(gated.stdout)
    assert (result.version, result.decision) == (v2, contract.ALIAS_CHAMPION)
    client = MlflowClient(uri)
    tags = client.get_model_version(name, v2).tags
    assert tags[contract.TAG_GATE_DECISION] == contract.ALIAS_CHAMPION
    assert tags[contract.TAG_GATE_CHAMPION_VERSION] == v1
    assert tags[contract.TAG_PREVIOUS_CHAMPION] == v1
    assert float(tags[contract.TAG_GATE_SCORE]) > float(tags[contract.TAG_GATE_CHAMPION_SCORE])
    wait_until(
        lambda: httpx.get(f"{app.url}/readyz").json().get("model_version") == v2,
        30,
        f"the service following the gate to v{v2}",
    )

    v3 = _log_sklearn(uri, name, weak, signature=signature)
    worse = _mlstack(uri, "gate", name, v3, "--data", str(holdout), "--target", TARGET,
                     "--metric", "accuracy")  # fmt: skip
    assert worse.returncode == 0, worse.stderr
    assert "decision   challenger" in worse.stdout
    assert client.get_model_version_by_alias(name, contract.ALIAS_CHAMPION).version == v2
    assert client.get_model_version_by_alias(name, contract.ALIAS_CHALLENGER).version == v3


def _log_flavourless(uri: str, name: str, flavor: str) -> str:
    """A version whose MLmodel names only `flavor` (and python_function), as a library that
    mlstack does not serve would log it."""
    import tempfile

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlmodel = (
            "flavors:\n"
            f"  {flavor}:\n    data: model.bin\n"
            "  python_function:\n    loader_module: somewhere\n    data: model.bin\n"
            'signature:\n  inputs: \'[{"type": "double", "name": "a"}]\'\n'
            "  outputs: null\n"
        )
        (Path(tmp) / "MLmodel").write_text(mlmodel)
        (Path(tmp) / "model.bin").write_bytes(b"\0")
        mlflow.log_artifacts(tmp, "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    return str(version.version)


def _regressor(uri: str, name: str) -> str:
    model = LinearRegression().fit(X, np.arange(len(X), dtype=float))
    return _log_sklearn(uri, name, model, signature=infer_signature(X, model.predict(X)))


def _no_signature(uri: str, name: str) -> str:
    return _log_sklearn(uri, name, _pipeline())


def _unnamed(uri: str, name: str) -> str:
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), Y)
    return _log_sklearn(
        uri, name, model, signature=infer_signature(X.to_numpy(), model.predict(X.to_numpy()))
    )


def _pickled(uri: str, name: str) -> str:
    pipe = _pipeline()
    return _log_sklearn(uri, name, pipe, signature=infer_signature(X, pipe.predict(X)),
                        serialization_format="cloudpickle")  # fmt: skip


def _untrusted_type(uri: str, name: str) -> str:
    """A skops file holding a type of the tests' own, which its MLmodel claims to trust."""
    pipe = make_pipeline(Clip(), LogisticRegression(max_iter=500)).fit(X, Y)
    trusted = [f"{Clip.__module__}.{Clip.__name__}"]
    return _log_sklearn(uri, name, pipe, signature=infer_signature(X, pipe.predict(X)),
                        serialization_format="skops", skops_trusted_types=trusted)  # fmt: skip


def _pyfunc(uri: str, name: str) -> str:
    class Constant(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any) -> Any:
            return np.zeros(len(model_input))

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=Constant(),
            signature=infer_signature(X, np.zeros(len(X))),
            registered_model_name=name,
            pip_requirements=REQUIREMENTS,
        )
    return str(info.registered_model_version)


def _extras_elsewhere(uri: str, name: str) -> str:
    """A good version whose extras tag points outside the artifact store (a local path)."""
    pipe = _pipeline()
    version = _log_sklearn(uri, name, pipe, signature=infer_signature(X, pipe.predict(X)))
    MlflowClient(uri).set_model_version_tag(name, version, contract.TAG_EXTRAS_URI, "file:///etc")
    return version


REFUSALS = [
    (_no_signature, "has no signature"),
    (_unnamed, "is unnamed"),
    (_regressor, "LinearRegression has no predict_proba"),
    (lambda uri, name: _log_flavourless(uri, name, "xgboost"), "flavour python_function, xgboost"),
    (_pyfunc, "flavour python_function is not served"),
    (_pickled, "serialized with cloudpickle"),
    (_untrusted_type, "outside the server's allow-list: tests.integration.custom_types.Clip"),
    (_extras_elsewhere, "is not in the registry's artifact store"),
]


@pytest.fixture(scope="module")
def refusing_app(
    mlflow_server: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, str, str]]:
    """A service serving a good v1 of a model whose alias the refusal cases then move."""
    uri, name = mlflow_server.url, _name("refusals")
    pipe = _pipeline()
    good = _log_sklearn(uri, name, pipe, signature=infer_signature(X, pipe.predict(X)))
    _champion(uri, name, good)
    process = start_app(tmp_path_factory.mktemp("refusals"), uri, name, env=APP_ENV)
    yield process, name, good
    process.stop()


@pytest.mark.parametrize(
    ("log", "reason"), REFUSALS, ids=[r[1].split(":")[0][:40] for r in REFUSALS]
)
def test_unservable_version_is_refused_with_its_reason_and_the_live_one_serves_on(
    mlflow_server: Process, refusing_app: tuple[Process, str, str], log: Any, reason: str
) -> None:
    app, name, good = refusing_app
    uri = mlflow_server.url
    refused_before = metric_samples(app.url).get(
        "mlstack_model_reloads_total{outcome=refused}", 0.0
    )
    version = log(uri, name)
    _champion(uri, name, version)

    def refused() -> bool:
        body = httpx.get(f"{app.url}/readyz").json()
        return body.get("refused", {}).get("version") == version

    wait_until(refused, 30, f"v{version} refused")
    body = httpx.get(f"{app.url}/readyz").json()
    assert reason in body["refused"]["reason"]
    assert body["model_version"] == good
    assert _predict(app, X.head(2))["model_version"] == good
    refused_after = metric_samples(app.url)["mlstack_model_reloads_total{outcome=refused}"]
    assert refused_after == refused_before + 1
    assert reason in app.output()


def test_unservable_first_version_leaves_the_service_unready_with_the_reason(
    mlflow_server: Process, tmp_path: Path
) -> None:
    uri, name = mlflow_server.url, _name("unready")
    _champion(uri, name, _pickled(uri, name))
    app = start_app(tmp_path, uri, name, wait_ready=False, env=APP_ENV)
    try:
        wait_until(
            lambda: "MLSTACK_ALLOW_PICKLE" in httpx.get(f"{app.url}/readyz").text,
            30,
            "the refusal in /readyz",
        )
        assert httpx.get(f"{app.url}/readyz").status_code == 503
    finally:
        app.stop()


def test_pickle_loads_when_the_operator_allows_it(mlflow_server: Process, app_for: Any) -> None:
    uri, name = mlflow_server.url, _name("pickle-allowed")
    version = _pickled(uri, name)
    _champion(uri, name, version)
    app = app_for(name, MLSTACK_ALLOW_PICKLE="true")
    rows = X.sample(10, random_state=4)
    model = mlflow.sklearn.load_model(f"models:/{name}@champion")
    np.testing.assert_allclose(_predict(app, rows)["probabilities"], model.predict_proba(rows),
                               atol=1e-5)  # fmt: skip


def test_an_allow_listed_type_loads_when_the_operator_trusts_it(
    mlflow_server: Process, app_for: Any
) -> None:
    uri, name = mlflow_server.url, _name("trusted-type")
    version = _untrusted_type(uri, name)
    _champion(uri, name, version)
    trusted = f"sklearn.,numpy.,scipy.,{Clip.__module__}.{Clip.__name__}"
    app = app_for(name, MLSTACK_SKOPS_TRUSTED_TYPES=trusted)
    assert _predict(app, X.head(3))["labels"] == ["setosa"] * 3


def test_users_own_training_script_with_log_classifier_serves_through_onnx_with_drift(
    mlflow_server: Process, app_for: Any, tmp_path: Path
) -> None:
    """The e2e scenario's user script, run here: one call gives the round's extras and gate."""
    uri, name = mlflow_server.url, _name("user-script")
    result_file = tmp_path / "result.json"
    script = Path(__file__).resolve().parents[1] / "e2e" / "user_training" / "train.py"
    run = subprocess.run(
        [sys.executable, str(script), "--seed", "3"],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "MLSTACK_MODEL_NAME": name,
            "MLSTACK_EXPERIMENT": name,
            "MLSTACK_RESULT_FILE": str(result_file),
            "MLSTACK_METRIC": "accuracy",
            "MLSTACK_MIN_SCORE": "0.8",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = contract.TrainingResult.from_json(result_file.read_text())
    assert (result.model_name, result.decision, result.onnx) == (name, "champion", True)
    assert "clears the floor 0.8000" in result.reason  # the gate read MLSTACK_MIN_SCORE
    tags = MlflowClient(uri).get_model_version(name, result.version).tags
    assert tags[contract.TAG_GATE_METRIC] == "accuracy"

    app = app_for(name)
    described = httpx.get(f"{app.url}/model").json()
    assert (described["version"], described["predictor"]) == (result.version, "onnx")
    assert described["drift_baseline"] is True
    assert _predict(app, X.head(2))["labels"] == ["setosa", "setosa"]
