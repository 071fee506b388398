"""Fixtures of the chart checks: the scenario matrix rendered once per session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import MONITORING_API, render, scenarios


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Scenario name → its objects, rendered as a cluster with the Prometheus Operator sees them
    (so the monitoring objects are part of every check where the scenario enables them)."""
    return {s.name: render(s.values, api_versions=[MONITORING_API]) for s in scenarios()}
