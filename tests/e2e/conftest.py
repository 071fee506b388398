"""End-to-end suite: a real kind cluster (`make cluster-offline` or `make cluster`), the real
chart, real images. Scenarios share one release and run in file order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import kube

RESULTS = kube.ROOT / ".cache" / "e2e" / "results.json"


@pytest.fixture(scope="session", autouse=True)
def cluster() -> None:
    try:
        kube.kubectl("get", "nodes", "-o", "name", timeout=30)
    except Exception as exc:
        pytest.fail(
            f"no reachable cluster for context {kube.CONTEXT!r} ({exc}); create it with "
            "`make cluster-offline` (no registry) or `make cluster`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, object]]:
    """Numbers the scenarios report; written to .cache/e2e/results.json at the end."""
    data: dict[str, object] = {}
    yield data
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2))
    print(f"\nend-to-end figures ({RESULTS}):\n{json.dumps(data, indent=2)}")


@pytest.fixture(autouse=True)
def timed(request: pytest.FixtureRequest, figures: dict[str, object]) -> Iterator[None]:
    started = time.monotonic()
    yield
    figures.setdefault("durations_seconds", {})[request.node.name] = round(  # type: ignore[index]
        time.monotonic() - started, 1
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Scenarios build on each other: stop at the first failure rather than cascade.
    for item in items:
        item.add_marker(pytest.mark.timeout(1800))


def values_files() -> list[Path]:
    return [
        kube.ROOT / "charts/mlstack/values-kind.yaml",
        Path(__file__).with_name("values-e2e.yaml"),
    ]
