"""Session fixtures that start real processes; each waits with a bound and always stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.processes import Process, start_mlflow


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield process
    process.stop()
