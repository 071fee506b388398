"""ONNX files are checked before onnxruntime loads them: size (external data included),
external data inside the model's folder, opsets, standard operator domains only. Real ONNX
files, built with onnx.helper or converted by skl2onnx, loaded by the real predictor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from app.errors import ModelRefused
from app.predictors import DEFAULT_TRUSTED_TYPES, OnnxPredictor, Trust, runtime_opsets

TRUST = Trust(DEFAULT_TRUSTED_TYPES, allow_pickle=False)
X, Y = load_iris(return_X_y=True)
X32 = X.astype(np.float32)


def _classifier() -> onnx.ModelProto:
    """A real classifier graph (skl2onnx, as the round exports it)."""
    from skl2onnx import to_onnx

    model = LogisticRegression(max_iter=500).fit(X, Y)
    return to_onnx(model, X32[:1], options={id(model): {"zipmap": False}})


CLASSIFIER = _classifier()


def _graph(node: onnx.NodeProto) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    return helper.make_graph([node], "g", [x], [y])


def _model(node: onnx.NodeProto, **opsets: int) -> onnx.ModelProto:
    """A one-node model importing `opsets` (domain → version; `default` is ai.onnx)."""
    imports = [helper.make_opsetid("" if d == "default" else d, v) for d, v in opsets.items()]
    return helper.make_model(_graph(node), opset_imports=imports, ir_version=10)


def _custom_import() -> onnx.ModelProto:
    # The domain imported, though no node uses it.
    return _model(helper.make_node("Identity", ["x"], ["y"]), default=21, **{"my.ops": 1})


def _custom_op() -> onnx.ModelProto:
    node = helper.make_node("Exfiltrate", ["x"], ["y"], domain="my.ops")
    return _model(node, default=21, **{"my.ops": 1})


def _custom_node() -> onnx.ModelProto:
    # A node of a domain the model does not even import.
    return _model(helper.make_node("Exfiltrate", ["x"], ["y"], domain="my.ops"), default=21)


def _contrib_node() -> onnx.ModelProto:
    node = helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")
    return _model(node, default=21)


def _custom_in_subgraph() -> onnx.ModelProto:
    inner = helper.make_graph(
        [helper.make_node("Exfiltrate", ["x"], ["z"], domain="my.ops")],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 4])],
    )
    plain = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["w"])],
        "else",
        [],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [None, 4])],
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=plain)
    model = _model(node, default=21)
    model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    return model


def _opset(default: int, ml: int | None = None) -> Callable[[], onnx.ModelProto]:
    def build() -> onnx.ModelProto:
        opsets = {"default": default, **({"ai.onnx.ml": ml} if ml is not None else {})}
        return _model(helper.make_node("Identity", ["x"], ["y"]), **opsets)

    return build


NEWEST = runtime_opsets()

REFUSED: list[tuple[Callable[[], onnx.ModelProto], Trust, str]] = [
    (_custom_import, TRUST, "imports operator domain 'my.ops': only the standard operator"),
    (_custom_op, TRUST, "uses operator 'Exfiltrate' of domain 'my.ops': only the standard"),
    (_custom_node, TRUST, "uses operator 'Exfiltrate' of domain 'my.ops': only the standard"),
    (_contrib_node, TRUST, "uses operator 'FusedMatMul' of domain 'com.microsoft'"),
    (_custom_in_subgraph, TRUST, "uses operator 'Exfiltrate' of domain 'my.ops'"),
    (
        _opset(NEWEST[""] + 1),
        TRUST,
        f"imports opset {NEWEST[''] + 1} of domain 'ai.onnx', newer than {NEWEST['']}, the "
        "newest this server loads",
    ),
    (
        _opset(21, ml=NEWEST["ai.onnx.ml"] + 1),
        TRUST,
        f"imports opset {NEWEST['ai.onnx.ml'] + 1} of domain 'ai.onnx.ml', newer than "
        f"{NEWEST['ai.onnx.ml']}",
    ),
    (
        _opset(21),
        Trust(DEFAULT_TRUSTED_TYPES, False, onnx_max_opset=20),
        "imports opset 21 of domain 'ai.onnx', newer than 20, the newest this server loads "
        f"(onnxruntime's newest is {NEWEST['']}; MLSTACK_ONNX_MAX_OPSET lowers it)",
    ),
    (
        lambda: CLASSIFIER,
        Trust(DEFAULT_TRUSTED_TYPES, False, onnx_max_bytes=100),
        "is {size} bytes, over MLSTACK_ONNX_MAX_BYTES (100)",
    ),
]


@pytest.mark.parametrize(
    ("build", "trust", "message"),
    REFUSED,
    ids=[
        "custom-domain-import",
        "custom-op",
        "custom-domain-node",
        "contrib-op",
        "custom-op-in-subgraph",
        "opset-too-new",
        "ml-opset-too-new",
        "opset-over-setting",
        "file-over-bound",
    ],
)
def test_unfit_onnx_model_is_refused_naming_what_is_at_fault(
    tmp_path: Path, build: Callable[[], onnx.ModelProto], trust: Trust, message: str
) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(build(), str(path))
    with pytest.raises(ModelRefused) as refused:
        OnnxPredictor(path, 4, None, trust)
    assert message.format(size=path.stat().st_size) in str(refused.value)


def test_standard_opsets_at_the_runtimes_newest_pass_the_check(tmp_path: Path) -> None:
    # Past the checks, onnxruntime itself loads it: the bound is not below what it supports.
    path = tmp_path / "model.onnx"
    onnx.save(_opset(NEWEST[""], ml=NEWEST["ai.onnx.ml"])(), str(path))
    with pytest.raises(ModelRefused, match=r"no single float matrix|no single label output"):
        OnnxPredictor(path, 4, None, TRUST)


def _weighted() -> tuple[onnx.ModelProto, LogisticRegression]:
    """A classifier whose weights are initializers (skl2onnx keeps a linear model's in node
    attributes, which cannot be external): softmax(x·W + b), the label its argmax."""
    reference = LogisticRegression(max_iter=500).fit(X, Y)
    weights = numpy_helper.from_array(reference.coef_.T.astype(np.float32), "W")
    bias = numpy_helper.from_array(reference.intercept_.astype(np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["scores"]),
        helper.make_node("Add", ["scores", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "weighted",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]),
        ],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    return model, reference


def _with_external_data(folder: Path) -> Path:
    """The weighted classifier saved with its initializers in `folder/weights.bin`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(
        _weighted()[0],
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    return path


def _relocate(path: Path, location: str) -> None:
    """Point the external tensors of the model at `path` to `location`."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(path))


def test_external_data_inside_the_folder_loads_and_counts_towards_the_bound(
    tmp_path: Path,
) -> None:
    path = _with_external_data(tmp_path / "version")
    weights = (path.parent / "weights.bin").stat().st_size
    total = path.stat().st_size + weights
    classes = ("0", "1", "2")
    predictor = OnnxPredictor(path, 4, classes, Trust(DEFAULT_TRUSTED_TYPES, False, total))
    reference = _weighted()[1].predict_proba(X32[:5])
    np.testing.assert_allclose(predictor.predict_proba(X32[:5]), reference, atol=1e-5)

    # One byte less and the same files are refused: the model file alone would fit.
    assert path.stat().st_size < total - 1
    with pytest.raises(ModelRefused, match=rf"with its 1 external-data file\(s\) is {total} "):
        OnnxPredictor(path, 4, classes, Trust(DEFAULT_TRUSTED_TYPES, False, total - 1))


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink", "missing"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path: Path, where: str) -> None:
    path = _with_external_data(tmp_path / "version")
    weights = path.parent / "weights.bin"
    outside = tmp_path / "weights.bin"
    weights.rename(outside)
    if where == "parent":
        _relocate(path, "../weights.bin")
    elif where == "absolute":
        _relocate(path, str(outside))
    elif where == "symlink":
        weights.symlink_to(outside)  # the location stays weights.bin, inside in name only
    message = (
        "which the version does not hold" if where == "missing" else "outside the model's folder"
    )
    with pytest.raises(ModelRefused, match=message):
        OnnxPredictor(path, 4, None, TRUST)
