"""Settings read from the environment the way the chart and the docs set them."""

from __future__ import annotations

import pytest


def test_candidates_come_from_the_environment_as_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from training.settings import TrainingSettings

    monkeypatch.setenv("MLSTACK_CANDIDATES", "logreg, svm")
    assert TrainingSettings().candidates == ("logreg", "svm")
