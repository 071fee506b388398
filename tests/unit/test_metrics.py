"""The fast histogram observes fill exactly what prometheus-client's observe calls would."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from app.metrics import observe_many, observe_one


def test_observe_many_matches_observe_one_by_one() -> None:
    registry = CollectorRegistry()
    buckets = (0.3, 0.5, 0.9, 1.0)
    one = Histogram("one", "", ["v"], buckets=buckets, registry=registry).labels("x")
    many = Histogram("many", "", ["v"], buckets=buckets, registry=registry).labels("x")
    values = np.array([0.3, 0.31, 0.5, 0.95, 1.0, 0.2, 0.9, 0.5], dtype=np.float32)
    for value in values.tolist():
        one.observe(value)
    observe_many(many, values)

    def samples(name: str) -> dict[str, float]:
        family = next(f for f in registry.collect() if f.name == name)
        return {
            f"{s.name.removeprefix(name)}{s.labels.get('le', '')}": s.value for s in family.samples
        }

    expected, actual = samples("one"), samples("many")
    assert expected.pop("_sum") == pytest.approx(actual.pop("_sum"))
    assert expected == actual
    assert actual["_bucket0.5"] == 5


def test_observe_one_matches_observe_on_bounds_and_beyond() -> None:
    registry = CollectorRegistry()
    buckets = (0.001, 0.01, 0.1)
    reference = Histogram("ref", "", ["v"], buckets=buckets, registry=registry).labels("x")
    fast = Histogram("fast", "", ["v"], buckets=buckets, registry=registry).labels("x")
    for value in (0.0, 0.001, 0.0011, 0.01, 0.05, 0.1, 3.0):
        reference.observe(value)
        observe_one(fast, value)

    def samples(name: str) -> dict[str, float]:
        family = next(f for f in registry.collect() if f.name == name)
        return {
            f"{s.name.removeprefix(name)}{s.labels.get('le', '')}": s.value for s in family.samples
        }

    assert samples("ref") == samples("fast")
    assert samples("fast")["_bucket+Inf"] == 7
    assert samples("fast")["_bucket0.001"] == 2
