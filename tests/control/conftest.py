"""Fixtures of the control-plane tests: a real PostgreSQL (Debian's, in a temp dir), a fresh
database per user, and real control-plane processes that stop when the test ends."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.control.records import KEY
from tests.processes import Postgres, Process, start_control, start_postgres

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = start_postgres()
    yield server
    server.stop()


def fresh_database(server: Postgres) -> str:
    """A new, empty database on `server`; its URI."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.uri, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.uri.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=BACKENDS)
def database_uri(request: pytest.FixtureRequest, tmp_path: Path, postgres: Postgres) -> str:
    """An empty database of each backend, in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    return fresh_database(postgres)


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "control-api-key"
    path.write_text(f"{KEY}\n")
    return path


ControlFactory = Callable[..., Process]


@pytest.fixture
def control_factory(
    mlflow_server: Process,
    postgres: Postgres,
    key_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControlFactory]:
    """Starts control planes (`backend` sqlite or postgresql, extra env) and stops them all."""
    started: list[Process] = []

    def start(backend: str = "sqlite", **env: str) -> Process:
        settings = {"MLSTACK_CONTROL_API_KEY_FILE": str(key_file), **env}
        if backend == "postgresql":
            settings.setdefault("MLSTACK_CONTROL_DATABASE_URI", fresh_database(postgres))
        process = start_control(tmp_path_factory.mktemp("control"), mlflow_server.url, settings)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
