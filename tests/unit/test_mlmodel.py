"""Reading MLmodel files: what is served, and each refusal naming what to change."""

from __future__ import annotations

import json

import pytest

from app.predictors import DEFAULT_TRUSTED_TYPES, Trust
from training import mlmodel

COLUMNS = json.dumps(
    [{"type": "double", "name": "a", "required": True}, {"type": "long", "name": "b"}]
)


def _mlmodel(flavors: str, signature: str | None = COLUMNS, extra: str = "") -> str:
    text = f"flavors:\n{flavors}"
    if signature is not None:
        text += f"signature:\n  inputs: '{signature}'\n  outputs: null\n"
    return text + extra


SKLEARN = "  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"


def test_sklearn_flavour_gives_features_file_and_example() -> None:
    text = _mlmodel(
        SKLEARN + "  python_function:\n    loader_module: mlflow.sklearn\n",
        extra="saved_input_example_info:\n  artifact_path: input_example.json\n"
        "  type: dataframe\nmetadata:\n  classes: [x, y]\n",
    )
    files = mlmodel.read_mlmodel(text)
    assert files.flavor == mlmodel.SKLEARN
    assert files.model_file == "model.skops"
    assert files.serialization_format == "skops"
    assert files.features == ("a", "b")
    assert files.input_example == "input_example.json"
    assert files.classes == ("x", "y")


def test_onnx_flavour_is_read_when_there_is_no_sklearn_one() -> None:
    files = mlmodel.read_mlmodel(_mlmodel("  onnx:\n    data: model.onnx\n"))
    assert (files.flavor, files.model_file, files.input_example) == ("onnx", "model.onnx", None)


def test_missing_serialization_format_is_mlflow_2s_cloudpickle() -> None:
    files = mlmodel.read_mlmodel(_mlmodel("  sklearn:\n    pickled_model: model.pkl\n"))
    assert files.serialization_format in mlmodel.PICKLE_FORMATS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_mlmodel(SKLEARN, signature=None), "has no signature"),
        (
            _mlmodel(SKLEARN, json.dumps([{"type": "tensor", "tensor-spec": {"shape": [-1, 4]}}])),
            "input 0 is unnamed",
        ),
        (_mlmodel(SKLEARN, json.dumps([{"type": "string", "name": "city"}])), "'city' is of type"),
        (_mlmodel(SKLEARN, json.dumps([{"type": "double", "name": "a"}] * 2)), "appears twice"),
        (_mlmodel("  xgboost:\n    data: m.bin\n  python_function: {}\n"), "xgboost is not served"),
        (_mlmodel("  sklearn:\n    pickled_model: ../../etc/passwd\n"), "outside the model's"),
        (_mlmodel("  onnx:\n    data: /etc/passwd\n"), "outside the model's folder"),
        (_mlmodel("  sklearn: {}\n"), "names no model file"),
        ("just: text\n", "has no flavors"),
        ("flavors: [unclosed\n", "is not YAML"),
    ],
    ids=[
        "no-signature",
        "tensor",
        "text-column",
        "duplicate",
        "xgboost",
        "traversal",
        "absolute",
        "no-file",
        "no-flavors",
        "not-yaml",
    ],
)
def test_unservable_mlmodel_is_refused_naming_the_reason(text: str, message: str) -> None:
    with pytest.raises(mlmodel.Unservable, match=message):
        mlmodel.read_mlmodel(text)


def test_trust_allows_prefixes_and_exact_names_only() -> None:
    trust = Trust((*DEFAULT_TRUSTED_TYPES, "my.Exact"), allow_pickle=False)
    types = ["sklearn.tree._tree.Tree", "numpy.dtype", "my.Exact", "my.ExactNot", "sklearnx.X"]
    assert trust.untrusted(types) == ["my.ExactNot", "sklearnx.X"]
