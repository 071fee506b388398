"""`mlstack status` summarises the drift each inference endpoint reports (GET /drift): a real
mlflow server, a real uvicorn serving the champion, the real command in a subprocess, and for
inference pods a real kube-apiserver whose pod proxy reaches that uvicorn."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_iris

from devsupport.processes import start
from tests.processes import (
    KUBE_BIN,
    KubeApi,
    Process,
    free_port,
    http_status,
    start_app,
    start_kube_api,
    wait_until,
)

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def status(
    tmp_path: Path, mlflow: Process, model: str, inference_url: str | None, **env: str
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(exit status, {key: value} of the printed lines, the --json report). No cluster unless
    `env` sets KUBECONFIG."""
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow.url,
        "MLSTACK_CONTROL_MODEL_NAME": model,
        "MLSTACK_CONTROL_URL": "http://127.0.0.1:9",  # no control plane: said, not fatal
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "KUBERNETES_SERVICE_HOST": "",
        **env,
    }
    environment.pop("MLSTACK_CONTROL_INFERENCE_URL", None)
    if inference_url is not None:
        environment["MLSTACK_CONTROL_INFERENCE_URL"] = inference_url
    runs = [
        subprocess.run(
            [sys.executable, "-m", "control", "status", *flags],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for flags in ([], ["--json"])
    ]
    text, as_json = runs
    assert text.returncode == as_json.returncode, as_json.stderr
    lines = dict(line.split(None, 1) for line in text.stdout.splitlines() if line.strip())
    return text.returncode, lines, json.loads(as_json.stdout)


def predict(url: str, rows: list[list[float]]) -> None:
    instances = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    response = httpx.post(f"{url}/predict", json={"instances": instances}, timeout=30)
    assert response.status_code == 200, response.text


def test_status_says_a_version_without_baseline_has_none_and_how_to_add_one(
    mlflow_server: Process, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from tests.control.test_models import _notebook_version

    name = f"no-baseline-{os.getpid()}-{free_port()}"
    version = _notebook_version(mlflow_server.url, name)
    MlflowClient(mlflow_server.url).set_registered_model_alias(name, "champion", version)
    app = start_app(tmp_path, mlflow_server.url, name)
    try:
        code, lines, report = status(tmp_path, mlflow_server, name, app.url)
        assert code == 0
        assert report["drift"][0]["state"] == "no_baseline"
        assert lines[app.url].startswith("no baseline (answered 409")
        assert f"mlstack adopt {name} {version} --data" in lines[app.url]
    finally:
        app.stop()


def test_status_names_the_feature_over_the_drift_threshold(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    app = start_app(
        tmp_path,
        mlflow_server.url,
        champion_name,
        env={"MLSTACK_DRIFT_MIN_ROWS": "20", "MLSTACK_DRIFT_WINDOW": "150"},
    )
    try:
        iris = load_iris().data.tolist()
        predict(app.url, iris[:5])
        code, lines, report = status(tmp_path, mlflow_server, champion_name, app.url)
        assert code == 0
        assert lines["drift"] == "1 inference endpoint(s)"
        assert lines[app.url] == "not enough data yet (5 of 20 rows), baseline v1"
        assert report["drift"][0]["state"] == "warming_up"

        assert report["drift"][0]["out_of_range"] == {}

        # The training distribution itself stays under the threshold; the one iris petal
        # 1.0 cm long is shorter than any in the training split (1.1 cm).
        predict(app.url, iris)
        code, lines, report = status(tmp_path, mlflow_server, champion_name, app.url)
        assert lines[app.url] == (
            "none of 4 features over threshold (window 150), baseline v1, values out of "
            "training range (petal_length 1)"
        )
        assert report["drift"][0]["state"] == "stable"
        assert report["drift"][0]["out_of_range"] == {"petal_length": 1}

        # Petals 10 cm wider than any in training: one feature drifts, the rest do not.
        predict(app.url, [[*row[:3], row[3] + 10] for row in iris])
        code, lines, report = status(tmp_path, mlflow_server, champion_name, app.url)
        assert code == 0
        (drifted,) = report["drift"]
        assert drifted["endpoint"] == app.url
        assert drifted["state"] == "drifted"
        assert list(drifted["over_threshold"]) == ["petal_width"]
        psi = drifted["over_threshold"]["petal_width"]
        assert psi > drifted["threshold"] == 0.2
        assert drifted["window_rows"] == 150 and drifted["baseline_version"] == "1"
        assert drifted["out_of_range"] == {"petal_length": 2, "petal_width": 150}
        assert lines[app.url] == (
            f"1 of 4 features over threshold (petal_width psi {psi:.2f} > 0.2), "
            "window 150, baseline v1, values out of training range (petal_length 2, "
            "petal_width 150)"
        )
        # The rest of the report is still there.
        assert lines["mlflow"] == f"{mlflow_server.url} reachable"
        assert lines["champion"].startswith("v1 (")
    finally:
        app.stop()


def test_status_says_why_drift_is_unknown_and_still_reports_the_rest(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    code, lines, report = status(tmp_path, mlflow_server, champion_name, nothing)
    assert code == 0  # MLflow answers; an unreachable inference service is reported only
    assert lines[nothing].startswith("unreachable (ConnectError: ")
    assert report["drift"] == [
        {"endpoint": nothing, "state": "unreachable", "error": report["drift"][0]["error"]}
    ]
    assert lines["champion"].startswith("v1 (")

    # Up but serving nothing yet: the service's own answer is shown.
    app = start_app(tmp_path, mlflow_server.url, "no-such-model", wait_ready=False)
    try:
        code, lines, report = status(tmp_path, mlflow_server, champion_name, app.url)
        assert code == 0
        assert lines[app.url] == "error (answered 503: no model is loaded yet)"
        assert report["drift"][0]["state"] == "error"
    finally:
        app.stop()


def _host_address() -> str | None:
    """This machine's address on its default route (no packet is sent): the API server's pod
    proxy refuses loopback pod IPs."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    missing = [b for b in ("kube-apiserver", "etcd") if not (KUBE_BIN / b).is_file()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found in {KUBE_BIN}: run `make control-kube-bin`",
            pytrace=False,
        )
    api = start_kube_api(tmp_path / "kube", {})
    yield api
    api.stop()


def test_status_reads_version_and_drift_of_each_inference_pod_through_the_pod_proxy(
    mlflow_server: Process, champion_name: str, kube_api: KubeApi, tmp_path: Path
) -> None:
    from kubernetes import client, config

    address = _host_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address to give the pod")
    # What start_app starts, on the address the pod proxy may reach.
    port = free_port()
    url = f"http://{address}:{port}"
    app = start(
        [sys.executable, "-m", "app", "--host", address, "--port", str(port)],
        tmp_path / "app.log",
        url,
        env={
            "MLFLOW_TRACKING_URI": mlflow_server.url,
            "MLSTACK_MODEL_NAME": champion_name,
            "MLSTACK_CACHE_DIR": str(tmp_path / "cache"),
            "MLSTACK_DRIFT_MIN_ROWS": "20",
        },
    )
    try:
        wait_until(lambda: http_status(f"{url}/readyz") == 200, 60, f"service ready on {url}")
        predict(url, load_iris().data.tolist()[:7])

        kubeconfig = kube_api.kubeconfig(tmp_path / "admin", "admin", "ml")
        core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="ml")))
        core.create_namespaced_service_account(
            "ml", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
        )
        labels = {"app.kubernetes.io/component": "inference", "app.kubernetes.io/instance": "r"}
        port_spec = client.V1ContainerPort(name="http", container_port=port)
        container = client.V1Container(name="inference", image="x", ports=[port_spec])
        core.create_namespaced_pod(
            "ml",
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="r-inference-0", labels=labels),
                spec=client.V1PodSpec(containers=[container]),
            ),
        )
        # No kubelet: play its part, the pod runs at this machine's address.
        core.patch_namespaced_pod_status(
            "r-inference-0",
            "ml",
            {
                "status": {
                    "phase": "Running",
                    "podIP": address,
                    "podIPs": [{"ip": address}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
        )

        code, lines, report = status(
            tmp_path,
            mlflow_server,
            champion_name,
            None,
            KUBECONFIG=str(kubeconfig),
            MLSTACK_CONTROL_NAMESPACE="ml",
        )
        assert code == 0
        assert report["cluster"]["inference_pods"] == [
            {"name": "r-inference-0", "ready": True, "model_version": "1"}
        ]
        assert lines["r-inference-0"] == "ready, serving v1"
        assert report["drift"][0]["endpoint"] == "pod/r-inference-0"
        assert report["drift"][0]["state"] == "warming_up"
        assert lines["pod/r-inference-0"] == "not enough data yet (7 of 20 rows), baseline v1"
    finally:
        app.stop()
