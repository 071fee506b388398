"""A transformer of the tests' own: a type outside the service's default skops allow-list."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Clip(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    def __init__(self, low: float = 0.0, high: float = 10.0) -> None:
        self.low = low
        self.high = high

    def fit(self, x: Any, y: Any = None) -> Clip:
        return self

    def transform(self, x: Any) -> Any:
        return np.clip(x, self.low, self.high)
