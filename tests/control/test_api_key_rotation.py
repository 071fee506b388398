"""The control plane's key Secret rotated under a real control plane and a real inference
service shipping its records to it, as the chart mounts it in both: neither restarts, no record
is lost, the old key is refused at the end, and a withdrawn Secret fails closed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from kernel.keys import CHECK_SECONDS
from tests.control.conftest import ControlFactory
from tests.processes import Process, metric_samples, start_app, wait_until
from tests.secret_mount import SecretMount

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
OLD, NEW = "control-rotation-old", "control-rotation-new"


def _status(plane: Process, key: str) -> int:
    return httpx.get(f"{plane.url}/v1/predictions", headers={"x-api-key": key}).status_code


def _stored(plane: Process, key: str) -> set[str]:
    response = httpx.get(f"{plane.url}/v1/predictions", headers={"x-api-key": key})
    return (
        {item["request_id"] for item in response.json()["items"]} if response.is_success else set()
    )


def _ship(app: Process, plane: Process, request_id: str, key: str) -> None:
    """One prediction, and the wait for its record at the control plane."""
    response = httpx.post(
        f"{app.url}/predict",
        content=orjson.dumps(SETOSA),
        headers={"content-type": "application/json", "x-request-id": request_id},
    )
    assert response.status_code == 200
    wait_until(lambda: request_id in _stored(plane, key), 30, f"record {request_id} stored")


def _all_readers_caught_up() -> None:
    # In a cluster: the kubelet's propagation to every pod; here, each reader's re-read.
    time.sleep(CHECK_SECONDS + 0.3)


def test_a_rotated_control_key_loses_no_record_and_a_withdrawn_one_fails_closed(
    control_factory: ControlFactory, mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    mount = SecretMount(tmp_path / "control-key-mount")
    mount.publish(OLD)
    plane = control_factory(MLSTACK_CONTROL_API_KEY_FILE=str(mount.path))
    app = start_app(
        tmp_path / "app",
        mlflow_server.url,
        champion_name,
        env={
            "MLSTACK_PREDICTION_LOG_URL": plane.url,
            "MLSTACK_PREDICTION_LOG_API_KEY_FILE": str(mount.path),
            "MLSTACK_PREDICTION_LOG_INTERVAL_SECONDS": "0.2",
        },
    )
    try:
        pids = (plane.proc.pid, app.proc.pid)
        _ship(app, plane, "before", OLD)

        # 1. Add the new key: the control plane accepts both, the service still sends the old.
        mount.publish(OLD, NEW)
        wait_until(lambda: _status(plane, NEW) == 200, 10, "the new key accepted")
        assert _status(plane, OLD) == 200
        _ship(app, plane, "both-old-first", NEW)
        # 2. Put it first: the service sends the new key.
        mount.publish(NEW, OLD)
        _all_readers_caught_up()
        _ship(app, plane, "both-new-first", NEW)
        # 3. Drop the old key.
        mount.publish(NEW)
        wait_until(lambda: _status(plane, OLD) == 403, 10, "the old key refused")
        _ship(app, plane, "after", NEW)
        assert httpx.get(f"{plane.url}/v1/models", headers={"x-api-key": OLD}).status_code == 403

        # Withdrawn: every /v1 request is refused (never let through), the service keeps its
        # records queued, and both carry on once the Secret is back.
        mount.withdraw()
        wait_until(lambda: _status(plane, NEW) == 503, 10, "refusals while withdrawn")
        refused = httpx.get(f"{plane.url}/v1/predictions", headers={"x-api-key": NEW})
        assert refused.json() == {
            "detail": "the control plane API key cannot be read (MLSTACK_CONTROL_API_KEY_FILE)"
        }
        assert httpx.get(f"{plane.url}/v1/predictions").status_code == 401
        response = httpx.post(
            f"{app.url}/predict",
            content=orjson.dumps(SETOSA),
            headers={"content-type": "application/json", "x-request-id": "while-withdrawn"},
        )
        assert response.status_code == 200  # the service's own routes need no control key
        _all_readers_caught_up()
        mount.publish(NEW)
        wait_until(lambda: "while-withdrawn" in _stored(plane, NEW), 60, "the queued record")

        assert _stored(plane, NEW) == {
            "before",
            "both-old-first",
            "both-new-first",
            "after",
            "while-withdrawn",
        }
        assert metric_samples(app.url)["mlstack_prediction_log_dropped_total{}"] == 0
        assert (plane.proc.pid, app.proc.pid) == pids
        assert plane.proc.poll() is None and app.proc.poll() is None
    finally:
        app.stop()
    assert '"event":"prediction_log.refused"' not in app.output()
    assert '"event":"api_key.unreadable"' in app.output()
    assert '"event":"api_key.unreadable"' in plane.output()
