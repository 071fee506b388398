"""Training rounds against a real `mlflow server` process."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.processes import Process
from training import contract
from training.__main__ import main

Train = Callable[..., int]


@pytest.fixture
def model_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(mlflow_server: Process) -> MlflowClient:
    return MlflowClient(mlflow_server.url)


@pytest.fixture
def train(mlflow_server: Process, monkeypatch: pytest.MonkeyPatch, model_name: str) -> Train:
    """Run `python -m training` in-process against the test server; returns the exit code."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)

    def run(*args: str) -> int:
        return main(["--model-name", model_name, "--experiment", model_name, *args])

    return run


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


def test_first_round_registers_version_1_as_champion(
    train: Train, client: MlflowClient, model_name: str
) -> None:
    assert train("--candidates", "logreg,random_forest") == 0
    assert _alias(client, model_name, contract.ALIAS_CHAMPION) == "1"
    version = client.get_model_version(model_name, "1")
    assert version.tags[contract.TAG_GATE_DECISION] == contract.ALIAS_CHAMPION
    assert "no champion yet" in version.tags[contract.TAG_GATE_REASON]
    assert version.tags[contract.TAG_DATASET_NAME] == "iris"
    assert len(version.tags[contract.TAG_DATASET_HASH]) == 64
    assert version.tags[contract.TAG_CODE_VERSION]
    assert version.tags[contract.TAG_ONNX] == "true"
    assert float(version.tags[contract.TAG_ONNX_MAX_ABS_DIFF]) <= 1e-5


def test_round_tracks_parent_and_nested_candidate_runs(
    train: Train, client: MlflowClient, model_name: str
) -> None:
    assert train("--candidates", "logreg,svm") == 0
    experiment = client.get_experiment_by_name(model_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags[contract.TAG_ROUND_ROLE] == contract.ROLE_ROUND]
    children = [r for r in runs if r.data.tags[contract.TAG_ROUND_ROLE] == contract.ROLE_CANDIDATE]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags[contract.TAG_CANDIDATE] for r in children) == ["logreg", "svm"]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    for child in children:
        for metric in contract.METRICS:
            assert f"{contract.TEST_METRIC_PREFIX}{metric}" in child.data.metrics
        assert {
            contract.CV_MEAN_METRIC,
            contract.CV_STD_METRIC,
            contract.FIT_SECONDS_METRIC,
        } <= set(child.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"confusion_matrix.json", "confusion_matrix.png"} <= artifacts
    assert parents[0].inputs.dataset_inputs[0].dataset.name == "iris"


def test_worse_round_becomes_challenger_and_keeps_champion(
    train: Train, client: MlflowClient, model_name: str
) -> None:
    assert train("--candidates", "logreg") == 0
    assert train("--candidates", "baseline", "--min-score", "0") == 0
    assert _alias(client, model_name, contract.ALIAS_CHAMPION) == "1"
    assert _alias(client, model_name, contract.ALIAS_CHALLENGER) == "2"
    reason = client.get_model_version(model_name, "2").tags[contract.TAG_GATE_REASON]
    assert "does not beat champion v1" in reason


def test_better_round_moves_champion(train: Train, client: MlflowClient, model_name: str) -> None:
    assert train("--candidates", "baseline", "--min-score", "0") == 0
    assert _alias(client, model_name, contract.ALIAS_CHAMPION) == "1"
    assert train("--candidates", "logreg") == 0
    assert _alias(client, model_name, contract.ALIAS_CHAMPION) == "2"
    tags = client.get_model_version(model_name, "2").tags
    assert tags[contract.TAG_PREVIOUS_CHAMPION] == "1"
    assert float(tags[contract.TAG_GATE_SCORE]) > float(tags[contract.TAG_GATE_CHAMPION_SCORE])


def test_round_below_the_floor_is_challenger_even_without_a_champion(
    train: Train, client: MlflowClient, model_name: str
) -> None:
    assert train("--candidates", "baseline") == 0
    assert _alias(client, model_name, contract.ALIAS_CHAMPION) is None
    assert _alias(client, model_name, contract.ALIAS_CHALLENGER) == "1"


def test_different_signature_is_challenger_unless_forced(
    train: Train, client: MlflowClient, model_name: str, tmp_path: Path
) -> None:
    assert train("--candidates", "logreg") == 0
    csv = tmp_path / "other.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x[:, 0] > 0, "p", "n")}).to_csv(
        csv, index=False
    )
    assert train("--csv", str(csv), "--target", "y", "--candidates", "logreg") == 0
    assert _alias(client, model_name, contract.ALIAS_CHAMPION) == "1"
    assert (
        "signature differs"
        in client.get_model_version(model_name, "2").tags[contract.TAG_GATE_REASON]
    )
    assert train("--csv", str(csv), "--target", "y", "--candidates", "logreg", "--force") == 0
    assert _alias(client, model_name, contract.ALIAS_CHAMPION) == "3"


def test_same_inputs_give_the_same_metrics(
    train: Train, client: MlflowClient, model_name: str
) -> None:
    for _ in range(2):
        assert train("--candidates", "random_forest,gradient_boosting") == 0
    experiment = client.get_experiment_by_name(model_name)
    parents = client.search_runs(
        [experiment.experiment_id], f"tags.`{contract.TAG_ROUND_ROLE}` = '{contract.ROLE_ROUND}'"
    )
    assert len(parents) == 2
    first, second = (
        {k: v for k, v in p.data.metrics.items() if k.startswith(contract.TEST_METRIC_PREFIX)}
        for p in parents
    )
    assert first and first == second


def test_logged_model_predicts_with_the_named_features_of_its_signature(
    train: Train, client: MlflowClient, model_name: str
) -> None:
    import mlflow.pyfunc

    assert train("--candidates", "random_forest") == 0
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@{contract.ALIAS_CHAMPION}")
    names = model.metadata.get_input_schema().input_names()
    assert names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], columns=names)
    proba = np.asarray(model.predict(frame))
    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert model.metadata.metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert np.argmax(proba, axis=1).tolist() == [0, 2]


def test_round_baseline_records_each_features_training_range(
    train: Train, client: MlflowClient, model_name: str, tmp_path: Path
) -> None:
    import mlflow.artifacts

    from training.data import load_dataset, split

    assert train("--candidates", "logreg") == 0
    source = client.get_model_version_download_uri(model_name, "1")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path)))
    baseline = contract.baseline_from_json((local / contract.BASELINE_FILE).read_bytes())
    # The round's defaults: test size 0.25, seed 42. The range is the training split's.
    x_train = split(load_dataset("iris"), 0.25, 42).x_train
    assert {name: b.range for name, b in baseline.items()} == {
        name: (x_train[name].min(), x_train[name].max()) for name in x_train.columns
    }
