"""Predictors: ONNX Runtime when the version has an export, scikit-learn otherwise.

Both take a float32 array of shape (rows, features) in the manifest's feature order and
return class probabilities in the manifest's class order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.errors import ModelLoadError
from training import contract


class Predictor(Protocol):
    kind: str

    def predict_proba(self, rows: np.ndarray) -> np.ndarray: ...


class OnnxPredictor:
    kind = "onnx"

    def __init__(self, path: Path, n_classes: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
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
        outputs = [o.name for o in self._session.get_outputs()]
        if contract.ONNX_PROBABILITIES not in outputs:
            raise ModelLoadError(f"ONNX model has no output {contract.ONNX_PROBABILITIES!r}")
        self._outputs = [contract.ONNX_PROBABILITIES]
        self._n_classes = n_classes

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        result: np.ndarray = self._session.run(self._outputs, {contract.ONNX_INPUT: rows})[0]
        return result


class SklearnPredictor:
    kind = "sklearn"

    def __init__(self, path: Path, manifest: contract.Manifest) -> None:
        if manifest.sklearn_format != "skops":
            raise ModelLoadError(f"unsupported model format {manifest.sklearn_format!r}")
        import skops.io

        try:
            untrusted = set(skops.io.get_untrusted_types(file=path))
            extra = untrusted - set(manifest.skops_trusted_types)
            if extra:
                raise ModelLoadError(f"model file has types not trusted by its manifest: {extra}")
            self._model: Any = skops.io.load(path, trusted=sorted(untrusted))
        except ModelLoadError:
            raise
        except Exception as exc:  # skops raises many types for a corrupt file
            raise ModelLoadError(f"model file {path.name} does not load: {exc}") from exc
        model_classes = [str(c) for c in getattr(self._model, "classes_", [])]
        if sorted(model_classes) != sorted(manifest.classes):
            raise ModelLoadError(
                f"model classes {model_classes} differ from the manifest's {list(manifest.classes)}"
            )
        self._order = [model_classes.index(c) for c in manifest.classes]

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        proba = np.asarray(self._model.predict_proba(rows), dtype=np.float32)
        return proba[:, self._order]


def load_predictor(directory: Path, manifest: contract.Manifest) -> Predictor:
    if manifest.onnx:
        return OnnxPredictor(directory / contract.ONNX_FILE, len(manifest.classes))
    return SklearnPredictor(directory / manifest.sklearn_file, manifest)
