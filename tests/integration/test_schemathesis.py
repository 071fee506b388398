"""schemathesis against the real inference service: every operation of its OpenAPI document,
with the API key and without it. No answer is a 5xx, and every answer (status, content type,
headers, body) is one the document declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import fuzzing
from tests.processes import Process, start_app

KEY = "fuzzing-app-key"
Capture = pytest.CaptureFixture[str]
# Open without the key, as probes and KServe/V2 health are; every other operation needs it.
OPEN = frozenset(
    {
        "GET /",
        "GET /livez",
        "GET /readyz",
        "GET /metrics",
        "GET /ping",
        "GET /health",
        "GET /version",
        "GET /v1/models/{name}",
        "GET /v2",
        "GET /v2/health/live",
        "GET /v2/health/ready",
        "GET /v2/models/{name}/ready",
        "GET /v2/models/{name}/versions/{version}/ready",
        # MLflow's deliveries carry a signature instead of a key (webhooks off here: 404).
        "POST /v1/webhooks/mlflow",
    }
)


@pytest.fixture(scope="module")
def app(
    mlflow_server: Process, champion_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """A service of its own with the API key on: fuzzing fills its metrics and drift window."""
    process = start_app(
        tmp_path_factory.mktemp("fuzzed-app"),
        mlflow_server.url,
        champion_name,
        env={"MLSTACK_API_KEY": KEY},
    )
    yield process
    process.stop()


def test_with_the_key_no_input_gets_a_5xx_or_an_undeclared_answer(
    app: Process, tmp_path: Path, capsys: Capture
) -> None:
    report = fuzzing.fuzz(app.url, tmp_path, {"x-api-key": KEY}, "with the API key", capsys)
    # The key was taken: the protected routes answered, not only refused.
    for operation in ("GET /model", "GET /drift", "GET /v2/models/{name}"):
        assert report.statuses(operation)[200] > 0, (operation, report.statuses(operation))


def test_without_the_key_every_protected_operation_answers_401(
    app: Process, tmp_path: Path, capsys: Capture
) -> None:
    report = fuzzing.fuzz(app.url, tmp_path, None, "without the API key", capsys)
    assert report.documented > OPEN, sorted(OPEN - report.documented)
    for operation in sorted(report.documented - OPEN):
        statuses = report.statuses(operation)
        assert set(statuses) == {401}, (operation, dict(statuses))
