"""Logging a fitted classifier the way mlstack's round does, from any training code.

`log_classifier` is the one call a user's `train.py` needs instead of
`mlflow.sklearn.log_model`: the model is logged with a named signature, an input example,
an ONNX export (kept only when parity holds), the training baseline statistics and the
manifest, registered, and put through the quality gate. The round uses `publish` too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from training import contract
from training.data import content_hash
from training.evaluate import baseline_statistics, held_out_metrics
from training.gate import Decision
from training.onnx_export import OnnxResult, export
from training.registry import apply_gate, register, score_champion
from training.result import result_file_from_environment, write_result
from training.settings import TrainingSettings

_ROUND = TrainingSettings.model_fields


class GateSettings(BaseSettings):
    """The round's gate settings, read by `log_classifier` alone: a user's image may carry
    other MLSTACK_* variables that are none of its business."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_", extra="ignore")

    model_name: str = _ROUND["model_name"].default
    metric: str = _ROUND["metric"].default
    margin: float = Field(_ROUND["margin"].default, ge=0.0)
    min_score: float = _ROUND["min_score"].default
    force: bool = _ROUND["force"].default
    onnx_tolerance: float = Field(_ROUND["onnx_tolerance"].default, gt=0.0)
    code_version: str | None = None


@dataclass(frozen=True)
class Published:
    version: str
    decision: Decision
    onnx: OnnxResult


def log_classifier(
    model: Any,
    x_train: pd.DataFrame,
    x_test: pd.DataFrame,
    y_test: Any,
    *,
    model_name: str | None = None,
    metric: str | None = None,
    margin: float | None = None,
    min_score: float | None = None,
    force: bool | None = None,
    onnx: bool = True,
    onnx_tolerance: float | None = None,
    dataset_name: str = "user",
    result_file: Path | None = None,
) -> contract.TrainingResult:
    """Log, register and gate a fitted scikit-learn classifier; return the gate's result.

    `model` has `predict_proba` and `classes_`; `x_train` (a DataFrame of named numeric
    columns) gives the signature, the input example and the drift baseline; `x_test` and
    `y_test` (held out, never trained on) give the metrics, the ONNX parity check and the gate
    score. Logs into the active MLflow run, or starts one in the active experiment. MLflow is
    found through MLFLOW_TRACKING_URI. The result is also written as JSON to `result_file`
    (default: MLSTACK_RESULT_FILE, the Job's termination message in the cluster).

    An argument left out takes the round's setting from the environment (MLSTACK_MODEL_NAME,
    MLSTACK_METRIC, MLSTACK_MARGIN, MLSTACK_MIN_SCORE, MLSTACK_FORCE,
    MLSTACK_ONNX_TOLERANCE), so the chart's `training.*` gate values apply to a user's
    image too; unset, the round's defaults. Raises ValueError for an unfit model or data,
    naming what to change.
    """
    import mlflow
    from mlflow import MlflowClient

    gate = GateSettings()
    model_name = model_name or gate.model_name
    metric = contract.known_metric(metric or gate.metric)
    margin = gate.margin if margin is None else margin
    min_score = gate.min_score if min_score is None else min_score
    force = gate.force if force is None else force
    onnx_tolerance = gate.onnx_tolerance if onnx_tolerance is None else onnx_tolerance
    if not callable(getattr(model, "predict_proba", None)) or not hasattr(model, "classes_"):
        raise ValueError(f"{type(model).__name__} is not a fitted classifier with predict_proba")
    if not isinstance(x_train, pd.DataFrame) or not isinstance(x_test, pd.DataFrame):
        raise ValueError("x_train and x_test must be pandas DataFrames with named columns")
    if list(x_train.columns) != list(x_test.columns):
        raise ValueError(
            f"x_test columns {list(x_test.columns)} differ from x_train's {list(x_train.columns)}"
        )
    classes = sorted(str(c) for c in model.classes_)
    labels = np.asarray(y_test).astype(str)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"y_test holds labels the model does not know: {unknown}")
    proba = proba_in_order(model, x_test.to_numpy(), classes)
    metrics = held_out_metrics(labels, proba, classes)
    digest = content_hash(x_train)
    tags = {
        contract.TAG_DATASET_NAME: dataset_name,
        contract.TAG_DATASET_HASH: digest,
    }
    if gate.code_version:
        tags[contract.TAG_CODE_VERSION] = gate.code_version
    client = MlflowClient()
    started = mlflow.active_run() is None
    run = mlflow.start_run(tags=tags) if started else mlflow.active_run()
    assert run is not None
    try:
        mlflow.log_metrics({f"{contract.TEST_METRIC_PREFIX}{k}": v for k, v in metrics.items()})
        with tempfile.TemporaryDirectory() as tmp:
            published = publish(
                client,
                model,
                model_name=model_name,
                classes=classes,
                x_train=x_train,
                x_test=x_test,
                y_test=labels,
                metrics=metrics,
                dataset_name=dataset_name,
                dataset_sha256=digest,
                tags=tags,
                metric=metric,
                margin=margin,
                min_score=min_score,
                force=force,
                onnx=onnx,
                onnx_tolerance=onnx_tolerance,
                workdir=Path(tmp),
            )
    finally:
        if started:
            mlflow.end_run()
    result = contract.TrainingResult(
        model_name=model_name,
        version=published.version,
        run_id=run.info.run_id,
        decision=published.decision.alias,
        reason=published.decision.reason,
        onnx=published.onnx.path is not None,
    )
    write_result(result, result_file or result_file_from_environment())
    return result


def publish(
    client: Any,
    model: Any,
    *,
    model_name: str,
    classes: list[str],
    x_train: pd.DataFrame,
    x_test: pd.DataFrame,
    y_test: np.ndarray,
    metrics: dict[str, float],
    dataset_name: str,
    dataset_sha256: str,
    tags: dict[str, str],
    metric: str,
    margin: float,
    min_score: float,
    force: bool,
    onnx: bool,
    onnx_tolerance: float,
    workdir: Path,
    say: Callable[[str], None] = lambda line: None,
) -> Published:
    """Into the active run: export ONNX (kept on parity), log the model with its extras,
    register a version with `tags`, apply the gate and move the alias (last)."""
    import mlflow

    exported = (
        export(model, x_test.to_numpy(), classes, workdir, onnx_tolerance)
        if onnx
        else OnnxResult(None, "disabled by settings")
    )
    say(f"onnx: {'exported' if exported.path else 'not exported'} ({exported.reason})")
    manifest = contract.Manifest(
        features=tuple(str(c) for c in x_train.columns),
        classes=tuple(classes),
        sklearn_file=contract.SKOPS_FILE,
        sklearn_format=contract.SKOPS_FORMAT,
        skops_trusted_types=(),
        onnx=exported.path is not None,
        metrics={f"{contract.TEST_METRIC_PREFIX}{k}": v for k, v in metrics.items()},
        dataset=dataset_name,
        dataset_sha256=dataset_sha256,
    )
    model_info = log_model(model, manifest, x_train, exported, workdir)
    champion = score_champion(client, model_name, metric, x_test, y_test, classes)
    version_tags = {**tags, **exported.tags()}
    version = str(register(model_name, model_info.model_uri, version_tags).version)
    decision = apply_gate(
        client, model_name, version, metric, metrics[metric], champion, margin, min_score, force
    )
    mlflow.set_tags(
        {contract.TAG_GATE_DECISION: decision.alias, contract.TAG_GATE_REASON: decision.reason}
    )
    return Published(version, decision, exported)


def log_model(
    model: Any,
    manifest: contract.Manifest,
    x_train: pd.DataFrame,
    onnx: OnnxResult,
    workdir: Path,
) -> Any:
    """Log `model` (sklearn flavour, skops format) with the manifest, baseline and ONNX
    export as extra files, a named signature and an input example."""
    import dataclasses

    import mlflow.sklearn
    import sklearn
    import skops
    import skops.io
    from mlflow.models import infer_signature

    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    manifest = dataclasses.replace(manifest, skops_trusted_types=tuple(trusted))
    files = workdir / "model-files"
    files.mkdir()
    (files / Path(contract.MANIFEST_FILE).name).write_text(manifest.to_json())
    (files / Path(contract.BASELINE_FILE).name).write_text(
        contract.baseline_to_json(baseline_statistics(x_train))
    )
    extra = [str(p) for p in sorted(files.iterdir())]
    if onnx.path is not None:
        extra.append(str(onnx.path))
    # The features are float32 in training; the signature stays `double`, what JSON clients
    # send and MLflow's own schema enforcement accepts without a lossy-conversion refusal.
    example = x_train.head(3).astype(np.float64)
    classes = list(manifest.classes)
    signature = infer_signature(example, proba_in_order(model, example.to_numpy(), classes))
    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pyfunc_predict_fn="predict_proba",
        metadata={"classes": classes},
        extra_files=extra,
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
        serialization_format=contract.SKOPS_FORMAT,
        skops_trusted_types=trusted,
    )


def proba_in_order(model: Any, x: np.ndarray, classes: list[str]) -> np.ndarray:
    """`model`'s probabilities on `x` with the columns in `classes` order."""
    proba = np.asarray(model.predict_proba(x))
    order = [list(map(str, model.classes_)).index(c) for c in classes]
    return proba[:, order]
