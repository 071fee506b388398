"""`mlstack adopt`: give a version mlstack did not train what its round gives.

The extras (ONNX export kept only on parity, baseline statistics, manifest, an input example
when the model has none) go to a run of their own; the version gets tags saying where they
are (contract.TAG_EXTRAS_URI, set last) and what they hold. The version's model files are
never touched. Running it again with the same data changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training import contract, mlmodel
from training.data import DatasetError, load_sample
from training.evaluate import baseline_statistics, held_out_metrics
from training.onnx_export import OnnxResult, export
from training.registry import downloaded_model, probabilities, version_files

ROLE_ADOPT = "adopt"


class AdoptError(Exception):
    """The version or the data cannot be adopted; the message names what to change."""


@dataclass(frozen=True)
class Adopted:
    model: str  # the registered model's name
    version: str
    changed: bool  # False: the version already carried these extras
    extras_uri: str | None  # None for a version produced by mlstack's round
    onnx: bool
    onnx_reason: str
    baseline_features: int
    metrics: dict[str, float]
    reason: str


def adopt(
    client: Any,
    name: str,
    version: str,
    data: Path,
    target: str | None,
    experiment: str = contract.DEFAULT_EXPERIMENT,
    onnx_tolerance: float = 1e-5,
) -> Adopted:
    """Add mlstack's extras to `name` v`version` from the sample rows in the CSV `data`.

    Raises AdoptError (unservable version, bad data: every failing column or line is named)
    before anything is written; MlflowException when MLflow fails.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        raise AdoptError(f"{name} v{version} does not exist ({exc.message})") from exc
    digest = _digest(data, target, onnx_tolerance)
    tags = mv.tags or {}
    if tags.get(contract.TAG_EXTRAS_SHA256) == digest and tags.get(contract.TAG_EXTRAS_URI):
        files = _files(client, name, version)  # the MLmodel alone: nothing else is needed
        return Adopted(
            name, version, False, tags[contract.TAG_EXTRAS_URI],
            tags.get(contract.TAG_ONNX) == "true", tags.get(contract.TAG_ONNX_REASON, ""),
            len(files.features), {}, "already adopted with this data: nothing changed",
        )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, _downloaded(client, name, version) as loaded:
        work = Path(tmp)
        model_dir, files, predictor = loaded
        if (model_dir / contract.MANIFEST_FILE).is_file():
            return Adopted(
                name, version, False, None, tags.get(contract.TAG_ONNX) == "true",
                tags.get(contract.TAG_ONNX_REASON, ""), len(files.features), {},
                "produced by mlstack's round: it carries its extras already",
            )  # fmt: skip
        try:
            x, labels, data_sha = load_sample(data, files.features, target)
        except DatasetError as exc:
            raise AdoptError(f"data {data}: {exc}") from exc
        try:
            proba = np.asarray(probabilities(predictor, x))
        except ValueError as exc:  # the estimator's own refusal of the rows
            raise AdoptError(f"the model refuses the data: {exc}") from exc
        # Without a manifest the sklearn predictor keeps the estimator's class order, which is
        # the order of the ONNX export's probability columns too.
        model, classes = getattr(predictor, "_model", None), list(predictor.classes)
        metrics: dict[str, float] = {}
        if labels is not None:
            unknown = sorted(set(labels) - set(classes))
            if unknown:
                raise AdoptError(
                    f"column {target!r} holds labels the model does not know: {unknown} "
                    f"(its classes: {classes})"
                )
            try:
                metrics = held_out_metrics(labels.to_numpy(), proba, classes)
            except ValueError as exc:  # e.g. a class with no row: roc_auc_ovr is undefined
                raise AdoptError(f"column {target!r}: metrics cannot be computed ({exc})") from exc
        extras = work / "extras"
        (extras / contract.EXTRA_DIR).mkdir(parents=True)
        if files.flavor == mlmodel.SKLEARN:
            onnx = export(model, x.to_numpy(), classes, extras / contract.EXTRA_DIR, onnx_tolerance)
        else:
            onnx = OnnxResult(None, "the version is ONNX already")
        manifest = contract.Manifest(
            features=files.features,
            classes=tuple(classes),
            sklearn_file=files.model_file,
            sklearn_format=files.serialization_format,
            skops_trusted_types=(),
            onnx=onnx.path is not None,
            metrics={f"{contract.TEST_METRIC_PREFIX}{k}": v for k, v in metrics.items()},
            dataset=data.stem,
            dataset_sha256=data_sha,
        )
        (extras / contract.MANIFEST_FILE).write_text(manifest.to_json())
        (extras / contract.BASELINE_FILE).write_text(
            contract.baseline_to_json(baseline_statistics(x))
        )
        if files.input_example is None:
            example = {"columns": list(files.features), "data": x.head(3).to_numpy().tolist()}
            (extras / contract.INPUT_EXAMPLE_FILE).write_text(json.dumps(example))
        uri = _log_extras(client, experiment, name, version, extras, digest)
    version_tags = {
        **onnx.tags(),
        contract.TAG_DATASET_NAME: data.stem,
        contract.TAG_DATASET_HASH: data_sha,
        contract.TAG_EXTRAS_SHA256: digest,
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, value)
    # Last: the service reloads the version when this tag changes, and finds everything.
    client.set_model_version_tag(name, version, contract.TAG_EXTRAS_URI, uri)
    return Adopted(
        name,
        version,
        True,
        uri,
        onnx.path is not None,
        onnx.reason,
        len(files.features),
        metrics,
        "adopted",
    )


def _digest(data: Path, target: str | None, tolerance: float) -> str:
    """What makes two adoptions the same: the data's bytes and the options."""
    try:
        content = data.read_bytes()
    except OSError as exc:
        raise AdoptError(f"data {data}: cannot be read ({exc})") from exc
    digest = hashlib.sha256(content)
    digest.update(f"\0{target}\0{tolerance!r}\0{contract.MANIFEST_VERSION}".encode())
    return digest.hexdigest()


def _files(client: Any, name: str, version: str) -> mlmodel.ModelFiles:
    try:
        return version_files(client, name, version)
    except OSError as exc:
        raise AdoptError(f"{name} v{version} is not an MLflow model (no MLmodel): {exc}") from exc
    except contract.ManifestError as exc:
        raise AdoptError(f"{name} v{version} cannot be served: {exc}") from exc


@contextlib.contextmanager
def _downloaded(
    client: Any, name: str, version: str
) -> Iterator[tuple[Path, mlmodel.ModelFiles, Any]]:
    """training.registry.downloaded_model, its refusals as AdoptError."""
    from app.errors import ModelLoadError

    stack = contextlib.ExitStack()
    try:  # only the download and the load: errors of the caller's body pass unchanged
        loaded = stack.enter_context(downloaded_model(client, name, version))
    except OSError as exc:
        raise AdoptError(f"{name} v{version} is not an MLflow model (no MLmodel): {exc}") from exc
    except contract.ManifestError as exc:
        raise AdoptError(f"{name} v{version} cannot be served: {exc}") from exc
    except ModelLoadError as exc:
        raise AdoptError(f"the model cannot be served: {exc}") from exc
    with stack:
        yield loaded


def _log_extras(
    client: Any, experiment: str, name: str, version: str, extras: Path, digest: str
) -> str:
    """Log `extras` to a run of their own; the artifact URI of that folder."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(
        experiment_id,
        run_name=f"adopt-{name}-v{version}",
        tags={
            contract.TAG_ROUND_ROLE: ROLE_ADOPT,
            contract.TAG_EXTRAS_SHA256: digest,
        },
    )
    try:
        client.log_artifacts(run.info.run_id, str(extras), contract.EXTRAS_ARTIFACT_DIR)
    except Exception:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    client.set_terminated(run.info.run_id, "FINISHED")
    return f"{run.info.artifact_uri.rstrip('/')}/{contract.EXTRAS_ARTIFACT_DIR}"
