"""A real Prometheus (Debian's) scrapes a real running service the way the chart's
ServiceMonitor tells the Prometheus Operator to (port, path, interval, timeout, and the target
labels the operator attaches), and every dashboard panel query returns data after traffic."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
import pytest
import yaml

from devsupport.processes import Process, free_port, http_status, start, wait_until
from tests.chart.monitoring import dashboard_queries, service_monitor_endpoint
from tests.processes import start_app, train_model

NAMESPACE = "mlstack"
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def shadowed_app(
    mlflow_server: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """A second replica whose model has a challenger (the champion's files registered again
    as v2), shadowed on every request: the challenger panels' series."""
    from mlflow import MlflowClient

    from training import contract

    name = f"shadowed-{uuid.uuid4().hex[:8]}"
    train_model(mlflow_server.url, name, "--candidates", "logreg")
    client = MlflowClient(mlflow_server.url)
    v1 = client.get_model_version_by_alias(name, contract.ALIAS_CHAMPION)
    # A logged model's source is models:/<model id>: MLflow asks for that id with it.
    model_id = v1.model_id or v1.source.removeprefix("models:/")
    v2 = client.create_model_version(name, v1.source, run_id=v1.run_id, model_id=model_id)
    client.set_registered_model_alias(name, contract.ALIAS_CHALLENGER, v2.version)
    process = start_app(tmp_path_factory.mktemp("shadowed"), mlflow_server.url, name,
                        env={"MLSTACK_SHADOW_PERCENT": "100"})  # fmt: skip
    try:
        wait_until(
            lambda: httpx.get(f"{process.url}/model").json()["shadow"]["version"] == v2.version,
            60,
            "the challenger loaded as the shadow",
        )
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def prometheus(
    served_app: Process, shadowed_app: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: run `make chart-tools` (Debian's package)"
    endpoint = service_monitor_endpoint()
    directory = tmp_path_factory.mktemp("prometheus")
    # What the operator generates for this ServiceMonitor, with a static target in place of
    # endpoint discovery: same path, interval and timeout, same target labels.
    config = {
        "global": {"scrape_interval": endpoint.interval},
        "scrape_configs": [
            {
                "job_name": f"serviceMonitor/{NAMESPACE}/{endpoint.service}/0",
                "metrics_path": endpoint.path,
                "scrape_interval": endpoint.interval,
                "scrape_timeout": endpoint.scrape_timeout,
                "static_configs": [
                    {
                        "targets": [urlparse(app.url).netloc],
                        "labels": {
                            "namespace": NAMESPACE,
                            "service": endpoint.service,
                            "job": endpoint.service,
                            "endpoint": endpoint.port_name,
                            "pod": f"{endpoint.service}-{replica}",
                            "container": "inference",
                        },
                    }
                    for replica, app in enumerate((served_app, shadowed_app))
                ],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = start(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        directory / "prometheus.log",
        f"http://127.0.0.1:{port}",
    )
    try:
        wait_until(lambda: http_status(f"{process.url}/-/ready") == 200, 60, "prometheus ready")
        yield process.url
    finally:
        process.stop()
        shutil.rmtree(directory / "data", ignore_errors=True)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_target_is_scraped_with_the_service_monitors_settings(prometheus: str) -> None:
    def up() -> bool:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
        active = targets["activeTargets"]
        return len(active) == 2 and all(t["health"] == "up" for t in active)

    wait_until(up, 90, "the service's targets to be up")
    samples = _query(prometheus, f'up{{namespace="{NAMESPACE}"}}')
    assert [s["value"][1] for s in samples] == ["1", "1"]
    assert {s["metric"]["endpoint"] for s in samples} == {service_monitor_endpoint().port_name}


def test_every_dashboard_panel_returns_data_after_traffic(
    prometheus: str, served_app: Process, shadowed_app: Process
) -> None:
    with httpx.Client(timeout=10) as client:
        headers = {"content-type": "application/json"}
        for _ in range(30):
            client.post(f"{served_app.url}/predict", content=orjson.dumps(SETOSA), headers=headers)
            client.post(
                f"{shadowed_app.url}/predict", content=orjson.dumps(SETOSA), headers=headers
            )
        # Enough rows for the drift panel, and one invalid request for the error panels.
        client.post(
            f"{served_app.url}/predict",
            headers=headers,
            content=orjson.dumps({"instances": [SETOSA] * 150}),
        )
        client.post(f"{served_app.url}/predict", headers=headers, content=b'{"x": 1}')
    queries = dashboard_queries(rate_interval="1m", namespace=NAMESPACE)
    assert queries

    def empty() -> list[str]:
        return [
            f"{q.dashboard} / {q.panel}: {q.expr}"
            for q in queries
            if not _query(prometheus, q.expr)
        ]

    try:
        wait_until(lambda: not empty(), 150, "every panel query to return data", interval=5)
    except TimeoutError:
        pytest.fail("panels without data:\n" + "\n".join(empty()))
