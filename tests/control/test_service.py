"""The control plane as a process: auth on every /v1 route, open probes, metrics by route
template, one JSON log line per request, and both entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.control.conftest import ControlFactory
from tests.control.records import AUTH, KEY, post, record
from tests.processes import Process, metric_samples, start_control

ROUTES = [
    ("GET", "/v1/predictions", None),
    ("POST", "/v1/predictions", {"records": [record("auth-1", 1_700_000_000.0)]}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/{m}", None),
    ("PUT", "/v1/models/{m}/aliases/champion", {"version": "1"}),
    ("POST", "/v1/models/{m}/rollback", None),
    ("GET", "/v1/experiments", None),
    ("GET", "/v1/training-jobs", None),
    ("GET", "/v1/training-jobs/some-job", None),
    ("POST", "/v1/training-jobs", {"candidates": ["logreg"]}),
]


@pytest.fixture(scope="module")
def plane(
    mlflow_server: Process, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    process = start_control(
        tmp_path_factory.mktemp("control"),
        mlflow_server.url,
        # No cluster: the training-jobs routes answer 503 behind the key check.
        {"MLSTACK_CONTROL_API_KEY_FILE": str(key_file), "KUBECONFIG": "/nonexistent"},
    )
    yield process
    process.stop()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_v1_route_needs_the_key(
    plane: Process, champion_name: str, method: str, path: str, body: object
) -> None:
    url = f"{plane.url}{path.format(m=champion_name)}"
    missing = httpx.request(method, url, json=body, timeout=60)
    assert missing.status_code == 401
    assert missing.json()["detail"] == "missing API key header 'x-api-key'"
    wrong = httpx.request(method, url, json=body, headers={"x-api-key": "guess"}, timeout=60)
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "API key is not valid"
    right = httpx.request(method, url, json=body, headers=AUTH, timeout=60)
    assert right.status_code not in (401, 403), right.text


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
def test_probes_and_metrics_are_open(plane: Process, path: str) -> None:
    assert httpx.get(f"{plane.url}{path}").status_code == 200


def test_openapi_documents_every_route(plane: Process) -> None:
    paths = httpx.get(f"{plane.url}/openapi.json").json()["paths"]
    assert {
        "/v1/predictions",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/aliases/{alias}",
        "/v1/models/{name}/rollback",
        "/v1/experiments",
        "/v1/training-jobs",
        "/v1/training-jobs/{job_id}",
        "/livez",
        "/readyz",
        "/metrics",
    } <= set(paths)
    ingest = paths["/v1/predictions"]["post"]
    schema = ingest["requestBody"]["content"]["application/json"]["schema"]
    record = schema["properties"]["records"]["items"]
    assert {"request_id", "time", "status", "outcome", "error_source"} <= set(record["properties"])
    assert "$ref" not in json.dumps(schema)  # every reference resolves inside the document


def test_metrics_follow_a_known_sequence_of_requests(
    control_factory: ControlFactory, champion_name: str
) -> None:
    plane = control_factory()
    now = time.time()
    good = [record("m-1", now), record("m-2", now, status=422), record("m-3", now, status=401)]
    assert post(plane.url, good).status_code == 202
    assert post(plane.url, [record("m-4", now, status="x")]).status_code == 422
    assert httpx.get(f"{plane.url}/v1/models/{champion_name}", headers=AUTH).status_code == 200
    assert httpx.get(f"{plane.url}/v1/models/nope-{champion_name}", headers=AUTH).status_code == 404
    m = metric_samples(plane.url)
    assert m["mlstack_control_requests_total{method=POST,route=/v1/predictions,status=202}"] == 1
    assert m["mlstack_control_requests_total{method=POST,route=/v1/predictions,status=422}"] == 1
    assert m["mlstack_control_requests_total{method=GET,route=/v1/models/{name},status=200}"] == 1
    assert m["mlstack_control_requests_total{method=GET,route=/v1/models/{name},status=404}"] == 1
    assert m["mlstack_control_prediction_records_ingested_total{outcome=success}"] == 1
    assert m["mlstack_control_prediction_records_ingested_total{outcome=error}"] == 2
    assert m["mlstack_control_prediction_batches_total{result=accepted}"] == 1
    assert m["mlstack_control_prediction_batches_total{result=invalid}"] == 1
    assert m["mlstack_control_alias_changes_total{action=promote,result=moved}"] == 0
    # Model names from paths never become label values.
    assert not any(champion_name in key for key in m)


def test_each_request_logs_one_json_line_with_its_request_id(
    control_factory: ControlFactory,
) -> None:
    plane = control_factory()
    response = httpx.get(
        f"{plane.url}/v1/predictions", headers={**AUTH, "x-request-id": "trace-me-1"}
    )
    assert response.headers["x-request-id"] == "trace-me-1"
    lines = [
        json.loads(line)
        for line in plane.output().splitlines()
        if line.startswith("{") and "trace-me-1" in line
    ]
    [line] = lines
    assert line["event"] == "request.finished" and line["status"] == 200
    assert line["route"] == "/v1/predictions" and isinstance(line["latency_ms"], float)
    started = [line for line in plane.output().splitlines() if '"service.started"' in line]
    assert len(started) == 1 and '"auth":true' in started[0] and '"schema":"0002"' in started[0]


def test_the_uvicorn_factory_entry_point_serves_the_same_application(
    mlflow_server: Process, key_file: Path, tmp_path: Path
) -> None:
    plane = start_control(
        tmp_path,
        mlflow_server.url,
        {"MLSTACK_CONTROL_API_KEY": KEY},
        command=[
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "control.service:create_app",
            "--host",
            "127.0.0.1",
        ],
    )
    try:
        assert post(plane.url, [record("factory-1", time.time())]).json() == {"accepted": 1}
        assert httpx.get(f"{plane.url}/v1/predictions", headers=AUTH).json()["total"] == 1
        assert httpx.get(f"{plane.url}/v1/predictions").status_code == 401
    finally:
        plane.stop()


def test_without_a_key_the_routes_are_open_and_a_warning_is_logged(
    mlflow_server: Process, tmp_path: Path
) -> None:
    plane = start_control(tmp_path, mlflow_server.url)
    try:
        assert httpx.get(f"{plane.url}/v1/predictions").status_code == 200
        assert '"event":"auth.disabled"' in plane.output()
    finally:
        plane.stop()


def test_an_unreadable_key_file_stops_the_start_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "control", "serve", "--port", "1"],
        env={"MLSTACK_CONTROL_API_KEY_FILE": str(tmp_path / "missing"), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"MLSTACK_CONTROL_API_KEY_FILE {tmp_path / 'missing'}" in result.stderr


def test_mlflow_down_gives_502_naming_mlflow_and_the_log_keeps_working(tmp_path: Path) -> None:
    plane = start_control(
        tmp_path,
        "http://127.0.0.1:9",
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLSTACK_CONTROL_API_KEY": KEY},
    )
    try:
        for path in ("/v1/models", "/v1/models/any", "/v1/experiments"):
            response = httpx.get(f"{plane.url}{path}", headers=AUTH, timeout=60)
            assert response.status_code == 502
            assert "MLflow failed on" in response.json()["detail"]
        assert post(plane.url, [record("still-1", time.time())]).status_code == 202
        assert httpx.get(f"{plane.url}/readyz").status_code == 200
        samples = metric_samples(plane.url)
        assert samples["mlstack_control_registry_errors_total{}"] == 3
    finally:
        plane.stop()
