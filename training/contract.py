"""Every name that crosses the line between training (writer) and serving (reader).

This module imports nothing heavy: the inference service imports it too. No string defined
here is spelled anywhere else in the code base.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Final

DEFAULT_MODEL_NAME: Final = "mlstack-classifier"
DEFAULT_EXPERIMENT: Final = "mlstack"

# Registry aliases: the only pointers mlstack uses (stages are deprecated in MLflow).
ALIAS_CHAMPION: Final = "champion"
ALIAS_CHALLENGER: Final = "challenger"

# Files stored with every registered version, relative to the logged model's artifact root.
# `extra_files/` is where MLflow's sklearn flavour places files passed as `extra_files`.
EXTRA_DIR: Final = "extra_files"
MANIFEST_FILE: Final = f"{EXTRA_DIR}/mlstack.json"
ONNX_FILE: Final = f"{EXTRA_DIR}/model.onnx"
BASELINE_FILE: Final = f"{EXTRA_DIR}/baseline.json"
MLMODEL_FILE: Final = "MLmodel"
# Written by MLflow's log_model beside MLmodel (pandas "split" orient: columns and data).
INPUT_EXAMPLE_FILE: Final = "input_example.json"
# The round's scikit-learn file (skops format), relative to the model's artifact root.
SKOPS_FILE: Final = "model.skops"
SKOPS_FORMAT: Final = "skops"

# Extras that `mlstack adopt` adds to a version it did not produce: a run's artifact folder
# holding MANIFEST_FILE, BASELINE_FILE, INPUT_EXAMPLE_FILE and (when parity held) ONNX_FILE
# under the same relative names. The version's own model files are never touched; the tag on
# the version says where the extras are, and its value changing makes the service reload.
TAG_EXTRAS_URI: Final = "mlstack.extras.uri"
TAG_EXTRAS_SHA256: Final = "mlstack.extras.sha256"
EXTRAS_ARTIFACT_DIR: Final = "mlstack-extras"

# Manifest format version: bump when the manifest's keys change incompatibly.
MANIFEST_VERSION: Final = 1

# ONNX graph names.
ONNX_INPUT: Final = "input"
ONNX_PROBABILITIES: Final = "probabilities"
ONNX_LABEL: Final = "label"

# Tag keys, on runs and on registered versions.
TAG_DATASET_NAME: Final = "mlstack.dataset.name"
TAG_DATASET_HASH: Final = "mlstack.dataset.sha256"
TAG_CODE_VERSION: Final = "mlstack.code_version"
TAG_CANDIDATE: Final = "mlstack.candidate"
TAG_ROUND_ROLE: Final = "mlstack.run_role"
# On a round's run: one tag per family that did not run (its value says why), and the families
# the time budget cut, comma-separated, when it cut any.
TAG_SKIPPED_PREFIX: Final = "mlstack.skipped."
TAG_TRUNCATED: Final = "mlstack.truncated"
# A round spread over an Indexed Job's pods: its id on the round's run (the Job's uid), one
# `mlstack.shard.<index>` tag there per finished shard, and on each candidate run the shard that
# searched it and its best parameters as JSON (what pod 0 refits the winner from).
TAG_ROUND_ID: Final = "mlstack.round_id"
TAG_SHARD_PREFIX: Final = "mlstack.shard."
TAG_SHARD: Final = "mlstack.shard"
TAG_PARAMS: Final = "mlstack.params"
TAG_ONNX: Final = "mlstack.onnx"
TAG_ONNX_MAX_ABS_DIFF: Final = "mlstack.onnx.max_abs_diff"
TAG_ONNX_LABEL_MISMATCHES: Final = "mlstack.onnx.label_mismatches"
TAG_ONNX_REASON: Final = "mlstack.onnx.reason"
TAG_GATE_DECISION: Final = "mlstack.gate.decision"
TAG_GATE_REASON: Final = "mlstack.gate.reason"
TAG_GATE_METRIC: Final = "mlstack.gate.metric"
TAG_GATE_SCORE: Final = "mlstack.gate.score"
TAG_GATE_CHAMPION_SCORE: Final = "mlstack.gate.champion_score"
TAG_GATE_CHAMPION_VERSION: Final = "mlstack.gate.champion_version"
TAG_PREVIOUS_CHAMPION: Final = "mlstack.previous_champion"
# The version an alias pointed to before it moved here, per alias: the prefix followed by the
# alias name (for `champion` this is TAG_PREVIOUS_CHAMPION). Rollback moves the alias back to it.
TAG_PREVIOUS_HOLDER_PREFIX: Final = "mlstack.previous_"

ROLE_ROUND: Final = "round"
ROLE_CANDIDATE: Final = "candidate"


# Held-out metrics: the one table the round, the evaluator, the gate, the control plane's
# settings and the chart's values.schema.json enums (checked by a test) all read.
@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool  # the gate needs the direction
    scorer: str  # scikit-learn's scorer name, for the cross-validated search


METRICS: Final[dict[str, Metric]] = {
    m.name: m
    for m in (
        Metric("accuracy", True, "accuracy"),
        Metric("f1_macro", True, "f1_macro"),
        Metric("precision_macro", True, "precision_macro"),
        Metric("recall_macro", True, "recall_macro"),
        Metric("roc_auc_ovr", True, "roc_auc_ovr"),
        Metric("log_loss", False, "neg_log_loss"),
    )
}


def known_metric(name: str) -> str:
    """`name` if it is a held-out metric; ValueError naming the choices otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return name


TEST_METRIC_PREFIX: Final = "test_"
CV_MEAN_METRIC: Final = "cv_mean"
CV_STD_METRIC: Final = "cv_std"
FIT_SECONDS_METRIC: Final = "fit_seconds"

# Baseline statistics for drift: per feature, quantile bin edges of the training split, the
# proportion of training rows in each bin and the observed range (min, max). The service computes
# the population stability index (PSI) of its recent inputs over the same bins and counts values
# outside the range. Baselines written before ranges were recorded have none.
BASELINE_BINS: Final = 10


class ManifestError(ValueError):
    """A manifest or baseline file does not have the shape this code reads."""


@dataclass(frozen=True)
class Manifest:
    """What a registered version tells the service: stored as `MANIFEST_FILE`."""

    features: tuple[str, ...]
    classes: tuple[str, ...]
    sklearn_file: str
    sklearn_format: str
    skops_trusted_types: tuple[str, ...]
    onnx: bool
    metrics: dict[str, float]
    dataset: str
    dataset_sha256: str
    manifest_version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        version = data.get("manifest_version")
        if version != MANIFEST_VERSION:
            raise ManifestError(
                f"manifest_version {version!r} is not supported (expected {MANIFEST_VERSION})"
            )
        try:
            features = _strings(data, "features")
            classes = _strings(data, "classes")
            manifest = cls(
                features=features,
                classes=classes,
                sklearn_file=str(data["sklearn_file"]),
                sklearn_format=str(data["sklearn_format"]),
                skops_trusted_types=_strings(data, "skops_trusted_types"),
                onnx=bool(data["onnx"]),
                metrics={str(k): float(v) for k, v in dict(data["metrics"]).items()},
                dataset=str(data["dataset"]),
                dataset_sha256=str(data["dataset_sha256"]),
            )
        except KeyError as exc:
            raise ManifestError(f"manifest has no key {exc.args[0]!r}") from exc
        if not features:
            raise ManifestError("manifest lists no features")
        if len(classes) < 2:
            raise ManifestError("manifest lists fewer than 2 classes")
        return manifest


def _strings(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"manifest key {key!r} is not a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class FeatureBaseline:
    """Bin edges (len = bins + 1, outer edges infinite), training proportions per bin, and the
    training range: the smallest and largest value seen (None in baselines that predate it)."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    minimum: float | None = None
    maximum: float | None = None

    @property
    def range(self) -> tuple[float, float] | None:
        if self.minimum is None or self.maximum is None:
            return None
        return self.minimum, self.maximum


def baseline_to_json(baseline: dict[str, FeatureBaseline]) -> str:
    # JSON has no infinity: the outer edges are implicit and only the inner ones are stored.
    features: dict[str, dict[str, Any]] = {}
    for name, b in baseline.items():
        entry: dict[str, Any] = {
            "inner_edges": list(b.edges[1:-1]),
            "proportions": list(b.proportions),
        }
        if b.range is not None:
            entry["min"], entry["max"] = b.range
        features[name] = entry
    return json.dumps({"bins": BASELINE_BINS, "features": features}, indent=2)


def baseline_from_json(text: str | bytes) -> dict[str, FeatureBaseline]:
    """Raises ManifestError naming the feature whose entry is unusable."""
    try:
        data = json.loads(text)
        out: dict[str, FeatureBaseline] = {}
        for name, entry in data["features"].items():
            inner = tuple(float(x) for x in entry["inner_edges"])
            props = tuple(float(x) for x in entry["proportions"])
            if len(props) != len(inner) + 1:
                raise ManifestError(f"baseline of feature {name!r}: bins and edges disagree")
            low, high = _range(str(name), entry)
            out[str(name)] = FeatureBaseline((-math.inf, *inner, math.inf), props, low, high)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"baseline file is malformed: {exc!r}") from exc
    return out


def _range(name: str, entry: dict[str, Any]) -> tuple[float | None, float | None]:
    """A feature's training range; (None, None) when its entry has none (an older baseline)."""
    if "min" not in entry and "max" not in entry:
        return None, None
    if "min" not in entry or "max" not in entry:
        raise ManifestError(f"baseline of feature {name!r}: a range needs both min and max")
    low, high = float(entry["min"]), float(entry["max"])
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ManifestError(f"baseline of feature {name!r}: range [{low}, {high}] is not a range")
    return low, high


@dataclass(frozen=True)
class TrainingResult:
    """What a finished training round (or `mlstack gate`) decided, as structured data.

    Written as JSON to the result file (the Job's termination message in the cluster) and
    read by the control plane; nothing parses printed lines.
    """

    model_name: str
    version: str
    run_id: str
    decision: str  # the alias the gate gave: ALIAS_CHAMPION or ALIAS_CHALLENGER
    reason: str
    onnx: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainingResult:
        try:
            data = json.loads(text)
            return cls(
                model_name=str(data["model_name"]),
                version=str(data["version"]),
                run_id=str(data["run_id"]),
                decision=str(data["decision"]),
                reason=str(data["reason"]),
                onnx=bool(data["onnx"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"training result is malformed: {exc!r}") from exc
