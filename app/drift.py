"""Feature drift: the population stability index (PSI) of recent inputs per feature.

PSI = Σ (p_i - q_i) · ln(p_i / q_i) over the baseline's quantile bins, p the share of recent
rows in bin i, q the share of training rows. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate,
> 0.2 significant drift.
"""

from __future__ import annotations

import numpy as np

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
