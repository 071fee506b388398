"""Held-out metrics, the confusion matrix, and baseline statistics of the training split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from training import contract


def held_out_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str]
) -> dict[str, float]:
    """Metrics of `probabilities` (columns in `classes` order) against `y_true`.

    The predicted label is the most probable class: the same rule the service applies.
    """
    predicted = np.asarray(classes)[np.argmax(probabilities, axis=1)]
    metrics = {
        "accuracy": accuracy_score(y_true, predicted),
        "f1_macro": f1_score(y_true, predicted, average="macro", zero_division=0),
        "precision_macro": precision_score(y_true, predicted, average="macro", zero_division=0),
        "recall_macro": recall_score(y_true, predicted, average="macro", zero_division=0),
        "log_loss": log_loss(y_true, probabilities, labels=classes),
    }
    if len(classes) == 2:
        metrics["roc_auc_ovr"] = roc_auc_score(y_true == classes[1], probabilities[:, 1])
    else:
        metrics["roc_auc_ovr"] = roc_auc_score(
            y_true, probabilities, multi_class="ovr", labels=classes
        )
    assert set(metrics) == set(contract.METRICS)
    return {name: float(value) for name, value in metrics.items()}


def write_confusion(
    y_true: np.ndarray, probabilities: np.ndarray, classes: list[str], directory: Path
) -> list[Path]:
    """Write the confusion matrix as JSON and PNG into `directory`; return both paths."""
    predicted = np.asarray(classes)[np.argmax(probabilities, axis=1)]
    matrix = confusion_matrix(y_true, predicted, labels=classes)
    json_path = directory / "confusion_matrix.json"
    json_path.write_text(json.dumps({"labels": classes, "matrix": matrix.tolist()}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > matrix.max() / 2 else "black",
        )
    fig.tight_layout()
    png_path = directory / "confusion_matrix.png"
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return [json_path, png_path]


def baseline_statistics(x_train: pd.DataFrame) -> dict[str, contract.FeatureBaseline]:
    """Quantile bins of each training feature, the share of training rows in each bin, and the
    feature's observed range (min, max)."""
    out: dict[str, contract.FeatureBaseline] = {}
    quantiles = np.linspace(0, 1, contract.BASELINE_BINS + 1)[1:-1]
    for column in x_train.columns:
        raw = x_train[column].to_numpy(dtype=np.float64)
        # The service sees float32 inputs: bin on the same values so ties land alike.
        values = raw.astype(np.float32).astype(np.float64)
        inner = np.unique(np.quantile(values, quantiles))
        edges = np.concatenate(([-np.inf], inner, [np.inf]))
        counts = bin_counts(values, edges)
        # The range of the float32 values trained on, each bound written as the shortest
        # decimal that reads back as the same float32 (0.1, not 0.10000000149011612): the
        # service compares in float32, so no training value falls outside it there.
        out[str(column)] = contract.FeatureBaseline(
            tuple(float(e) for e in edges),
            tuple(float(c) for c in counts / counts.sum()),
            _shortest(raw.min()),
            _shortest(raw.max()),
        )
    return out


def _shortest(value: float) -> float:
    return float(str(np.float32(value)))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin, bins closed on the right: (e0, e1], (e1, e2], …"""
    index = np.searchsorted(edges[1:-1], values, side="left")
    return np.bincount(index, minlength=len(edges) - 1).astype(np.float64)
