"""Feature drift: the population stability index (PSI) of recent inputs per feature, and the
values seen outside each feature's training range.

PSI = Σ (p_i - q_i) · ln(p_i / q_i) over the baseline's quantile bins, p the share of recent
rows in bin i, q the share of training rows. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate,
> 0.2 significant drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.errors import OutOfRange
from training import contract

# Empty bins would make the logarithm infinite; both shares are floored at this value.
_EPSILON = 1e-4


class DriftWindow:
    """The last `size` rows seen, in a ring buffer; appended on the event loop only."""

    def __init__(
        self, features: tuple[str, ...], baseline: dict[str, contract.FeatureBaseline], size: int
    ) -> None:
        missing = [f for f in features if f not in baseline]
        if missing:
            raise ValueError(f"baseline has no statistics for features {missing}")
        self.features = features
        self._inner = [np.asarray(baseline[f].edges[1:-1], dtype=np.float64) for f in features]
        self._expected = [
            np.maximum(np.asarray(baseline[f].proportions, dtype=np.float64), _EPSILON)
            for f in features
        ]
        self._rows = np.zeros((size, len(features)), dtype=np.float32)
        self._size = size
        self._next = 0
        self.count = 0

    def add(self, rows: np.ndarray) -> None:
        n = len(rows)
        if n >= self._size:
            self._rows[:] = rows[-self._size :]
            self._next = 0
        else:
            end = self._next + n
            if end <= self._size:
                self._rows[self._next : end] = rows
            else:
                split = self._size - self._next
                self._rows[self._next :] = rows[:split]
                self._rows[: n - split] = rows[split:]
            self._next = end % self._size
        self.count = min(self.count + n, self._size)

    def psi(self) -> dict[str, float]:
        """PSI per feature over the rows in the window (empty when it holds none)."""
        if self.count == 0:
            return {}
        recent = self._rows[: self.count].astype(np.float64)
        out = {}
        for j, name in enumerate(self.features):
            # Bins closed on the right, as training computed them.
            index = np.searchsorted(self._inner[j], recent[:, j], side="left")
            counts = np.bincount(index, minlength=len(self._expected[j])).astype(np.float64)
            actual = np.maximum(counts / counts.sum(), _EPSILON)
            expected = self._expected[j]
            out[name] = float(np.sum((actual - expected) * np.log(actual / expected)))
        return out


class FeatureRanges:
    """Each feature's training range (min, max) and the values seen outside it since the
    version was loaded, per feature. Counted on the event loop only, once per request."""

    def __init__(
        self,
        features: tuple[str, ...],
        baseline: dict[str, contract.FeatureBaseline],
        counters: Sequence[Any],
    ) -> None:
        """`counters`: a metric child per feature, incremented by the values outside its range.
        A feature without a range (a baseline that predates ranges) is never counted."""
        self.features = features
        self.ranges = tuple(baseline[f].range if f in baseline else None for f in features)
        # Compared in float32, as the rows are: the bounds rounded alike, so a training value
        # is never outside (rounding keeps order). An unknown range is (-inf, inf).
        self._low = np.array([-np.inf if r is None else r[0] for r in self.ranges], np.float32)
        self._high = np.array([np.inf if r is None else r[1] for r in self.ranges], np.float32)
        self._counters = tuple(counters)
        self.counts = np.zeros(len(features), dtype=np.int64)

    def count(self, rows: np.ndarray) -> np.ndarray | None:
        """Count the values of `rows` (float32 [n, features]) outside their feature's range;
        the mask of those values, or None when every value is inside (the common case)."""
        # The ufuncs and count_nonzero directly: a third less time than `(a < b) | ...` and
        # `.any()` on a one-row request, this being on every request.
        outside = np.logical_or(np.less(rows, self._low), np.greater(rows, self._high))
        if not np.count_nonzero(outside):
            return None
        per_feature = outside.sum(axis=0)
        self.counts += per_feature
        for j in np.flatnonzero(per_feature).tolist():
            self._counters[j].inc(int(per_feature[j]))
        return outside

    def refusal(self, rows: np.ndarray, outside: np.ndarray) -> OutOfRange:
        """The error naming the first value outside its range (row-major), from `count`'s mask."""
        row, j = (int(i) for i in np.argwhere(outside)[0])
        low, high = self.ranges[j] or (-np.inf, np.inf)
        # str() of a float32 is its shortest form: 9.7, not 9.699999809265137.
        where = f" in row {row}" if len(rows) > 1 else ""
        message = (
            f"feature {self.features[j]!r} value {rows[row, j]!s}{where} is outside the "
            f"training range [{low!r}, {high!r}]"
        )
        others = int(outside.sum()) - 1
        if others:
            message += f" (and {others} more value{'s' if others > 1 else ''} in this request)"
        return OutOfRange(message)
