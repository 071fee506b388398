"""The batch histogram observe fills exactly what per-value observe calls would."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from app.metrics import observe_many


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
