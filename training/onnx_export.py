"""ONNX export of the winning estimator, kept only when it agrees with scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training import contract


@dataclass(frozen=True)
class OnnxResult:
    path: Path | None  # None: no export (see reason)
    reason: str
    max_abs_diff: float | None = None
    label_mismatches: int | None = None

    def tags(self) -> dict[str, str]:
        """The version tags saying whether an export is served and the parity figures."""
        tags = {
            contract.TAG_ONNX: str(self.path is not None).lower(),
            contract.TAG_ONNX_REASON: self.reason,
        }
        if self.max_abs_diff is not None:
            tags[contract.TAG_ONNX_MAX_ABS_DIFF] = f"{self.max_abs_diff:.3g}"
            tags[contract.TAG_ONNX_LABEL_MISMATCHES] = str(self.label_mismatches)
        return tags


def export(
    model: Any, x_test: np.ndarray, classes: list[str], directory: Path, tolerance: float
) -> OnnxResult:
    """Convert `model`, then check parity on `x_test` (float32, as the service feeds it).

    Parity: labels identical to scikit-learn's `predict`, probabilities within `tolerance`.
    Never raises for a conversion or parity failure: that only means no ONNX export.
    """
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:  # pragma: no cover - skl2onnx is a training dependency
        return OnnxResult(None, f"skl2onnx unavailable: {exc}")
    try:
        onx = to_onnx(
            model,
            initial_types=[(contract.ONNX_INPUT, FloatTensorType([None, x_test.shape[1]]))],
            options={id(model): {"zipmap": False}},
            final_types=None,
            target_opset=None,
        )
    except Exception as exc:  # skl2onnx raises many types for unsupported models
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        return OnnxResult(None, f"conversion failed: {type(exc).__name__}: {first_line}")
    _rename_outputs(onx)
    path = directory / Path(contract.ONNX_FILE).name
    path.write_bytes(onx.SerializeToString())

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    x32 = np.ascontiguousarray(x_test, dtype=np.float32)
    onnx_label, onnx_proba = session.run(
        [contract.ONNX_LABEL, contract.ONNX_PROBABILITIES], {contract.ONNX_INPUT: x32}
    )
    sk_proba = model.predict_proba(x32)
    sk_label = model.predict(x32)
    diff = float(np.max(np.abs(onnx_proba.astype(np.float64) - sk_proba)))
    mismatches = int(np.sum(np.asarray(onnx_label).astype(str) != np.asarray(sk_label, str)))
    if mismatches or diff > tolerance or onnx_proba.shape[1] != len(classes):
        path.unlink()
        return OnnxResult(
            None,
            f"parity failed: {mismatches} label mismatches, max probability difference "
            f"{diff:.3g} (tolerance {tolerance:g})",
            diff,
            mismatches,
        )
    return OnnxResult(path, "parity held", diff, mismatches)


def _rename_outputs(onx: Any) -> None:
    """Give the two outputs the contract's names, whatever skl2onnx called them."""
    label_old, proba_old = onx.graph.output[0].name, onx.graph.output[1].name
    renames = {label_old: contract.ONNX_LABEL, proba_old: contract.ONNX_PROBABILITIES}
    for node in onx.graph.node:
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    for output in onx.graph.output:
        output.name = renames.get(output.name, output.name)
