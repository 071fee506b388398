"""What an MLflow model's `MLmodel` file says that serving needs, or why it cannot be served.

Any version logged with plain MLflow calls is servable when it is of the sklearn or onnx
flavour and its signature names its input columns. This module reads only YAML and JSON, so
the inference service imports it without mlflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import yaml

from training import contract

SKLEARN: Final = "sklearn"
ONNX: Final = "onnx"
# MLflow's sklearn serialization formats that run code from the file while loading.
PICKLE_FORMATS: Final = frozenset({"pickle", "cloudpickle"})
# Signature column types mlstack feeds as float32.
_NUMERIC: Final = frozenset({"double", "float", "integer", "long", "boolean"})


class Unservable(contract.ManifestError):
    """A version mlstack refuses to serve; the message names what to change."""


@dataclass(frozen=True)
class ModelFiles:
    """The serving-relevant facts of one MLmodel file."""

    flavor: str  # SKLEARN or ONNX
    model_file: str  # relative to the model's artifact root
    serialization_format: str  # skops, cloudpickle, pickle (sklearn) or onnx
    features: tuple[str, ...]  # the signature's input columns, in order
    input_example: str | None  # relative path of the logged input example, if any
    classes: tuple[str, ...] | None  # `metadata.classes`, when the logger gave it
    # The signature's MLflow column types, in `features` order ("double", "long", ...).
    feature_types: tuple[str, ...] = ()
    # What the pyfunc flavour's predict answers: "predict" (labels) or "predict_proba".
    predict_fn: str = "predict"
    mlflow_version: str | None = None  # the MLflow that logged the model


def read_mlmodel(text: str | bytes) -> ModelFiles:
    """Parse an MLmodel file. Raises Unservable naming what to change."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise Unservable(f"MLmodel is not YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise Unservable("MLmodel has no flavors: it is not an MLflow model")
    flavors: dict[str, Any] = data["flavors"]
    if SKLEARN in flavors:
        conf = flavors[SKLEARN] or {}
        flavor, model_file = SKLEARN, conf.get("pickled_model")
        serialization = str(conf.get("serialization_format") or "cloudpickle")
    elif ONNX in flavors:
        conf = flavors[ONNX] or {}
        flavor, model_file, serialization = ONNX, conf.get("data"), ONNX
    else:
        raise Unservable(
            f"flavour {', '.join(sorted(flavors))} is not served: mlstack serves the sklearn "
            "flavour (mlflow.sklearn.log_model) and the onnx flavour (mlflow.onnx.log_model); "
            "log the classifier with one of them"
        )
    if not isinstance(model_file, str) or not model_file:
        raise Unservable(f"MLmodel's {flavor} flavour names no model file")
    _relative(model_file)
    columns = _columns(data.get("signature"))
    pyfunc = flavors.get("python_function")
    predict_fn = pyfunc.get("predict_fn") if isinstance(pyfunc, dict) else None
    version = data.get("mlflow_version")
    example_info = data.get("saved_input_example_info")
    example = None
    if isinstance(example_info, dict) and example_info.get("type") == "dataframe":
        example = _relative(str(example_info.get("artifact_path") or contract.INPUT_EXAMPLE_FILE))
    metadata = data.get("metadata")
    classes = metadata.get("classes") if isinstance(metadata, dict) else None
    return ModelFiles(
        flavor=flavor,
        model_file=model_file,
        serialization_format=serialization,
        features=tuple(name for name, _ in columns),
        input_example=example,
        classes=tuple(str(c) for c in classes) if isinstance(classes, list) else None,
        feature_types=tuple(kind for _, kind in columns),
        predict_fn=predict_fn if isinstance(predict_fn, str) and predict_fn else "predict",
        mlflow_version=str(version) if version else None,
    )


def _relative(path: str) -> str:
    """`path` if it stays inside the model's folder: the service writes files by it."""
    parts = path.replace("\\", "/").split("/")
    if path.startswith("/") or ".." in parts or ":" in parts[0]:
        raise Unservable(f"MLmodel names the file {path!r} outside the model's folder")
    return path


_SIGNATURE_HINT: Final = (
    "log it with signature=infer_signature(X, model.predict_proba(X)), "
    "X a pandas DataFrame whose columns are the named features"
)


def _columns(signature: Any) -> list[tuple[str, str]]:
    """(name, MLflow type) of every input column, in order."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        raise Unservable(f"the model has no signature: {_SIGNATURE_HINT}")
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError) as exc:
        raise Unservable(f"the signature's inputs are not JSON: {exc}") from exc
    if not isinstance(inputs, list) or not inputs:
        raise Unservable(f"the signature lists no inputs: {_SIGNATURE_HINT}")
    columns: list[tuple[str, str]] = []
    for position, column in enumerate(inputs):
        if not isinstance(column, dict) or column.get("type") == "tensor" or not column.get("name"):
            shown = column.get("tensor-spec", column) if isinstance(column, dict) else column
            raise Unservable(
                f"the signature's input {position} is unnamed ({shown}): mlstack needs named "
                f"feature columns; {_SIGNATURE_HINT}"
            )
        name, kind = str(column["name"]), str(column.get("type"))
        if kind not in _NUMERIC:
            raise Unservable(
                f"signature column {name!r} is of type {kind}: mlstack serves numeric features "
                "only; encode it inside the Pipeline from a numeric column"
            )
        if any(name == known for known, _ in columns):
            raise Unservable(f"signature column {name!r} appears twice")
        columns.append((name, kind))
    return columns
