"""Values outside the training range: counted per feature (metric and GET /drift) and, with
MLSTACK_REFUSE_OUT_OF_RANGE, refused with a 422 in every protocol's error form. A real mlflow
server, the round's real champion, real uvicorn processes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import orjson
import pytest
from mlflow import MlflowClient

from tests.processes import Process, metric_samples, start_app
from training import contract

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
INSIDE = [5.8, 3.0, 4.35, 1.3]  # the middle of iris: inside every range
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def counting_app(
    mlflow_server: Process, champion_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """The round's champion served with the default: values outside are counted, not refused."""
    process = start_app(tmp_path_factory.mktemp("counting"), mlflow_server.url, champion_name)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def refusing_app(
    mlflow_server: Process, champion_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    process = start_app(tmp_path_factory.mktemp("refusing"), mlflow_server.url, champion_name,
                        env={"MLSTACK_REFUSE_OUT_OF_RANGE": "true"})  # fmt: skip
    yield process
    process.stop()


def _drift(app: Process) -> dict[str, Any]:
    response = httpx.get(f"{app.url}/drift")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _counts(app: Process) -> dict[str, int | None]:
    return {name: f["out_of_range"] for name, f in _drift(app)["features"].items()}


def _predict(app: Process, rows: list[list[float]]) -> httpx.Response:
    body = {"instances": [dict(zip(FEATURES, row, strict=True)) for row in rows]}
    return httpx.post(f"{app.url}/predict", content=orjson.dumps(body), headers=JSON, timeout=10)


def test_drift_reports_each_features_training_range(counting_app: Process) -> None:
    report = _drift(counting_app)
    assert report["ranges_known"] is True
    assert report["refuse_out_of_range"] is False
    for name in FEATURES:
        low, high = report["features"][name]["training_range"]
        assert low < high
    # Iris petals are 0.1 to 2.5 cm wide; the training split holds both extremes or fewer.
    low, high = report["features"]["petal_width"]["training_range"]
    assert low >= 0.1 and high <= 2.5


def test_values_outside_the_range_are_counted_per_feature_and_still_served(
    counting_app: Process, champion_name: str
) -> None:
    before = _counts(counting_app)
    rows = [INSIDE, [*INSIDE[:3], 9.5], [-1.0, *INSIDE[1:3], 9.5]]
    response = _predict(counting_app, rows)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3
    # V2 goes through the same pipeline: one more value outside, on petal_length.
    tensor = {"name": "input", "shape": [1, 4], "datatype": "FP32",
              "data": [*INSIDE[:2], 100.0, INSIDE[3]]}  # fmt: skip
    v2 = httpx.post(f"{counting_app.url}/v2/models/{champion_name}/infer",
                    content=orjson.dumps({"inputs": [tensor]}), headers=JSON)  # fmt: skip
    assert v2.status_code == 200, v2.text

    after = _counts(counting_app)
    added = {name: after[name] - before[name] for name in FEATURES}  # type: ignore[operator]
    assert added == {"sepal_length": 1, "sepal_width": 0, "petal_length": 1, "petal_width": 2}
    samples = metric_samples(counting_app.url)
    for name in FEATURES:
        key = f"mlstack_feature_out_of_range_total{{feature={name},model_version=1}}"
        assert samples[key] == after[name], key  # every feature with a range has a series


def _v2(name: str, row: list[float]) -> tuple[str, Any]:
    tensor = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": row}
    return f"/v2/models/{name}/infer", {"inputs": [tensor]}


# Per protocol: the route and body for one row, and the message out of its error body.
PROTOCOLS: dict[str, tuple[Callable[[str, list[float]], tuple[str, Any]], Callable[[Any], str]]] = {
    "predict": (
        lambda name, row: ("/predict", {"instances": [dict(zip(FEATURES, row, strict=True))]}),
        lambda body: body["detail"],
    ),
    "v2": (_v2, lambda body: body["error"]),
    "kserve_v1": (
        lambda name, row: (f"/v1/models/{name}:predict", {"instances": [row]}),
        lambda body: body["error"],
    ),
    "mlflow": (
        lambda name, row: (
            "/invocations",
            {"dataframe_split": {"columns": FEATURES, "data": [row]}},
        ),
        lambda body: f"{body['error_code']}: {body['message']}",
    ),
}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_out_of_range_is_refused_with_422_naming_feature_value_and_range_in_every_protocol(
    refusing_app: Process, champion_name: str, protocol: str
) -> None:
    request, message_of = PROTOCOLS[protocol]
    low, high = _drift(refusing_app)["features"]["petal_width"]["training_range"]
    before = _counts(refusing_app)["petal_width"]

    route, body = request(champion_name, [*INSIDE[:3], 9.5])
    response = httpx.post(f"{refusing_app.url}{route}", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 422, response.text
    expected = f"feature 'petal_width' value 9.5 is outside the training range [{low!r}, {high!r}]"
    message = message_of(response.json())
    assert message.endswith(expected), message
    if protocol == "mlflow":
        assert message.startswith("INVALID_PARAMETER_VALUE: ")
    assert _counts(refusing_app)["petal_width"] == before + 1  # refused, and counted

    route, body = request(champion_name, INSIDE)
    inside = httpx.post(f"{refusing_app.url}{route}", content=orjson.dumps(body), headers=JSON)
    assert inside.status_code == 200, inside.text


def test_refused_batch_names_the_first_value_and_its_row(refusing_app: Process) -> None:
    response = _predict(refusing_app, [INSIDE, [*INSIDE[:2], -3.0, 9.5]])
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("feature 'petal_length' value -3.0 in row 1 is outside the training")
    assert detail.endswith("(and 1 more value in this request)")
    assert _drift(refusing_app)["refuse_out_of_range"] is True


def _without_ranges(uri: str, champion: str, directory: Path) -> str:
    """The champion's files registered anew under another name, their baseline as it was
    written before ranges were recorded; the new model's name."""
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias(champion, contract.ALIAS_CHAMPION)
    source = client.get_model_version_download_uri(champion, version.version)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(directory)))
    baseline_path = local / contract.BASELINE_FILE
    baseline = json.loads(baseline_path.read_text())
    for entry in baseline["features"].values():
        del entry["min"], entry["max"]
    baseline_path.write_text(json.dumps(baseline))
    name = f"old-baseline-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(local), "model")
    registered = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    client.set_registered_model_alias(name, contract.ALIAS_CHAMPION, registered.version)
    return name


def test_a_baseline_without_ranges_loads_counts_nothing_and_drift_says_so(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    name = _without_ranges(mlflow_server.url, champion_name, tmp_path / "files")
    app = start_app(tmp_path / "app", mlflow_server.url, name,
                    env={"MLSTACK_REFUSE_OUT_OF_RANGE": "true"})  # fmt: skip
    try:
        # Nothing to refuse against: served.
        assert _predict(app, [[*INSIDE[:3], 9.5]]).status_code == 200
        report = _drift(app)
        assert report["ranges_known"] is False
        assert all(
            f["training_range"] is None and f["out_of_range"] is None
            for f in report["features"].values()
        )
        assert report["window_rows"] == 1  # drift itself still works
        samples = metric_samples(app.url)
        assert not any(k.startswith("mlstack_feature_out_of_range") for k in samples)
        assert "model.ranges_unknown" in app.output()
    finally:
        app.stop()
