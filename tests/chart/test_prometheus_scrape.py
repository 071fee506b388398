"""A real Prometheus (Debian's) scrapes a real running service the way the chart's
ServiceMonitor tells the Prometheus Operator to (port, path, interval, timeout, and the target
labels the operator attaches), and every dashboard panel query returns data after traffic."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
import pytest
import yaml

from devsupport.processes import Process, free_port, http_status, start, wait_until
from tests.chart.monitoring import dashboard_queries, service_monitor_endpoint

NAMESPACE = "mlstack"
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def prometheus(served_app: Process, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: run `make chart-tools` (Debian's package)"
    endpoint = service_monitor_endpoint()
    target = urlparse(served_app.url).netloc
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
                        "targets": [target],
                        "labels": {
                            "namespace": NAMESPACE,
                            "service": endpoint.service,
                            "job": endpoint.service,
                            "endpoint": endpoint.port_name,
                            "pod": f"{endpoint.service}-0",
                            "container": "inference",
                        },
                    }
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
        return any(t["health"] == "up" for t in targets["activeTargets"])

    wait_until(up, 90, "the service's target to be up")
    [sample] = _query(prometheus, f'up{{namespace="{NAMESPACE}"}}')
    assert sample["value"][1] == "1"
    assert sample["metric"]["endpoint"] == service_monitor_endpoint().port_name


def test_every_dashboard_panel_returns_data_after_traffic(
    prometheus: str, served_app: Process
) -> None:
    with httpx.Client(timeout=10) as client:
        headers = {"content-type": "application/json"}
        for _ in range(30):
            client.post(f"{served_app.url}/predict", content=orjson.dumps(SETOSA), headers=headers)
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
