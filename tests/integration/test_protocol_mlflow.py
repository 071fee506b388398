"""MLflow's scoring protocol (`/invocations`, `/ping`, `/health`, `/version`): every body
MLflow's own helpers make is sent to a real `mlflow models serve` and to the real service,
and the answers compared. A real mlflow server, real uvicorn processes, MLflow's own client.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import orjson
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import Model, convert_input_example_to_serving_input, infer_signature
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from mlflow.utils.proto_json_utils import dump_input_data
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.processes import (
    Process,
    free_port,
    http_status,
    metric_samples,
    start,
    start_app,
    wait_until,
)
from training import contract

JSON = "application/json"
CSV = "text/csv"
KEY = "test-key"
VENV_BIN = Path(sys.executable).parent


def _iris() -> tuple[pd.DataFrame, np.ndarray]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return x, y.to_numpy()


X, Y = _iris()
# The labels model's features: one of them an integer ("long") column of its signature.
X_LONG = X.assign(petal_width=(X["petal_width"] * 10).round().astype("int64")).rename(
    columns={"petal_width": "petal_width_mm"}
)


@dataclass
class Served:
    """One registered model served twice: by `mlflow models serve` and by mlstack."""

    name: str
    version: str
    mlflow: Process
    mlstack: Process
    example: pd.DataFrame  # the version's input example, as MLflow loads it
    serving_input: str  # the serving input MLflow saved beside it
    sample: pd.DataFrame  # rows of every class, in the columns of the signature


def _mlflow_serve(directory: Path, tracking_uri: str, name: str) -> Process:
    """A real `mlflow models serve` of name@champion in this environment, ready on /ping."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    directory.mkdir(parents=True, exist_ok=True)
    process = start(
        [str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{name}@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        directory / f"mlflow-serve-{port}.log",
        url,
        # It runs `uvicorn` by name: the virtualenv's bin must be on PATH.
        env={"MLFLOW_TRACKING_URI": tracking_uri,
             "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    try:
        wait_until(lambda: http_status(f"{url}/ping") == 200, 120, f"mlflow models serve on {url}")
    except TimeoutError:
        process.stop()
        output = process.output()[-3000:]
        raise TimeoutError(f"mlflow models serve did not start:\n{output}") from None
    return process


def _served(name: str, tracking_uri: str, mlstack: Process, mlflow_serve: Process) -> Served:
    mlflow.set_tracking_uri(tracking_uri)
    local = mlflow.artifacts.download_artifacts(f"models:/{name}@champion")
    logged = Model.load(local)
    example = logged.load_input_example(local)
    assert isinstance(example, pd.DataFrame)
    serving_input = logged.get_serving_input(local)
    assert serving_input is not None
    frame = X_LONG if "petal_width_mm" in example.columns else X
    sample = frame.iloc[::10][list(example.columns)]  # 15 rows, 5 of each class
    version = MlflowClient(tracking_uri).get_model_version_by_alias(name, "champion").version
    return Served(name, str(version), mlflow_serve, mlstack, example, serving_input, sample)


@pytest.fixture(scope="module")
def champion(
    mlflow_server: Process,
    champion_name: str,
    served_app: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """The session champion (pyfunc predict_fn predict_proba, string classes, served by mlstack
    through its ONNX export)."""
    serve = _mlflow_serve(tmp_path_factory.mktemp("mlflow-serve"), mlflow_server.url,
                          champion_name)  # fmt: skip
    try:
        yield _served(champion_name, mlflow_server.url, served_app, serve)
    finally:
        serve.stop()


@pytest.fixture(scope="module")
def labels(mlflow_server: Process, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A notebook's model: int classes, pyfunc predict_fn predict (labels), an integer column
    and a params schema in its signature, skops serialization."""
    uri, name = mlflow_server.url, f"labels-{uuid.uuid4().hex[:8]}"
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X_LONG, Y)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_LONG, model.predict(X_LONG), params={"k": 1}),
            input_example=X_LONG.head(3),
            registered_model_name=name,
            serialization_format="skops",
            pip_requirements=["scikit-learn", "skops"],
        )
    version = str(info.registered_model_version)
    MlflowClient(uri).set_registered_model_alias(name, contract.ALIAS_CHAMPION, version)
    directory = tmp_path_factory.mktemp("labels")
    app = start_app(directory / "app", uri, name)
    try:
        serve = _mlflow_serve(directory / "serve", uri, name)
        try:
            yield _served(name, uri, app, serve)
        finally:
            serve.stop()
    finally:
        app.stop()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict(orient="records")


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return frame.to_dict(orient="list")


# Bodies from MLflow's own helpers (or pandas, where MLflow has none), for a DataFrame of rows.
FORMS: dict[str, Any] = {
    "split": lambda df: (convert_input_example_to_serving_input(df), JSON),
    "split-params": lambda df: (convert_input_example_to_serving_input((df, {"k": 2})), JSON),
    "split-index-client": lambda df: (dump_input_data(df), JSON),
    "records": lambda df: (json.dumps({"dataframe_records": _records(df)}), JSON),
    "inputs-records": lambda df: (convert_input_example_to_serving_input(_records(df)), JSON),
    "inputs-columns": lambda df: (convert_input_example_to_serving_input(_columns(df)), JSON),
    "inputs-one-record": lambda df: (json.dumps({"inputs": _records(df)[0]}), JSON),
    "inputs-2d-list": lambda df: (convert_input_example_to_serving_input(df.to_numpy()), JSON),
    "instances-records-params": lambda df: (
        dump_input_data(_records(df), inputs_key="instances", params={"k": 2}),
        JSON,
    ),
    "instances-columns": lambda df: (json.dumps({"instances": _columns(df)}), JSON),
    "csv": lambda df: (df.to_csv(index=False), CSV),
    "csv-utf8": lambda df: (df.to_csv(index=False), f"{CSV}; charset=utf-8"),
}


def _post(url: str, body: str | bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/invocations",
        content=body,
        headers={"content-type": content_type, **headers},
        timeout=30,
    )


def _assert_same_answer(served: Served, body: str, content_type: str) -> httpx.Response:
    """Both answer the body alike: the same status, probabilities within 1e-6, labels equal
    and of the same JSON types. mlstack's answer is returned."""
    theirs = _post(served.mlflow.url, body, content_type)
    ours = _post(served.mlstack.url, body, content_type)
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text[:500])
    if theirs.status_code != 200:
        # MLflow says INVALID_PARAMETER_VALUE for some schema mismatches; both are 400.
        assert theirs.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
        assert ours.json()["error_code"] == "BAD_REQUEST"
        return ours
    expected, answer = theirs.json(), ours.json()
    assert list(answer) == list(expected) == ["predictions"]
    if isinstance(expected["predictions"][0], list):
        np.testing.assert_allclose(answer["predictions"], expected["predictions"], atol=1e-6)
    else:
        assert answer["predictions"] == expected["predictions"]
        assert [type(v) for v in answer["predictions"]] == [
            type(v) for v in expected["predictions"]
        ]
    return ours


@pytest.mark.parametrize("kind", ["champion", "labels"])
@pytest.mark.parametrize("form", list(FORMS))
def test_every_body_mlflows_helpers_make_is_answered_as_mlflow_models_serve_answers(
    request: pytest.FixtureRequest, kind: str, form: str
) -> None:
    served: Served = request.getfixturevalue(kind)
    for frame in (served.example, served.sample):
        body, content_type = FORMS[form](frame)
        ours = _assert_same_answer(served, body, content_type)
        if form == "inputs-2d-list":  # MLflow needs this model's columns named, and so do we
            assert ours.status_code == 400
            assert "'inputs' holds rows without column names" in ours.json()["message"]
        else:
            assert ours.status_code == 200, ours.text
            assert ours.headers["x-model-version"] == served.version


@pytest.mark.parametrize("kind", ["champion", "labels"])
def test_the_serving_input_mlflow_saved_with_the_model_is_answered_alike(
    request: pytest.FixtureRequest, kind: str
) -> None:
    served: Served = request.getfixturevalue(kind)
    assert _assert_same_answer(served, served.serving_input, JSON).status_code == 200


def test_probabilities_are_in_the_estimators_classes_order_and_labels_stay_ints(
    champion: Served, labels: Served
) -> None:
    estimator = mlflow.sklearn.load_model(f"models:/{champion.name}@champion")
    classes = httpx.get(f"{champion.mlstack.url}/model").json()["classes"]
    assert classes == [str(c) for c in estimator.classes_]  # mlstack's order is MLflow's
    body, _ = FORMS["split"](champion.sample)
    proba = _post(champion.mlstack.url, body, JSON).json()["predictions"]
    np.testing.assert_allclose(proba, estimator.predict_proba(champion.sample), atol=1e-6)
    assert [classes[i] for i in np.argmax(proba, axis=1)] == estimator.predict(
        champion.sample
    ).tolist()

    estimator = mlflow.sklearn.load_model(f"models:/{labels.name}@champion")
    body, _ = FORMS["split"](labels.sample)
    answer = _post(labels.mlstack.url, body, JSON).json()["predictions"]
    assert answer == estimator.predict(labels.sample).tolist()
    assert {type(label) for label in answer} == {int}
    assert set(answer) == {0, 1, 2}


@pytest.mark.parametrize("kind", ["champion", "labels"])
def test_mlflows_own_client_gets_the_same_from_both(
    request: pytest.FixtureRequest, kind: str
) -> None:
    served: Served = request.getfixturevalue(kind)
    answers = []
    for process in (served.mlflow, served.mlstack):
        port = int(process.url.rsplit(":", 1)[1])
        client = ScoringServerClient("127.0.0.1", port)
        client.wait_server_ready(timeout=10)
        answers.append(
            (
                client.get_version(),
                client.invoke(served.sample).get_predictions(predictions_format="ndarray"),
                client.invoke(served.sample, params={"k": 3}).get_predictions(),
            )
        )
    (version, array, frame), (our_version, our_array, our_frame) = answers
    assert our_version == version
    np.testing.assert_allclose(our_array, array, atol=1e-6)
    pd.testing.assert_frame_equal(our_frame, frame, atol=1e-6)


# Where mlstack answers otherwise than MLflow, as the README says: it refuses what MLflow
# ignores or silently converts; it cannot check params against a signature's params schema.
DIFFERENCES = [
    ("champion", {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",
     "petal_width", "colour"], "data": [[5.1, 3.5, 1.4, 0.2, 1]]}}, 200, 400,
     "dataframe_split.columns: unknown feature(s) ['colour']"),
    ("champion", {"inputs": [{"sepal_length": "5.1", "sepal_width": 3.5, "petal_length": 1.4,
     "petal_width": 0.2}]}, 200, 400, "inputs[0]: feature 'sepal_length' must be a number, got "
     "string"),
    ("champion", {"dataframe_records": [{"sepal_length": True, "sepal_width": 3.5,
     "petal_length": 1.4, "petal_width": 0.2}]}, 200, 400,
     "dataframe_records[0]: feature 'sepal_length' must be a number, got boolean"),
    ("champion", {"inputs": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
     "petal_width": 0.2}], "signature_name": "serving_default"}, 200, 400,
     "unknown top-level field(s) ['signature_name']"),
    ("labels", {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",
     "petal_width_mm"], "data": [[5.1, 3.5, 1.4, 2.7]]}}, 200, 400,
     "dataframe_split.data[0]: feature 'petal_width_mm' is an integer column (long)"),
    ("labels", {"inputs": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
     "petal_width_mm": 2}], "params": {"k": "not a number"}}, 400, 200, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "body", "mlflow_status", "mlstack_status", "message"),
    DIFFERENCES,
    ids=["unknown-column", "string", "boolean", "unknown-field", "fraction-in-long", "params"],
)
def test_where_mlstack_answers_otherwise_than_mlflow(
    request: pytest.FixtureRequest,
    kind: str,
    body: Any,
    mlflow_status: int,
    mlstack_status: int,
    message: str | None,
) -> None:
    served: Served = request.getfixturevalue(kind)
    raw = orjson.dumps(body)
    assert _post(served.mlflow.url, raw, JSON).status_code == mlflow_status
    ours = _post(served.mlstack.url, raw, JSON)
    assert ours.status_code == mlstack_status, ours.text
    if message is not None:
        assert set(ours.json()) == {"error_code", "message"}
        assert ours.json()["error_code"] == "BAD_REQUEST"
        assert message in ours.json()["message"]


ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
COLUMNS = list(ROW)
HEADER = ",".join(COLUMNS)
NO_SEPAL_WIDTH = {k: v for k, v in ROW.items() if k != "sepal_width"}

BAD = [
    (b"{", JSON, 400, "BAD_REQUEST", "body is not valid JSON"),
    (orjson.dumps([ROW]), JSON, 400, "BAD_REQUEST", "body must be a JSON object"),
    (orjson.dumps({"columns": COLUMNS, "data": [[1, 2, 3, 4]]}), JSON, 400, "BAD_REQUEST",
     "unknown top-level field(s) ['columns', 'data']"),
    (orjson.dumps({"params": {}}), JSON, 400, "BAD_REQUEST", "exactly one of"),
    (orjson.dumps({"inputs": [ROW], "instances": [ROW]}), JSON, 400, "BAD_REQUEST",
     "got ['instances', 'inputs']"),
    (orjson.dumps({"inputs": [ROW], "params": 3}), JSON, 400, "BAD_REQUEST",
     "'params' must be an object"),
    (orjson.dumps({"dataframe_split": {"columns": COLUMNS[:3], "data": [[1, 2, 3]]}}), JSON, 400,
     "BAD_REQUEST", "dataframe_split.columns: missing feature(s) ['petal_width']"),
    (orjson.dumps({"dataframe_split": {"data": [[1, 2, 3, 4]]}}), JSON, 400, "BAD_REQUEST",
     "'dataframe_split' has no 'columns'"),
    (orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2, 3, 4], [1, 2]]}}),
     JSON, 400, "BAD_REQUEST", "dataframe_split.data[1] must be an array of 4 values"),
    (orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2, None, 4]]}}), JSON,
     400, "BAD_REQUEST", "dataframe_split.data[0]: feature 'petal_length' must be a number, "
     "got null"),
    (b'{"dataframe_split": {"columns": ' + orjson.dumps(COLUMNS) + b', "data": [[1, NaN, 3, 4]]}}',
     JSON, 400, "BAD_REQUEST", "data[0]: feature 'sepal_width' must be a finite number"),
    (orjson.dumps({"inputs": [ROW, {**ROW, "petal_width": 1e39}]}), JSON, 400, "BAD_REQUEST",
     "inputs[1]: feature 'petal_width' must be a finite number within float32 range"),
    (orjson.dumps({"dataframe_records": [ROW, NO_SEPAL_WIDTH]}), JSON, 400, "BAD_REQUEST",
     "dataframe_records[1]: missing feature(s) ['sepal_width']"),
    (orjson.dumps({"instances": {**{k: [v] for k, v in ROW.items()}, "petal_width": [1, 2]}}),
     JSON, 400, "BAD_REQUEST", "every column needs one value per row"),
    (orjson.dumps({"inputs": []}), JSON, 400, "BAD_REQUEST", "'inputs' is empty"),
    (orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2, 3, 4]] * 1001}}), JSON,
     400, "BAD_REQUEST", "1001 rows, over the limit of 1000 (MLSTACK_MAX_BATCH_ROWS)"),
    (orjson.dumps({"inputs": [ROW] * 20_000}), JSON, 413, "REQUEST_LIMIT_EXCEEDED",
     "over the limit of 1048576 bytes (MLSTACK_MAX_BODY_BYTES)"),
    (f"{HEADER}\n5.1,3.5,x,0.2\n".encode(), CSV, 400, "BAD_REQUEST",
     "CSV line 2: feature 'petal_length' must be a number, got 'x'"),
    (f'{HEADER}\n5.1,3.5,"1.4",0.2\n'.encode(), CSV, 400, "BAD_REQUEST",
     "CSV line 2, cell 3: quoted cell"),
    (f",{HEADER}\n0,5.1,3.5,1.4,0.2\n".encode(), CSV, 400, "BAD_REQUEST",
     "unknown feature(s) ['']"),
    (f"{HEADER}\n5.1,3.5,1.4\n".encode(), CSV, 400, "BAD_REQUEST",
     "CSV line 2 has 3 cell(s), the header 4"),
    (HEADER.encode(), CSV, 400, "BAD_REQUEST", "the CSV has a header and no rows"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "message"),
    BAD,
    ids=["malformed", "list", "mlflow-1-form", "no-form", "two-forms", "params-type",
         "missing-column", "split-no-columns", "ragged", "null", "nan", "float32-range",
         "record-missing", "unequal-columns", "empty", "batch-limit", "body-limit", "csv-text",
         "csv-quoted", "csv-index", "csv-short-row", "csv-no-rows"],
)  # fmt: skip
def test_bad_invocations_are_refused_in_mlflows_form_naming_the_field(
    served_app: Process, body: bytes, content_type: str, status: int, code: str, message: str
) -> None:
    response = _post(served_app.url, body, content_type)
    assert response.status_code == status
    assert response.json()["error_code"] == code
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("content_type", "mlflow_status", "message"),
    [
        ("text/plain", 415, "content type must be application/json or text/csv, got 'text/plain'"),
        ("application/json; charset=latin-1", 415, "charset 'latin-1' is not taken: only UTF-8"),
        ("application/json; format=pandas-split", 415, "parameter 'format' is not taken"),
        # MLflow reads Parquet (and fails on this body); mlstack, without pandas, does not.
        ("application/vnd.apache.parquet", 400, "Parquet is not taken: send JSON or CSV"),
    ],
)
def test_an_unsupported_content_type_is_415_in_plain_text_as_mlflow_answers(
    champion: Served, content_type: str, mlflow_status: int, message: str
) -> None:
    body = orjson.dumps({"inputs": [ROW]})
    theirs = _post(champion.mlflow.url, body, content_type)
    ours = _post(champion.mlstack.url, body, content_type)
    assert theirs.status_code == mlflow_status
    assert ours.status_code == 415
    assert ours.headers["content-type"] == "text/plain; charset=utf-8"
    if mlflow_status == 415:
        assert ours.headers["content-type"] == theirs.headers["content-type"]
    assert message in ours.text


def test_ping_health_and_version_answer_as_mlflow_does(champion: Served) -> None:
    for route in ("/ping", "/health"):
        theirs = httpx.get(f"{champion.mlflow.url}{route}")
        ours = httpx.get(f"{champion.mlstack.url}{route}")
        assert ours.status_code == theirs.status_code == 200
        assert ours.text == theirs.text == "\n"
        assert ours.headers["content-type"] == theirs.headers["content-type"]
    ours = httpx.get(f"{champion.mlstack.url}/version")
    assert ours.status_code == 200
    assert ours.text == httpx.get(f"{champion.mlflow.url}/version").text == mlflow.__version__
    local = mlflow.artifacts.download_artifacts(f"models:/{champion.name}@champion")
    assert ours.text == Model.load(local).mlflow_version


@pytest.fixture(scope="module")
def unready_app(
    mlflow_server: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """A service with auth on following a model that does not exist: it never loads one."""
    process = start_app(tmp_path_factory.mktemp("unready"), mlflow_server.url,
                        f"absent-{uuid.uuid4().hex[:8]}", wait_ready=False,
                        env={"MLSTACK_API_KEY": KEY})  # fmt: skip
    yield process
    process.stop()


def test_without_a_model_ping_is_404_and_open_and_invocations_503(unready_app: Process) -> None:
    url = unready_app.url
    for route in ("/ping", "/health"):
        response = httpx.get(f"{url}{route}")  # no API key: probes are open
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert "no model is loaded yet" in response.json()["message"]
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(Exception, match="ping failed \\(error code 404\\)"):
        ScoringServerClient("127.0.0.1", port).ping()
    version = httpx.get(f"{url}/version")
    assert (version.status_code, version.json()["error_code"]) == (503, "TEMPORARILY_UNAVAILABLE")
    body = orjson.dumps({"inputs": [ROW]})
    denied = _post(url, body, JSON)
    assert denied.status_code == 401
    assert denied.json() == {
        "error_code": "UNAUTHENTICATED",
        "message": "missing API key header 'x-api-key'",
    }
    unready = _post(url, body, JSON, **{"x-api-key": KEY})
    assert unready.status_code == 503
    assert unready.json() == {
        "error_code": "TEMPORARILY_UNAVAILABLE",
        "message": "no model is loaded yet",
    }


def test_openapi_lists_the_routes_and_metrics_label_invocations(champion: Served) -> None:
    url = champion.mlstack.url
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert "post" in paths["/invocations"]
    assert {"application/json", "text/csv"} <= set(
        paths["/invocations"]["post"]["requestBody"]["content"]
    )
    assert all("get" in paths[route] for route in ("/ping", "/health", "/version"))
    assert httpx.get(f"{url}/ping").status_code == 200
    before = metric_samples(url).get(
        "mlstack_requests_total{method=POST,route=/invocations,status=200}", 0.0
    )
    body, _ = FORMS["split"](champion.example)
    assert _post(url, body, JSON).status_code == 200
    after = metric_samples(url)["mlstack_requests_total{method=POST,route=/invocations,status=200}"]
    assert after == before + 1
    assert metric_samples(url)["mlstack_requests_total{method=GET,route=/ping,status=200}"] >= 1


def test_a_version_whose_answer_mlstack_cannot_give_is_refused_with_501(
    mlflow_server: Process, tmp_path: Path
) -> None:
    """predict_log_proba (MLflow would answer log-probabilities, mlstack computes
    probabilities), then the onnx flavour (MLflow's onnx pyfunc answers no prediction for a
    classifier): each refused with its reason, while /predict serves on."""
    import mlflow.onnx
    from skl2onnx import to_onnx

    uri, name = mlflow_server.url, f"unanswerable-{uuid.uuid4().hex[:8]}"
    model = LogisticRegression(max_iter=500).fit(X, Y)
    client = MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict_proba(X)),
            registered_model_name=name,
            serialization_format="skops",
            pyfunc_predict_fn="predict_log_proba",
            pip_requirements=["scikit-learn", "skops"],
        )
    client.set_registered_model_alias(name, "champion", str(info.registered_model_version))
    app = start_app(tmp_path, uri, name)
    try:
        body = orjson.dumps({"inputs": [ROW]})
        refused = _post(app.url, body, JSON)
        assert refused.status_code == 501
        assert refused.json()["error_code"] == "NOT_IMPLEMENTED"
        assert "pyfunc predict_fn is 'predict_log_proba'" in refused.json()["message"]

        x32 = X.astype(np.float32)
        graph = to_onnx(model, x32.to_numpy()[:1], options={id(model): {"zipmap": False}})
        with mlflow.start_run():
            info = mlflow.onnx.log_model(
                graph,
                name="model",
                signature=infer_signature(x32, model.predict_proba(X)),
                registered_model_name=name,
                pip_requirements=["onnxruntime"],
            )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(name, "champion", version)
        wait_until(
            lambda: httpx.get(f"{app.url}/readyz").json().get("model_version") == version,
            30,
            f"the service following the alias to v{version}",
        )
        refused = _post(app.url, body, JSON)
        assert refused.status_code == 501
        assert f"v{version} is of the onnx flavour" in refused.json()["message"]
        predicted = httpx.post(f"{app.url}/predict", json=ROW)
        assert predicted.status_code == 200
    finally:
        app.stop()
