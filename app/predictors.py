"""Predictors: ONNX Runtime or scikit-learn behind one interface.

Each takes a float32 array of shape (rows, features) in the signature's feature order and
returns class probabilities, one column per entry of its `classes`, in that order.

What a model file may execute is the server's decision, never the file's: skops files load
with the server's allow-list of types only, pickle loads only when the server allows it, and
ONNX files are checked before onnxruntime sees them (size, opsets, standard operators only).
"""

from __future__ import annotations

import functools
import pickle
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from app.errors import ModelLoadError, ModelRefused
from training import contract
from training.mlmodel import ONNX, PICKLE_FORMATS, ModelFiles

if TYPE_CHECKING:
    import onnx

# The service's default allow-list of skops types: scikit-learn, numpy and scipy.
DEFAULT_TRUSTED_TYPES: tuple[str, ...] = ("sklearn.", "numpy.", "scipy.")
# The largest ONNX model loaded, external data included (a classifier is kilobytes to a few
# hundred megabytes for a large forest).
DEFAULT_ONNX_MAX_BYTES = 512 * 1024 * 1024
# The operator domains an ONNX model may use: the standard operators and the traditional-ML
# ones, all skl2onnx's classifiers need. onnxruntime's own contrib operators (com.microsoft)
# are compiled in rather than loaded from a library, but they are a large surface, less
# reviewed than the standard operators, that no classifier mlstack serves needs: refused too.
_ONNX_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


class Predictor(Protocol):
    kind: str
    classes: tuple[str, ...]  # as text: the labels of /predict, V2 and the metrics
    # The same classes as the model holds them (int, str, ...), JSON-ready: what MLflow's
    # `predict` answers.
    class_values: tuple[Any, ...]

    def predict_proba(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Trust:
    """The service's loading policy (settings MLSTACK_SKOPS_TRUSTED_TYPES, MLSTACK_ALLOW_PICKLE,
    MLSTACK_ONNX_MAX_BYTES, MLSTACK_ONNX_MAX_OPSET, MLSTACK_ONNX_ML_MAX_OPSET).

    An entry ending in "." trusts every type under that module prefix; any other entry one
    type by its full name. An ONNX opset bound of None is the installed onnxruntime's newest.
    """

    skops_types: tuple[str, ...]
    allow_pickle: bool
    onnx_max_bytes: int = DEFAULT_ONNX_MAX_BYTES
    onnx_max_opset: int | None = None
    onnx_ml_max_opset: int | None = None

    def untrusted(self, types: list[str]) -> list[str]:
        return sorted(
            t
            for t in types
            if not any(t == e or (e.endswith(".") and t.startswith(e)) for e in self.skops_types)
        )


class OnnxPredictor:
    kind = "onnx"

    def __init__(
        self, path: Path, n_features: int, classes: tuple[str, ...] | None, trust: Trust
    ) -> None:
        """Raises ModelRefused when the file fails the server's checks (check_onnx) or is not
        a classifier mlstack serves, ModelLoadError when onnxruntime cannot load it."""
        import onnxruntime as ort

        graph = check_onnx(path, trust).graph
        # Fresh options on which no custom-operator library is ever registered
        # (register_custom_ops_library): the checked graph uses standard operators only.
        options = ort.SessionOptions()
        options.add_session_config_entry("session.allow_released_opsets_only", "1")
        # One pod, one worker, one thread: replicas scale out, threads would only contend.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"ONNX model {path.name} does not load: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelRefused(
                f"the ONNX model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}): "
                f"mlstack feeds one tensor [rows, {n_features}]; convert the model with a single "
                "FloatTensorType input"
            )
        tensor = inputs[0]
        if tensor.type not in ("tensor(float)", "tensor(double)"):
            raise ModelRefused(
                f"the ONNX input {tensor.name!r} is {tensor.type}: mlstack feeds tensor(float)"
            )
        width = tensor.shape[-1] if len(tensor.shape) == 2 else None
        if isinstance(width, int) and width != n_features:
            raise ModelRefused(
                f"the ONNX input {tensor.name!r} takes {width} columns, the signature names "
                f"{n_features}"
            )
        self._input = tensor.name
        self._dtype = np.float64 if tensor.type == "tensor(double)" else np.float32
        self._outputs = [self._probabilities_output()]
        if classes is None:
            values = _onnx_classes(graph, path.parent, self._label_output())
            self.classes = tuple(str(c) for c in values)
        else:
            # Given as text (manifest, metadata): the graph still says whether they are ints.
            self.classes = classes
            try:
                by_text = {
                    str(v): v for v in _onnx_classes(graph, path.parent, self._label_output())
                }
            except ModelRefused:
                by_text = {}
            values = tuple(by_text.get(c, c) for c in classes)
        self.class_values = values

    def _probabilities_output(self) -> str:
        outputs = self._session.get_outputs()
        names = [o.name for o in outputs]
        if contract.ONNX_PROBABILITIES in names:
            return contract.ONNX_PROBABILITIES
        if any(o.type.startswith("seq(") for o in outputs):
            raise ModelRefused(
                "the ONNX model returns probabilities as a sequence of maps (ZipMap): convert it "
                "with options={id(model): {'zipmap': False}}"
            )
        matrices = [o.name for o in outputs if o.type == "tensor(float)" and len(o.shape) == 2]
        if len(matrices) != 1:
            raise ModelRefused(
                f"the ONNX model's outputs {names} hold no single float matrix of class "
                "probabilities: mlstack serves a label and class probabilities"
            )
        return matrices[0]

    def _label_output(self) -> str:
        labels = [
            o.name
            for o in self._session.get_outputs()
            if len(o.shape) == 1 and o.type in ("tensor(int64)", "tensor(string)")
        ]
        if len(labels) != 1:
            raise ModelRefused(
                "the ONNX model has no single label output: mlstack serves a label and class "
                "probabilities"
            )
        return labels[0]

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        if self._dtype is np.float64:
            rows = rows.astype(np.float64)
        result = self._session.run(self._outputs, {self._input: rows})[0]
        return np.asarray(result, dtype=np.float32)


def _onnx_classes(graph: onnx.GraphProto, folder: Path, label: str) -> tuple[Any, ...]:
    """The class labels an ONNX classifier's label output takes, read from its graph (int
    labels stay ints; a constant kept as external data is read from `folder`)."""
    from onnx import numpy_helper

    producers = {out: node for node in graph.node for out in node.output}
    constants = {i.name: i for i in graph.initializer}
    name = label
    for _ in range(len(graph.node)):
        node = producers.get(name)
        if node is None:
            break
        for attribute in node.attribute:
            if attribute.name in ("classlabels_strings",):
                return tuple(s.decode() for s in attribute.strings)
            if attribute.name in ("classlabels_ints", "classlabels_int64s"):
                return tuple(int(i) for i in attribute.ints)
        if node.op_type == "ArrayFeatureExtractor" and node.input[0] in constants:
            values = numpy_helper.to_array(constants[node.input[0]], str(folder)).ravel()
            return tuple(v.decode() if isinstance(v, bytes) else v for v in values.tolist())
        if node.op_type not in ("Cast", "Identity", "Reshape", "Squeeze", "Flatten"):
            break
        name = node.input[0]
    raise ModelRefused(
        f"the ONNX model's label output {label!r} does not say its classes: log the model with "
        "metadata={'classes': [...]} in the order of its probability columns"
    )


def check_onnx(path: Path, trust: Trust) -> onnx.ModelProto:
    """The model at `path`, read without its external data, once it passes the server's checks:
    the file and the external-data files it names within `trust.onnx_max_bytes` and inside its
    folder, every opset no newer than the server loads, and standard operator domains only.

    Raises ModelRefused naming the size, file, opset, domain or operator at fault, and
    ModelLoadError when the file cannot be read or parsed."""
    import onnx

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"ONNX model {path.name} cannot be read: {exc}") from exc
    limit = trust.onnx_max_bytes
    if size > limit:  # refused before it is parsed
        raise ModelRefused(_too_large(path, size, limit))
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own untyped errors
        raise ModelLoadError(f"ONNX model {path.name} does not parse: {exc}") from exc
    nodes, tensors = _walk(model)
    external = _external_files(path, tensors)
    total = size + sum(f.stat().st_size for f in external)
    if total > limit:
        raise ModelRefused(_too_large(path, total, limit, len(external)))
    for node in nodes:
        if node.domain not in _ONNX_DOMAINS:
            raise ModelRefused(
                f"ONNX model {path.name} uses operator {node.op_type!r} of domain "
                f"{node.domain!r}: {_DOMAINS_ONLY}"
            )
    imports = [*model.opset_import, *(i for f in model.functions for i in f.opset_import)]
    _check_opsets(path, imports, trust)
    return model


_DOMAINS_ONLY = (
    "only the standard operator domains ('' or 'ai.onnx', and 'ai.onnx.ml') load; custom "
    "operators need code the server never loads"
)


def _too_large(path: Path, size: int, limit: int, external: int = 0) -> str:
    held = f" with its {external} external-data file(s)" if external else ""
    return (
        f"ONNX model {path.name}{held} is {size} bytes, over MLSTACK_ONNX_MAX_BYTES ({limit}); "
        "raise it if you trust a model this large"
    )


def _walk(model: onnx.ModelProto) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Every node and every tensor of the model: its graph, the subgraphs of control-flow
    nodes (If, Loop, Scan) and its local functions."""
    nodes: list[onnx.NodeProto] = []
    tensors: list[onnx.TensorProto] = []

    def graph(g: onnx.GraphProto) -> None:
        tensors.extend(g.initializer)
        for sparse in g.sparse_initializer:
            tensors.extend((sparse.values, sparse.indices))
        visit(g.node)

    def visit(node_list: Iterable[onnx.NodeProto]) -> None:
        for node in node_list:
            nodes.append(node)
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    tensors.append(attribute.t)
                tensors.extend(attribute.tensors)
                sparse = [attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []
                for s in (*sparse, *attribute.sparse_tensors):
                    tensors.extend((s.values, s.indices))
                if attribute.HasField("g"):
                    graph(attribute.g)
                for sub in attribute.graphs:
                    graph(sub)

    graph(model.graph)
    for function in model.functions:
        visit(function.node)
    return nodes, tensors


def _external_files(path: Path, tensors: list[onnx.TensorProto]) -> set[Path]:
    """The files the tensors keep their data in, each inside the model's folder."""
    import onnx

    folder = path.parent.resolve()
    files: set[Path] = set()
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        # Resolved, so neither "..", an absolute path nor a symbolic link leads out.
        target = (folder / location).resolve()
        if not location or target == folder or not target.is_relative_to(folder):
            raise ModelRefused(
                f"ONNX model {path.name}: tensor {tensor.name!r} keeps its data in "
                f"{location!r}, outside the model's folder: external data must sit beside "
                "the model file"
            )
        if not target.is_file():
            raise ModelRefused(
                f"ONNX model {path.name}: tensor {tensor.name!r} keeps its data in "
                f"{location!r}, which the version does not hold"
            )
        files.add(target)
    return files


def _check_opsets(path: Path, imports: Iterable[onnx.OperatorSetIdProto], trust: Trust) -> None:
    newest = runtime_opsets()
    bounds = {
        "": _lower(trust.onnx_max_opset, newest[""]),
        "ai.onnx.ml": _lower(trust.onnx_ml_max_opset, newest["ai.onnx.ml"]),
    }
    settings = {"": "MLSTACK_ONNX_MAX_OPSET", "ai.onnx.ml": "MLSTACK_ONNX_ML_MAX_OPSET"}
    for opset in imports:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        if domain not in bounds:
            raise ModelRefused(
                f"ONNX model {path.name} imports operator domain {opset.domain!r}: {_DOMAINS_ONLY}"
            )
        if opset.version > bounds[domain]:
            raise ModelRefused(
                f"ONNX model {path.name} imports opset {opset.version} of domain "
                f"{opset.domain or 'ai.onnx'!r}, newer than {bounds[domain]}, the newest this "
                f"server loads (onnxruntime's newest is {newest[domain]}; {settings[domain]} "
                "lowers it): convert the model with a lower target_opset"
            )


def _lower(setting: int | None, runtime: int) -> int:
    return runtime if setting is None else min(setting, runtime)


@functools.cache
def runtime_opsets() -> dict[str, int]:
    """The newest opset of `ai.onnx` (key "") and `ai.onnx.ml` the installed onnxruntime has
    operators for."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    newest: dict[str, int] = {"": 0, "ai.onnx.ml": 0}
    for schema in ort_state.get_all_operator_schema():
        if schema.domain in newest:
            newest[schema.domain] = max(newest[schema.domain], schema.since_version)
    return newest


class SklearnPredictor:
    kind = "sklearn"

    def __init__(
        self,
        path: Path,
        serialization: str,
        features: tuple[str, ...],
        trust: Trust,
        classes: tuple[str, ...] | None = None,
    ) -> None:
        self._model = _load_sklearn(path, serialization, trust)
        model = self._model
        if not callable(getattr(model, "predict_proba", None)):
            raise ModelRefused(
                f"{type(model).__name__} has no predict_proba: mlstack serves classifiers that "
                "give class probabilities (a regressor, or e.g. SVC without probability=True, "
                "cannot be served)"
            )
        raw = getattr(model, "classes_", [])
        values = raw.tolist() if isinstance(raw, np.ndarray) else list(raw)
        model_classes = [str(c) for c in values]
        if len(model_classes) < 2:
            raise ModelRefused(f"{type(model).__name__} has no classes_ with 2 or more classes")
        self.classes = classes if classes is not None else tuple(model_classes)
        if sorted(model_classes) != sorted(self.classes):
            raise ModelRefused(
                f"model classes {model_classes} differ from the manifest's {list(self.classes)}"
            )
        fitted_names = getattr(model, "feature_names_in_", None)
        if fitted_names is not None and [str(n) for n in fitted_names] != list(features):
            raise ModelRefused(
                f"the estimator was fitted on columns {[str(n) for n in fitted_names]}, the "
                f"signature names {list(features)}: log it with a signature inferred from the "
                "training DataFrame"
            )
        # Fitted on a DataFrame, scikit-learn warns on every array it is given: the columns
        # were checked against the signature above, once.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        order = [model_classes.index(c) for c in self.classes]
        self.class_values = tuple(values[i] for i in order)
        self._order = None if order == list(range(len(order))) else order

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        proba = np.asarray(self._model.predict_proba(rows), dtype=np.float32, order="C")
        if self._order is None:
            return proba
        # Column indexing gives a Fortran-ordered array; the JSON encoder needs C order.
        return np.ascontiguousarray(proba[:, self._order])


def load_predictor(
    directory: Path,
    files: ModelFiles,
    trust: Trust,
    manifest: contract.Manifest | None = None,
) -> Predictor:
    """The predictor of a downloaded MLflow model, as its MLmodel (`files`) describes it: the
    ONNX export when mlstack's manifest says there is one, else the model's own flavour.
    Without a manifest, classes come from the model itself."""
    classes = manifest.classes if manifest is not None else None
    if manifest is not None and manifest.onnx:
        return OnnxPredictor(directory / contract.ONNX_FILE, len(files.features), classes, trust)
    if files.flavor == ONNX:
        path = directory / files.model_file
        return OnnxPredictor(path, len(files.features), classes or files.classes, trust)
    return SklearnPredictor(
        directory / files.model_file, files.serialization_format, files.features, trust, classes
    )


def _load_sklearn(path: Path, serialization: str, trust: Trust) -> Any:
    if serialization in PICKLE_FORMATS:
        if not trust.allow_pickle:
            raise ModelRefused(
                f"{path.name} is serialized with {serialization}, and loading pickle runs any "
                "code the file holds: re-log the model with serialization_format='skops', or "
                "set MLSTACK_ALLOW_PICKLE=true if you trust whoever can write to the registry"
            )
        try:
            with path.open("rb") as handle:
                # Only with MLSTACK_ALLOW_PICKLE=true, refused above by default.
                return pickle.load(handle)  # nosec B301
        except Exception as exc:  # unpickling raises anything the file makes it raise
            raise ModelLoadError(f"model file {path.name} does not unpickle: {exc!r}") from exc
    if serialization != contract.SKOPS_FORMAT:
        raise ModelRefused(
            f"sklearn serialization format {serialization!r} is not supported: use skops"
        )
    import skops.io

    try:
        untrusted = trust.untrusted(skops.io.get_untrusted_types(file=path))
    except Exception as exc:  # skops raises many types for a corrupt file
        raise ModelLoadError(f"model file {path.name} does not load: {exc}") from exc
    if untrusted:
        raise ModelRefused(
            f"{path.name} needs types outside the server's allow-list: {', '.join(untrusted)}; "
            "add them to MLSTACK_SKOPS_TRUSTED_TYPES if you trust them (a version's own files "
            "never widen it)"
        )
    try:
        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    except Exception as exc:
        raise ModelLoadError(f"model file {path.name} does not load: {exc}") from exc
