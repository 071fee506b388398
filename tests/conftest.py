"""Session fixtures that start real processes; each waits with a bound and always stops."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.processes import Process, start_app, start_mlflow, train_model


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
