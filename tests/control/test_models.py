"""Registry views, promotion and rollback against a real mlflow server, through a real control
plane and through the `mlstack` command (both call the same checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from tests.control.records import AUTH
from tests.processes import Process, train_model
from training import contract

CHAMPION = contract.ALIAS_CHAMPION
CHALLENGER = contract.ALIAS_CHALLENGER
PREVIOUS_CHAMPION = contract.TAG_PREVIOUS_CHAMPION
PREVIOUS_CHALLENGER = f"{contract.TAG_PREVIOUS_HOLDER_PREFIX}{CHALLENGER}"


@pytest.fixture(scope="module")
def model(mlflow_server: Process, tmp_path_factory: pytest.TempPathFactory) -> str:
    """v1 champion (iris, 4 features); v2 challenger with the same features (it cannot clear
    the floor); v3 challenger with 3 features (its signature differs from the champion's)."""
    from sklearn.datasets import load_iris

    name = f"promote-{uuid.uuid4().hex[:8]}"
    train_model(mlflow_server.url, name, "--candidates", "logreg")
    train_model(mlflow_server.url, name, "--candidates", "logreg", "--min-score", "1.01")
    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns=["petal width (cm)", "target"])
    frame.columns = ["sepal_length", "sepal_width", "petal_length"]
    frame["species"] = [iris.target_names[t] for t in iris.target]
    csv = tmp_path_factory.mktemp("csv") / "three-features.csv"
    frame.to_csv(csv, index=False)
    train_model(
        mlflow_server.url, name, "--csv", str(csv), "--target", "species", "--candidates", "logreg"
    )
    return name


@pytest.fixture
def registry(mlflow_server: Process, model: str) -> Iterator[MlflowClient]:
    """The model as the module fixture left it, whatever the test before did."""
    client = MlflowClient(mlflow_server.url)
    client.set_registered_model_alias(model, CHAMPION, "1")
    client.set_registered_model_alias(model, CHALLENGER, "3")
    for version in ("1", "2", "3"):
        for tag in client.get_model_version(model, version).tags:
            if tag.startswith(contract.TAG_PREVIOUS_HOLDER_PREFIX):
                client.delete_model_version_tag(model, version, tag)
    yield client


@pytest.fixture(scope="module")
def plane(
    mlflow_server: Process, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    from tests.processes import start_control

    process = start_control(
        tmp_path_factory.mktemp("control"),
        mlflow_server.url,
        {"MLSTACK_CONTROL_API_KEY_FILE": str(key_file)},
    )
    yield process
    process.stop()


def _put(plane: Process, model: str, alias: str, body: Any) -> httpx.Response:
    return httpx.put(
        f"{plane.url}/v1/models/{model}/aliases/{alias}", json=body, headers=AUTH, timeout=60
    )


def _rollback(plane: Process, model: str, body: Any = None) -> httpx.Response:
    return httpx.post(
        f"{plane.url}/v1/models/{model}/rollback", json=body, headers=AUTH, timeout=60
    )


def _champion(client: MlflowClient, model: str) -> str:
    return str(client.get_model_version_by_alias(model, CHAMPION).version)


def test_models_and_model_detail_show_versions_aliases_metric_and_decision(
    plane: Process, model: str, registry: MlflowClient
) -> None:
    listed = httpx.get(f"{plane.url}/v1/models", headers=AUTH).json()
    [summary] = [m for m in listed if m["name"] == model]
    assert summary["aliases"] == {CHAMPION: "1", CHALLENGER: "3"}
    assert summary["created"].endswith("Z")

    detail = httpx.get(f"{plane.url}/v1/models/{model}", headers=AUTH).json()
    assert [v["version"] for v in detail["versions"]] == ["3", "2", "1"]
    v3, v2, v1 = detail["versions"]
    assert v1["aliases"] == [CHAMPION] and v3["aliases"] == [CHALLENGER] and v2["aliases"] == []
    assert v1["decision"] == CHAMPION and "no champion yet" in v1["reason"]
    assert v2["decision"] == CHALLENGER and v3["decision"] == CHALLENGER
    assert v1["metric"] == "f1_macro" and 0.7 < v1["score"] <= 1.0
    assert v1["onnx"] is True and v1["status"] == "READY" and len(v1["run_id"]) == 32
    stored = registry.get_model_version(model, "1")
    assert v1["score"] == pytest.approx(float(stored.tags[contract.TAG_GATE_SCORE]))


def test_a_different_signature_is_refused_unless_forced_and_the_previous_holder_recorded(
    plane: Process, model: str, registry: MlflowClient
) -> None:
    refused = _put(plane, model, CHAMPION, {"version": "3"})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert f"the signature of {model} v3 differs from champion v1's" in detail
    assert "'petal_length']" in detail and "'petal_width']" in detail and "force" in detail
    assert _champion(registry, model) == "1"
    assert PREVIOUS_CHAMPION not in registry.get_model_version(model, "3").tags

    forced = _put(plane, model, CHAMPION, {"version": "3", "force": True})
    assert forced.status_code == 200, forced.text
    assert forced.json() == {
        "model": model,
        "alias": CHAMPION,
        "version": "3",
        "previous": "1",
        "changed": True,
        "forced": True,
    }
    assert _champion(registry, model) == "3"
    assert registry.get_model_version(model, "3").tags[PREVIOUS_CHAMPION] == "1"
    audit = [
        json.loads(line)
        for line in plane.output().splitlines()
        if line.startswith("{") and '"alias.moved"' in line and model in line
    ]
    assert audit[-1]["version"] == "3" and audit[-1]["previous"] == "1"
    assert audit[-1]["forced"] is True and audit[-1]["by"].startswith("api:127.0.0.1")


def test_rollback_moves_the_alias_back_to_the_recorded_version(
    plane: Process, model: str, registry: MlflowClient
) -> None:
    promoted = _put(plane, model, CHAMPION, {"version": "2"})
    assert promoted.status_code == 200 and promoted.json()["previous"] == "1"
    assert _champion(registry, model) == "2"

    back = _rollback(plane, model)
    assert back.status_code == 200
    assert back.json()["version"] == "1" and back.json()["previous"] == "2"
    assert _champion(registry, model) == "1"

    nothing = _rollback(plane, model)
    assert nothing.status_code == 409
    assert f"{model} v1 records no previous holder of 'champion'" in nothing.json()["detail"]
    assert _champion(registry, model) == "1"


def test_each_alias_keeps_its_own_previous_holder(
    plane: Process, model: str, registry: MlflowClient
) -> None:
    moved = _put(plane, model, CHALLENGER, {"version": "2", "force": True})
    assert moved.json()["previous"] == "3"
    assert registry.get_model_version(model, "2").tags[PREVIOUS_CHALLENGER] == "3"
    assert PREVIOUS_CHAMPION not in registry.get_model_version(model, "2").tags
    back = _rollback(plane, model, {"alias": CHALLENGER})
    assert back.json()["version"] == "3"
    assert str(registry.get_model_version_by_alias(model, CHALLENGER).version) == "3"
    assert _champion(registry, model) == "1"


def test_promoting_the_current_holder_changes_nothing(
    plane: Process, model: str, registry: MlflowClient
) -> None:
    response = _put(plane, model, CHAMPION, {"version": 1})
    assert response.status_code == 200
    assert response.json()["changed"] is False and response.json()["version"] == "1"
    assert PREVIOUS_CHAMPION not in registry.get_model_version(model, "1").tags


BAD_MOVES = [
    ("unknown version", "{m}", {"version": "99"}, 404, "version 99 of model '{m}' does not exist"),
    ("unknown model", "nope-{m}", {"version": "1"}, 404, "of model 'nope-{m}' does not exist"),
    ("version not a number", "{m}", {"version": "latest"}, 422, "version: String should match"),
    ("no version", "{m}", {}, 422, "version: Field required"),
    ("unknown field", "{m}", {"version": "1", "stage": "Production"}, 422, "stage: Extra inputs"),
    ("force not boolean", "{m}", {"version": "2", "force": "maybe"}, 422, "force: Input should"),
]


@pytest.mark.parametrize(
    ("case", "name", "body", "status", "message"), BAD_MOVES, ids=[b[0] for b in BAD_MOVES]
)
def test_bad_promotions_are_refused_naming_the_problem(
    plane: Process,
    model: str,
    registry: MlflowClient,
    case: str,
    name: str,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    response = _put(plane, name.format(m=model), CHAMPION, body)
    assert response.status_code == status, response.text
    assert message.format(m=model) in response.json()["detail"]
    assert _champion(registry, model) == "1"


def test_rollback_of_an_unknown_model_is_404(plane: Process, model: str) -> None:
    response = _rollback(plane, f"nope-{model}")
    assert response.status_code == 404
    assert f"registered model 'nope-{model}' does not exist" in response.json()["detail"]


def test_experiments_show_the_best_round_by_the_chosen_metric(
    plane: Process, model: str, registry: MlflowClient
) -> None:
    [experiment] = registry.search_experiments(filter_string=f"name = '{model}'")
    rounds = registry.search_runs(
        [experiment.experiment_id], f"tags.`{contract.TAG_ROUND_ROLE}` = '{contract.ROLE_ROUND}'"
    )
    assert len(rounds) == 3
    for metric, best in (("f1_macro", max), ("log_loss", min)):
        key = f"{contract.TEST_METRIC_PREFIX}{metric}"
        expected = best(rounds, key=lambda r, k=key: r.data.metrics[k])
        listed = httpx.get(
            f"{plane.url}/v1/experiments", params={"metric": metric}, headers=AUTH
        ).json()
        [view] = [e for e in listed if e["name"] == model]
        assert view["best_run"]["run_id"] == expected.info.run_id
        assert view["best_run"]["value"] == pytest.approx(expected.data.metrics[key])
        assert view["best_run"]["metric"] == metric and view["best_run"]["candidate"] == "logreg"
    bad = httpx.get(f"{plane.url}/v1/experiments", params={"metric": "speed"}, headers=AUTH)
    assert bad.status_code == 422 and "metric: unknown 'speed'" in bad.json()["detail"]


def _mlstack(mlflow_server: Process, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control", *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_promote_refuses_forces_and_rolls_back_like_the_api(
    mlflow_server: Process, model: str, registry: MlflowClient
) -> None:
    refused = _mlstack(mlflow_server, "promote", model, "3")
    assert refused.returncode == 1
    assert f"error: the signature of {model} v3 differs from champion v1's" in refused.stderr
    assert _champion(registry, model) == "1"

    forced = _mlstack(mlflow_server, "promote", model, "3", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"champion of {model}: v1 -> v3 promoted (forced)" in forced.stdout
    assert '"event":"alias.moved"' in forced.stderr and '"by":"cli:' in forced.stderr
    assert registry.get_model_version(model, "3").tags[PREVIOUS_CHAMPION] == "1"

    back = _mlstack(mlflow_server, "rollback", model, "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["version"] == "1"
    assert _champion(registry, model) == "1"

    missing = _mlstack(mlflow_server, "promote", model, "99")
    assert missing.returncode == 1
    assert f"version 99 of model '{model}' does not exist" in missing.stderr


def test_cli_models_prints_an_aligned_table_and_the_api_json(
    mlflow_server: Process, plane: Process, model: str, registry: MlflowClient
) -> None:
    as_json = _mlstack(mlflow_server, "models", model, "--json")
    assert as_json.returncode == 0, as_json.stderr
    # The API's view adds the challenger's live agreement from the prediction log (none here).
    api = httpx.get(f"{plane.url}/v1/models/{model}", headers=AUTH).json()
    agreement = api.pop("challenger_agreement")
    assert (agreement["rows"], agreement["agreement"]) == (0, None)
    assert json.loads(as_json.stdout) == [{**api, "challenger_agreement": None}]
    text = _mlstack(mlflow_server, "models", model)
    header, *rows = text.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "VERSION",
        "ALIASES",
        "METRIC",
        "SCORE",
        "DECISION",
        "CREATED",
    ]
    assert [row.split()[1] for row in rows] == ["3", "2", "1"]
    column = header.index("DECISION")
    assert {row[column:].split()[0] for row in rows} == {CHAMPION, CHALLENGER}
    assert rows[2].split()[2] == CHAMPION and rows[1].split()[2] == "-"


def test_cli_experiments_lists_the_best_run(
    mlflow_server: Process, model: str, registry: MlflowClient
) -> None:
    result = _mlstack(mlflow_server, "experiments", "--json")
    assert result.returncode == 0, result.stderr
    [view] = [e for e in json.loads(result.stdout) if e["name"] == model]
    assert view["best_run"]["metric"] == "f1_macro"
    table = _mlstack(mlflow_server, "experiments", "--metric", "accuracy").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "EXPERIMENT", "BEST"]
    assert any(model in line and "accuracy" in line for line in table[1:])
    bad = _mlstack(mlflow_server, "experiments", "--metric", "speed")
    assert (
        bad.returncode == 2 and "error: --metric: Value error, unknown metric 'speed'" in bad.stderr
    )


def test_cli_reports_an_unreachable_mlflow_with_status_3() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "control", "models"],
        env={**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert "error: MLflow at http://127.0.0.1:9 is unreachable" in result.stderr


def test_a_reserved_alias_name_is_refused_by_mlflow_as_invalid_input(
    plane: Process, model: str, registry: MlflowClient
) -> None:
    response = _put(plane, model, "latest", {"version": "2", "force": True})
    assert response.status_code == 422
    assert "MLflow refused" in response.json()["detail"]
    assert "latest" not in registry.get_registered_model(model).aliases
    tags = registry.get_model_version(model, "2").tags
    assert not any(t.startswith(contract.TAG_PREVIOUS_HOLDER_PREFIX) for t in tags)


def _notebook_version(uri: str, name: str) -> str:
    """A Pipeline logged with plain MLflow calls, as a notebook does."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            pipe,
            name="model",
            signature=infer_signature(x, pipe.predict(x)),
            registered_model_name=name,
            pip_requirements=["scikit-learn"],
        )
    return str(info.registered_model_version)


def _iris_csv(labels: bool) -> bytes:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    if labels:
        x["target"] = y
    return x.to_csv(index=False).encode()


def test_adopt_over_the_api_adds_onnx_and_a_baseline_once(
    plane: Process, mlflow_server: Process
) -> None:
    name = f"adopt-api-{uuid.uuid4().hex[:8]}"
    version = _notebook_version(mlflow_server.url, name)
    url = f"{plane.url}/v1/models/{name}/versions/{version}/adopt"
    headers = {**AUTH, "content-type": "text/csv"}

    first = httpx.post(url, params={"target": "target"}, content=_iris_csv(True),
                       headers=headers, timeout=120)  # fmt: skip
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["changed"], body["onnx"], body["baseline_features"]) == (True, True, 4)
    assert body["metrics"]["accuracy"] > 0.9
    tags = MlflowClient(mlflow_server.url).get_model_version(name, version).tags
    assert tags[contract.TAG_EXTRAS_URI] == body["extras_uri"]

    again = httpx.post(url, params={"target": "target"}, content=_iris_csv(True),
                       headers=headers, timeout=120)  # fmt: skip
    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert again.json()["extras_uri"] == body["extras_uri"]


@pytest.mark.parametrize(
    ("params", "content", "status", "message"),
    [
        ({}, _iris_csv(True), 422, "columns the model does not take: 'target'"),
        ({"target": "label"}, _iris_csv(True), 422, "target column 'label' is not in the CSV"),
        ({}, b"", 422, "send the sample rows as CSV"),
    ],
    ids=["unnamed-target", "wrong-target", "empty"],
)
def test_adopt_over_the_api_refuses_unfit_rows_naming_them(
    plane: Process,
    mlflow_server: Process,
    params: dict[str, str],
    content: bytes,
    status: int,
    message: str,
) -> None:
    name = f"adopt-bad-{uuid.uuid4().hex[:8]}"
    version = _notebook_version(mlflow_server.url, name)
    response = httpx.post(
        f"{plane.url}/v1/models/{name}/versions/{version}/adopt",
        params=params,
        content=content,
        headers={**AUTH, "content-type": "text/csv"},
        timeout=120,
    )
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert (
        contract.TAG_EXTRAS_URI
        not in MlflowClient(mlflow_server.url).get_model_version(name, version).tags
    )


def test_adopt_over_the_api_needs_the_key(plane: Process) -> None:
    response = httpx.post(f"{plane.url}/v1/models/m/versions/1/adopt", content=b"a\n1\n")
    assert response.status_code == 401
