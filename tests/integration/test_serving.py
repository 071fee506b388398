"""The inference service as a real uvicorn process against a real mlflow server."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from mlflow import MlflowClient

from tests.processes import (
    Process,
    free_port,
    metric_samples,
    start_app,
    start_mlflow,
    train_model,
    wait_until,
)
from training import contract

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
JSON = {"content-type": "application/json"}


def _predict(url: str, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/predict",
        content=orjson.dumps(body),
        headers={**JSON, **(headers or {})},
        timeout=10,
    )


def test_serves_the_champion_with_its_version(
    served_app: Process, champion_name: str, mlflow_server: Process
) -> None:
    response = _predict(served_app.url, SETOSA)
    assert response.status_code == 200
    body = response.json()
    champion = MlflowClient(mlflow_server.url).get_model_version_by_alias(
        champion_name, contract.ALIAS_CHAMPION
    )
    assert body["model_version"] == str(champion.version)
    assert response.headers["x-model-version"] == str(champion.version)
    assert body["model_name"] == champion_name
    [prediction] = body["predictions"]
    assert prediction["label"] == "setosa"
    assert set(prediction["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_batch_returns_one_prediction_per_row_in_order(served_app: Process) -> None:
    response = _predict(served_app.url, {"instances": [SETOSA, VIRGINICA, SETOSA]})
    assert response.status_code == 200
    labels = [p["label"] for p in response.json()["predictions"]]
    assert labels == ["setosa", "virginica", "setosa"]


def test_model_describes_what_is_served(served_app: Process, champion_name: str) -> None:
    body = httpx.get(f"{served_app.url}/model").json()
    assert body["name"] == champion_name
    assert body["alias"] == contract.ALIAS_CHAMPION
    assert body["features"] == list(SETOSA)
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["predictor"] == "onnx"
    assert len(body["run_id"]) == 32
    assert 0.7 < body["metrics"]["test_f1_macro"] <= 1.0


def test_openapi_documents_every_route(served_app: Process) -> None:
    paths = httpx.get(f"{served_app.url}/openapi.json").json()["paths"]
    assert {"/predict", "/model", "/livez", "/readyz", "/metrics"} <= set(paths)
    assert httpx.get(f"{served_app.url}/docs").status_code == 200


BIG = {"instances": [SETOSA] * 1001}
BAD_INPUTS = [
    (
        "missing feature",
        {k: v for k, v in SETOSA.items() if k != "petal_width"},
        422,
        "missing feature(s) ['petal_width']",
    ),
    ("unknown feature", {**SETOSA, "colour": 1.0}, 422, "unknown feature(s) ['colour']"),
    (
        "string value",
        {**SETOSA, "sepal_length": "5.1"},
        422,
        "feature 'sepal_length' must be a number, got string",
    ),
    (
        "boolean value",
        {**SETOSA, "sepal_width": True},
        422,
        "feature 'sepal_width' must be a number, got boolean",
    ),
    (
        "null value",
        {**SETOSA, "petal_length": None},
        422,
        "feature 'petal_length' must be a number, got null",
    ),
    (
        "NaN",
        b'{"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
        422,
        "feature 'sepal_length' must be a finite number",
    ),
    (
        "infinity",
        b'{"sepal_length": 1, "sepal_width": Infinity, "petal_length": 1, "petal_width": 0.2}',
        422,
        "feature 'sepal_width' must be a finite number",
    ),
    (
        "float32 overflow",
        {**SETOSA, "petal_width": 1e39},
        422,
        "feature 'petal_width' must be a finite number within float32 range",
    ),
    ("empty batch", {"instances": []}, 422, "'instances' is empty"),
    (
        "batch over the limit",
        BIG,
        422,
        "1001 rows, over the limit of 1000 (MLSTACK_MAX_BATCH_ROWS)",
    ),
    (
        "bad row in batch",
        {"instances": [SETOSA, {**SETOSA, "sepal_length": "x"}]},
        422,
        "instances[1]: feature 'sepal_length' must be a number",
    ),
    (
        "row not an object",
        {"instances": [SETOSA, [1, 2, 3, 4]]},
        422,
        "instances[1] must be an object of features, got array",
    ),
    ("instances not a list", {"instances": SETOSA}, 422, "'instances' must be a list, got object"),
    ("extra top-level field", {"instances": [SETOSA], "x": 1}, 422, "besides ['instances']: ['x']"),
    ("body is an array", [SETOSA], 422, "body must be a JSON object"),
    ("malformed JSON", b'{"sepal_length": 5.1,', 400, "body is not valid JSON"),
    ("not UTF-8", b'{"sepal_length": "\xff"}', 400, "body is not valid JSON"),
    (
        "body over the size limit",
        b'{"instances": [' + b" " * 1_048_600 + b"]}",
        413,
        "over the limit of 1048576 bytes (MLSTACK_MAX_BODY_BYTES)",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_gets_a_4xx_naming_the_field_or_limit(
    served_app: Process, case: str, body: object, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = httpx.post(f"{served_app.url}/predict", content=content, headers=JSON, timeout=10)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_gets_415(served_app: Process, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(
        f"{served_app.url}/predict", content=orjson.dumps(SETOSA), headers=headers
    )
    assert response.status_code == 415
    assert "content type must be application/json" in response.json()["detail"]


def test_each_request_logs_one_json_line_with_its_request_id(served_app: Process) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    response = _predict(served_app.url, SETOSA, {"x-request-id": request_id})
    assert response.headers["x-request-id"] == request_id
    generated = _predict(served_app.url, {"bad": 1}).headers["x-request-id"]
    assert len(generated) == 32

    def lines() -> list[dict[str, object]]:
        out = []
        for line in served_app.output().splitlines():
            if line.startswith("{"):
                record = orjson.loads(line)
                if record.get("request_id") in (request_id, generated):
                    out.append(record)
        return out

    wait_until(lambda: len(lines()) == 2, 10, "two request log lines")
    ok, bad = sorted(lines(), key=lambda r: r["request_id"] != request_id)
    assert ok["event"] == "request.finished"
    assert ok["route"] == "/predict" and ok["status"] == 200
    assert ok["model_version"] == response.headers["x-model-version"]
    assert isinstance(ok["latency_ms"], float)
    assert "features" not in ok  # raw values are not logged by default
    assert bad["status"] == 422 and "unknown feature" in str(bad["error"])


# --- processes of their own: fresh metrics, auth, and the alias follower ---


def test_auth_requires_the_key_on_predict_and_model_only(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("s3cret-key\n")
    app = start_app(
        tmp_path, mlflow_server.url, champion_name, env={"MLSTACK_API_KEY_FILE": str(key_file)}
    )
    try:
        for method, path in (("POST", "/predict"), ("GET", "/model")):

            def call(headers: dict[str, str], m: str = method, p: str = path) -> httpx.Response:
                return httpx.request(
                    m, f"{app.url}{p}", content=orjson.dumps(SETOSA), headers={**JSON, **headers}
                )

            missing = call({})
            assert missing.status_code == 401
            assert "missing API key header 'x-api-key'" in missing.json()["detail"]
            assert call({"x-api-key": "wrong"}).status_code == 403
            assert call({"x-api-key": "s3cret-key"}).status_code == 200
        for path in ("/livez", "/readyz", "/metrics"):
            assert httpx.get(f"{app.url}{path}").status_code == 200
    finally:
        app.stop()


def test_metrics_follow_a_known_sequence_of_requests(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    app = start_app(
        tmp_path,
        mlflow_server.url,
        champion_name,
        env={"MLSTACK_DRIFT_MIN_ROWS": "20", "MLSTACK_DRIFT_WINDOW": "150"},
    )
    try:
        for _ in range(3):
            assert _predict(app.url, SETOSA).status_code == 200
        assert _predict(app.url, {"instances": [VIRGINICA] * 5}).status_code == 200
        assert _predict(app.url, {"nope": 1}).status_code == 422
        assert _predict(app.url, {"instances": []}).status_code == 422
        m = metric_samples(app.url)
        version = "1"
        assert m["mlstack_requests_total{method=POST,route=/predict,status=200}"] == 4
        assert m["mlstack_requests_total{method=POST,route=/predict,status=422}"] == 2
        assert m["mlstack_request_duration_seconds_count{method=POST,route=/predict}"] == 6
        assert m[f"mlstack_predictions_total{{class=setosa,model_version={version}}}"] == 3
        assert m[f"mlstack_predictions_total{{class=virginica,model_version={version}}}"] == 5
        assert m[f"mlstack_prediction_confidence_count{{model_version={version}}}"] == 8
        assert (
            m[f"mlstack_model_info{{alias=champion,name={champion_name},version={version}}}"] == 1
        )
        assert m["mlstack_model_loaded{}"] == 1
        assert m["mlstack_model_reloads_total{outcome=success}"] == 1
        assert m["mlstack_model_reloads_total{outcome=failed}"] == 0
        assert m["mlstack_model_load_duration_seconds_count{}"] == 1
        assert m["mlstack_requests_in_flight{}"] == 1  # the /metrics request itself
        assert m["mlstack_drift_window_rows{}"] == 8
        assert not any(k.startswith("mlstack_feature_drift_psi") for k in m)  # under 20 rows

        # The training distribution itself keeps PSI low; rows far outside it raise it.
        from sklearn.datasets import load_iris

        iris = [dict(zip(SETOSA, map(float, row), strict=True)) for row in load_iris().data]
        assert _predict(app.url, {"instances": iris}).status_code == 200
        calm = metric_samples(app.url)
        shifted = {**VIRGINICA, "sepal_length": 30.0}
        assert _predict(app.url, {"instances": [shifted] * 150}).status_code == 200
        drifted = metric_samples(app.url)
        key = "mlstack_feature_drift_psi{feature=sepal_length}"
        assert drifted[key] > 0.2 > calm[key]
        assert drifted["mlstack_drift_window_rows{}"] == 150
        report = httpx.get(f"{app.url}/drift").json()
        assert report["statistic"] == "psi" and report["baseline_version"] == version
        assert report["window_rows"] == 150 and report["threshold"] == 0.2
        assert report["features"]["sepal_length"]["drifted"] is True
        assert report["features"]["sepal_length"]["statistic"] == pytest.approx(drifted[key])
        # Label values come from the model, never the request.
        assert not any("nope" in k or "colour" in k for k in drifted)
    finally:
        app.stop()


def test_alias_move_is_followed_while_a_client_sees_only_2xx(
    mlflow_server: Process, tmp_path: Path
) -> None:
    name = f"follow-{uuid.uuid4().hex[:8]}"
    train_model(mlflow_server.url, name, "--candidates", "logreg")
    # A second version without ONNX export, so the swap also crosses predictor kinds.
    train_model(mlflow_server.url, name, "--candidates", "random_forest", "--no-onnx")
    client = MlflowClient(mlflow_server.url)
    assert client.get_model_version_by_alias(name, contract.ALIAS_CHAMPION).version == "1"
    app = start_app(tmp_path, mlflow_server.url, name)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def steady_client() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                response = http.post(
                    f"{app.url}/predict", content=orjson.dumps(SETOSA), headers=JSON
                )
                statuses.append(response.status_code)
                versions.add(response.headers.get("x-model-version", "?"))

    thread = threading.Thread(target=steady_client)
    thread.start()
    try:
        wait_until(lambda: len(statuses) > 20, 30, "traffic before the move")
        client.set_registered_model_alias(name, contract.ALIAS_CHAMPION, "2")
        # Two poll intervals (1 s each) plus the load itself, bounded generously.
        wait_until(
            lambda: httpx.get(f"{app.url}/model").json()["version"] == "2",
            30,
            "the service to follow the alias to v2",
        )
        served = len(statuses)
        wait_until(lambda: len(statuses) > served + 20, 30, "traffic after the move")
    finally:
        stop.set()
        thread.join(timeout=30)
        app.stop()
    assert statuses and set(statuses) == {200}
    assert versions == {"1", "2"}
    assert httpx.get  # the process never restarted: same log, one service.started
    assert app.output().count('"event":"service.started"') == 1
    assert '"event":"model.loaded"' in app.output() and '"predictor":"sklearn"' in app.output()


def test_incompatible_version_is_refused_and_the_old_one_keeps_serving(
    mlflow_server: Process, tmp_path: Path
) -> None:
    name = f"refuse-{uuid.uuid4().hex[:8]}"
    train_model(mlflow_server.url, name, "--candidates", "logreg")
    csv = tmp_path / "other.csv"
    csv.write_text(
        "a,b,y\n" + "".join(f"{i % 9},{i % 4},{'p' if i % 2 else 'n'}\n" for i in range(60))
    )
    train_model(
        mlflow_server.url,
        name,
        "--csv",
        str(csv),
        "--target",
        "y",
        "--candidates",
        "logreg",
        "--force",
        "--min-score",
        "0",
    )
    client = MlflowClient(mlflow_server.url)
    client.set_registered_model_alias(name, contract.ALIAS_CHAMPION, "1")
    app = start_app(tmp_path, mlflow_server.url, name)
    try:
        client.set_registered_model_alias(name, contract.ALIAS_CHAMPION, "2")
        wait_until(
            lambda: metric_samples(app.url)["mlstack_model_reloads_total{outcome=refused}"] == 1,
            30,
            "the incompatible version to be refused",
        )
        assert _predict(app.url, SETOSA).headers["x-model-version"] == "1"
        assert httpx.get(f"{app.url}/readyz").status_code == 200
        assert '"event":"model.swap_refused"' in app.output()
    finally:
        app.stop()


def test_mlflow_down_at_start_then_up_then_down_again(tmp_path: Path) -> None:
    """Started without MLflow: unready (never crashes); ready once MLflow has a champion;
    MLflow stopped again: still serving and ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name = "late"
    app = start_app(tmp_path / "app", url, name, wait_ready=False)
    mlflow = None
    try:
        ready = httpx.get(f"{app.url}/readyz")
        assert ready.status_code == 503
        assert "MLflow unavailable" in ready.json()["reason"]
        assert httpx.get(f"{app.url}/livez").status_code == 200
        assert _predict(app.url, SETOSA).status_code == 503
        mlflow = start_mlflow(tmp_path / "mlflow", port=port)
        train_model(url, name, "--candidates", "logreg")
        wait_until(
            lambda: httpx.get(f"{app.url}/readyz").status_code == 200,
            60,
            "the service to become ready once MLflow is up",
        )
        assert app.proc.poll() is None
        mlflow.stop()
        mlflow = None
        before = app.output().count("registry.unavailable")
        wait_until(
            lambda: app.output().count("registry.unavailable") >= before + 2,
            30,
            "two failed polls with MLflow down",
        )
        assert _predict(app.url, SETOSA).status_code == 200
        assert httpx.get(f"{app.url}/readyz").status_code == 200
        assert app.proc.poll() is None
    finally:
        if mlflow is not None:
            mlflow.stop()
        app.stop()


def test_uvicorn_factory_entry_point_serves_too(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    import os
    import sys

    from devsupport.processes import http_status, start

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = start(
        [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(port)],
        tmp_path / "uvicorn.log",
        url,
        env={
            "MLFLOW_TRACKING_URI": mlflow_server.url,
            "MLSTACK_MODEL_NAME": champion_name,
            "MLSTACK_CACHE_DIR": str(tmp_path / "cache"),
            "PATH": os.environ["PATH"],
        },
    )
    try:
        wait_until(lambda: http_status(f"{url}/readyz") == 200, 60, "uvicorn --factory ready")
        assert _predict(url, SETOSA).json()["predictions"][0]["label"] == "setosa"
    finally:
        app.stop()


def test_split_batch_answers_columnar(served_app: Process) -> None:
    names = list(SETOSA)
    response = _predict(
        served_app.url,
        {
            "columns": names[::-1],
            "data": [[SETOSA[n] for n in names[::-1]], [VIRGINICA[n] for n in names[::-1]]],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["labels"] == ["setosa", "virginica"]
    assert len(body["probabilities"]) == 2 and len(body["probabilities"][0]) == 3
    records = _predict(served_app.url, {"instances": [SETOSA, VIRGINICA]}).json()
    for row, prediction in zip(body["probabilities"], records["predictions"], strict=True):
        assert row == pytest.approx(list(prediction["probabilities"].values()))
