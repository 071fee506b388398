"""Session fixtures that start real processes; each waits with a bound and always stops."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.leaks import LEDGER, Ledger
from tests.processes import Process, start_app, start_mlflow, train_model

AFTER_ALL = "after_all"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{AFTER_ALL}: runs after every other test of the session (the leak check)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_all` go last, so they see what every other test left."""
    items.sort(key=lambda item: item.get_closest_marker(AFTER_ALL) is not None)


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    """Every service the session started (tests/processes.py), with the secrets it was given."""
    return LEDGER


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def champion_name(mlflow_server: Process) -> str:
    """A registered model whose champion (v1, logistic regression on iris) has an ONNX export."""
    name = f"served-{uuid.uuid4().hex[:8]}"
    train_model(mlflow_server.url, name, "--candidates", "logreg")
    return name


@pytest.fixture(scope="session")
def served_app(
    mlflow_server: Process, champion_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """A real `python -m app` process serving `champion_name`, ready."""
    process = start_app(tmp_path_factory.mktemp("app"), mlflow_server.url, champion_name)
    yield process
    process.stop()
