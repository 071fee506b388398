"""Prediction records leave the service in batches, off the hot path, and survive outages
within the queue bound. The receiver is a real HTTP server on loopback that stores what it
is sent, and can be stopped and started again on the same port."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.processes import Process, free_port, metric_samples, start_app, wait_until

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
JSON = {"content-type": "application/json"}


class Receiver:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.batches: list[list[dict[str, Any]]] = []
        self.keys: list[str | None] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for batch in self.batches for r in batch]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.path != "/v1/predictions":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver.batches.append(json.loads(body)["records"])
                receiver.keys.append(self.headers.get("x-api-key"))
                self.send_response(202)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"accepted": 1}')

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


def _predict(url: str, body: object, headers: dict[str, str] | None = None) -> int:
    return httpx.post(
        f"{url}/predict", content=orjson.dumps(body), headers={**JSON, **(headers or {})}
    ).status_code


def _app(tmp_path: Path, mlflow: Process, model: str, receiver: Receiver, **env: str) -> Process:
    return start_app(
        tmp_path,
        mlflow.url,
        model,
        env={
            "MLSTACK_PREDICTION_LOG_URL": receiver.url,
            "MLSTACK_PREDICTION_LOG_INTERVAL_SECONDS": "0.2",
            **env,
        },
    )


def test_every_predict_request_becomes_a_record_with_its_outcome(
    mlflow_server: Process, champion_name: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.start()
    key = tmp_path / "control-key"
    key.write_text("control-secret")
    app = _app(
        tmp_path,
        mlflow_server,
        champion_name,
        receiver,
        MLSTACK_API_KEY="pl-app-key",
        MLSTACK_PREDICTION_LOG_API_KEY_FILE=str(key),
    )
    try:
        assert _predict(app.url, SETOSA, {"x-api-key": "pl-app-key", "x-request-id": "ok-1"}) == 200
        assert (
            _predict(
                app.url,
                {"instances": [SETOSA, SETOSA]},
                {"x-api-key": "pl-app-key", "x-request-id": "ok-2"},
            )
            == 200
        )
        assert (
            _predict(app.url, {"x": 1}, {"x-api-key": "pl-app-key", "x-request-id": "bad-1"}) == 422
        )
        assert _predict(app.url, SETOSA, {"x-request-id": "auth-1"}) == 401
        assert (
            _predict(
                app.url,
                {"instances": [SETOSA] * 1001},
                {"x-api-key": "pl-app-key", "x-request-id": "limit-1"},
            )
            == 422
        )
        httpx.get(f"{app.url}/livez")  # not a prediction: no record
        wait_until(lambda: len(receiver.records) == 5, 30, "five records at the receiver")
        by_id = {r["request_id"]: r for r in receiver.records}
        ok = by_id["ok-1"]
        assert ok["outcome"] == "success" and ok["status"] == 200
        assert ok["model_name"] == champion_name and ok["model_version"] == "1"
        assert ok["labels"] == ["setosa"] and 0.5 < ok["confidences"][0] <= 1.0
        assert ok["rows"] == 1 and ok["error_source"] is None and ok["latency_ms"] > 0
        assert "features" not in ok  # raw features only when enabled
        assert by_id["ok-2"]["rows"] == 2 and by_id["ok-2"]["labels"] == ["setosa"] * 2
        assert (by_id["bad-1"]["outcome"], by_id["bad-1"]["error_source"]) == (
            "error",
            "validation",
        )
        assert (by_id["auth-1"]["status"], by_id["auth-1"]["error_source"]) == (401, "auth")
        assert by_id["limit-1"]["error_source"] == "limit"
        assert set(receiver.keys) == {"control-secret"}
        assert metric_samples(app.url)["mlstack_prediction_log_shipped_total{}"] == 5
    finally:
        app.stop()


def test_receiver_away_loses_nothing_within_the_bound_and_counts_drops(
    mlflow_server: Process, champion_name: str, receiver: Receiver, tmp_path: Path
) -> None:
    app = _app(
        tmp_path,
        mlflow_server,
        champion_name,
        receiver,
        MLSTACK_PREDICTION_LOG_QUEUE="6",
        MLSTACK_PREDICTION_LOG_BATCH="4",
    )
    try:
        for i in range(9):  # receiver down: 9 records into a queue of 6
            assert _predict(app.url, SETOSA, {"x-request-id": f"r{i}"}) == 200
        wait_until(
            lambda: metric_samples(app.url)["mlstack_prediction_log_dropped_total{}"] == 3,
            20,
            "three records dropped",
        )
        receiver.start()
        wait_until(lambda: len(receiver.records) == 6, 60, "the queued records to arrive")
        assert [r["request_id"] for r in receiver.records] == [f"r{i}" for i in range(3, 9)]
        assert all(len(batch) <= 4 for batch in receiver.batches)
    finally:
        app.stop()


def test_queued_records_are_flushed_on_graceful_shutdown(
    mlflow_server: Process, champion_name: str, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.start()
    app = _app(
        tmp_path,
        mlflow_server,
        champion_name,
        receiver,
        MLSTACK_PREDICTION_LOG_INTERVAL_SECONDS="3600",
        MLSTACK_PREDICTION_LOG_BATCH="1000",
    )
    try:
        for i in range(3):
            assert _predict(app.url, SETOSA, {"x-request-id": f"s{i}"}) == 200
        assert receiver.records == []  # neither the interval nor the batch size was reached
        app.proc.send_signal(signal.SIGTERM)
        app.proc.wait(timeout=30)
        assert [r["request_id"] for r in receiver.records] == ["s0", "s1", "s2"]
    finally:
        app.stop()


def test_full_batches_go_at_once_and_the_rest_waits_for_the_interval(
    mlflow_server: Process, champion_name: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Records are never posted a handful at a time between intervals: that per-post cost
    would land on /predict under light traffic."""
    receiver.start()
    app = _app(
        tmp_path,
        mlflow_server,
        champion_name,
        receiver,
        MLSTACK_PREDICTION_LOG_INTERVAL_SECONDS="3600",
        MLSTACK_PREDICTION_LOG_BATCH="5",
    )
    try:
        for i in range(12):
            assert _predict(app.url, SETOSA, {"x-request-id": f"r{i:02}"}) == 200
        wait_until(lambda: len(receiver.records) >= 10, 30, "two full batches")
        assert [len(batch) for batch in receiver.batches] == [5, 5]
        app.proc.send_signal(signal.SIGTERM)
        app.proc.wait(timeout=30)
        assert [len(batch) for batch in receiver.batches] == [5, 5, 2]
        assert [r["request_id"] for r in receiver.records] == [f"r{i:02}" for i in range(12)]
    finally:
        app.stop()
