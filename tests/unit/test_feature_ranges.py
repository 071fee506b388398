"""Training ranges: recorded in the baseline, counted per feature at the service, and the
refusal naming the feature, the value and the range."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter

from app.drift import FeatureRanges
from app.errors import OutOfRange
from training import contract
from training.evaluate import baseline_statistics

FEATURES = ("sepal_width", "petal_width")
TRAIN = pd.DataFrame({"sepal_width": [2.0, 3.0, 4.4, 3.1], "petal_width": [0.1, 0.7, 2.5, 1.3]})


def _counters() -> tuple[Counter, list[object]]:
    counter = Counter("out_of_range", "test", ["feature"], registry=CollectorRegistry())
    return counter, [counter.labels(f) for f in FEATURES]


def _value(counter: Counter, feature: str) -> float:
    return float(counter.labels(feature)._value.get())


def _ranges(baseline: dict[str, contract.FeatureBaseline] | None = None) -> FeatureRanges:
    _, children = _counters()
    return FeatureRanges(FEATURES, baseline or baseline_statistics(TRAIN), children)


def test_baseline_records_each_features_min_and_max_as_the_data_says_them() -> None:
    baseline = baseline_statistics(TRAIN)
    assert baseline["sepal_width"].range == (2.0, 4.4)
    assert baseline["petal_width"].range == (0.1, 2.5)  # not float32's 0.10000000149
    assert contract.baseline_from_json(contract.baseline_to_json(baseline)) == baseline
    stored = json.loads(contract.baseline_to_json(baseline))["features"]["petal_width"]
    assert (stored["min"], stored["max"]) == (0.1, 2.5)


def test_baseline_without_ranges_still_loads_with_ranges_unknown() -> None:
    old = {"bins": 10, "features": {"a": {"inner_edges": [1.0], "proportions": [0.5, 0.5]}}}
    (entry,) = contract.baseline_from_json(json.dumps(old)).values()
    assert entry.range is None
    assert entry.edges == (-math.inf, 1.0, math.inf)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"min": 1.0}, "feature 'a': a range needs both min and max"),
        ({"min": 2.0, "max": 1.0}, r"feature 'a': range \[2.0, 1.0\] is not a range"),
        ({"min": float("nan"), "max": 1.0}, r"range \[nan, 1.0\] is not a range"),
        ({"min": "low", "max": 1.0}, "baseline file is malformed"),
    ],
    ids=["min-only", "reversed", "nan", "text"],
)
def test_malformed_range_names_the_feature(extra: dict[str, object], message: str) -> None:
    entry = {"inner_edges": [1.0], "proportions": [0.5, 0.5], **extra}
    with pytest.raises(contract.ManifestError, match=message):
        contract.baseline_from_json(json.dumps({"bins": 10, "features": {"a": entry}}))


def test_every_training_value_is_inside_its_range_in_float32() -> None:
    # Float32 rounding moves 0.7 below itself: bounds compared in float32 keep it inside.
    rng = np.random.default_rng(3)
    train = pd.DataFrame(rng.uniform(0.1, 0.9, size=(500, 2)).round(3), columns=list(FEATURES))
    ranges = _ranges(baseline_statistics(train))
    assert ranges.count(train.to_numpy(dtype=np.float32)) is None
    assert ranges.counts.tolist() == [0, 0]


def test_values_outside_are_counted_per_feature_in_the_metric_and_the_counts() -> None:
    counter, children = _counters()
    ranges = FeatureRanges(FEATURES, baseline_statistics(TRAIN), children)
    rows = np.array([[3.0, 1.0], [1.9, 2.6], [4.5, 9.5], [2.0, 2.5]], dtype=np.float32)
    outside = ranges.count(rows)
    assert outside is not None
    assert outside.tolist() == [[False, False], [True, True], [True, True], [False, False]]
    assert ranges.counts.tolist() == [2, 2]
    assert ranges.count(rows[:1]) is None  # inside: nothing counted
    ranges.count(rows[2:3])
    assert ranges.counts.tolist() == [3, 3]
    assert (_value(counter, "sepal_width"), _value(counter, "petal_width")) == (3.0, 3.0)


def test_refusal_names_the_feature_the_value_and_the_range() -> None:
    ranges = _ranges()
    one = np.array([[3.0, 9.5]], dtype=np.float32)
    error = ranges.refusal(one, ranges.count(one))  # type: ignore[arg-type]
    assert isinstance(error, OutOfRange) and error.status == 422
    assert str(error) == "feature 'petal_width' value 9.5 is outside the training range [0.1, 2.5]"
    batch = np.array([[3.0, 1.0], [3.0, 9.7], [9.0, 0.0]], dtype=np.float32)
    error = ranges.refusal(batch, ranges.count(batch))  # type: ignore[arg-type]
    assert str(error) == (
        "feature 'petal_width' value 9.7 in row 1 is outside the training range [0.1, 2.5] "
        "(and 2 more values in this request)"
    )


def test_feature_without_a_range_is_never_counted() -> None:
    baseline = baseline_statistics(TRAIN)
    partial = {**baseline, "sepal_width": contract.FeatureBaseline(
        baseline["sepal_width"].edges, baseline["sepal_width"].proportions)}  # fmt: skip
    ranges = _ranges(partial)
    assert ranges.ranges == (None, (0.1, 2.5))
    rows = np.array([[1e6, 1.0], [-1e6, 3.0]], dtype=np.float32)
    ranges.count(rows)
    assert ranges.counts.tolist() == [0, 1]
