"""PSI over the ring buffer of recent rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.drift import DriftWindow
from training.evaluate import baseline_statistics


def _window(size: int) -> tuple[DriftWindow, np.ndarray]:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(5000, 2))
    baseline = baseline_statistics(pd.DataFrame(train, columns=["x", "y"]))
    return DriftWindow(("x", "y"), baseline, size), rng.normal(size=(size, 2)).astype(np.float32)


def test_same_distribution_has_low_psi_and_shifted_has_high() -> None:
    window, fresh = _window(2000)
    window.add(fresh)
    calm = window.psi()
    assert calm["x"] < 0.05 and calm["y"] < 0.05
    window.add((fresh + np.array([2.0, 0.0], dtype=np.float32))[:2000])
    shifted = window.psi()
    assert shifted["x"] > 0.2 and shifted["y"] < 0.05


def test_ring_buffer_keeps_only_the_last_rows() -> None:
    window, _ = _window(10)
    for start in range(0, 25, 3):  # crosses the wrap-around several times
        window.add(np.arange(start, start + 3, dtype=np.float32).repeat(2).reshape(3, 2))
    assert window.count == 10
    assert sorted(window._rows[:, 0].tolist()) == list(range(17, 27))


def test_empty_window_reports_nothing() -> None:
    window, _ = _window(10)
    assert window.psi() == {}
