"""The ways users use mlstack, on a real kind cluster, in order."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e import kube
from tests.e2e.conftest import values_files
from training import contract

NS = kube.NAMESPACE
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
TAG_1, TAG_2 = "e2e-1", "e2e-2"
POLL_SECONDS = 5  # values-e2e.yaml
ENTRYPOINT = "mlstack.io/training-entrypoint"
ROLES = ("inference", "training", "tracking-server")


def _base_image() -> str:
    offline = "mlstack/python-base:3.11-bookworm"
    probe = subprocess.run(["docker", "image", "inspect", offline], capture_output=True)
    return offline if probe.returncode == 0 else "python:3.11-slim-bookworm"


def _helm_values(*extra: str) -> list[str]:
    args = []
    for path in values_files():
        args += ["--values", str(path)]
    return [*args, *extra]


def _image_tags(tag: str, tracking: str | None = None) -> list[str]:
    """`--set` flags giving the inference and training images `tag`, MLflow's `tracking`."""
    return [
        *("--set", f"image.inference.tag={tag}"),
        *("--set", f"image.training.tag={tag}"),
        *("--set", f"image.trackingServer.tag={tracking or tag}"),
    ]


def _inference_pods() -> list[dict[str, Any]]:
    return kube.get("pod", selector="app.kubernetes.io/component=inference")["items"]


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def _deployment(component: str) -> dict[str, Any]:
    return kube.get("deployment", selector=f"app.kubernetes.io/component={component}")["items"][0]


def _service(component: str) -> tuple[str, int]:
    service = kube.get("service", selector=f"app.kubernetes.io/component={component}")["items"][0]
    return service["metadata"]["name"], int(service["spec"]["ports"][0]["port"])


MLFLOW_AUTH_SECRET = f"{kube.RELEASE}-mlflow-auth"


def _admin() -> Any:
    """MLflow's admin account, from the Secret the chart generated, for the block."""
    return kube.mlflow_account("admin", kube.secret_value(MLFLOW_AUTH_SECRET, "admin-password"))


def _registry() -> dict[str, Any]:
    """Runs, versions and aliases of the registered model, read through a port-forward."""
    from mlflow import MlflowClient

    name, port = _service("mlflow")
    with _admin(), kube.port_forward(f"svc/{name}", port, probe="/health") as url:
        client = MlflowClient(url)
        model = client.get_registered_model("mlstack-classifier")
        versions = sorted(
            int(v.version) for v in client.search_model_versions("name = 'mlstack-classifier'")
        )
        experiment = client.get_experiment_by_name("mlstack")
        runs = sorted(r.info.run_id for r in client.search_runs([experiment.experiment_id]))
        return {"aliases": dict(model.aliases), "versions": versions, "runs": runs}


def _ready_since() -> dict[str, str]:
    """Inference pod → when its Ready condition last changed."""
    return {
        p["metadata"]["name"]: next(
            c["lastTransitionTime"] for c in p["status"]["conditions"] if c["type"] == "Ready"
        )
        for p in _inference_pods()
    }


def _pod_versions() -> dict[str, str]:
    out = {}
    for pod in _inference_pods():
        if pod["metadata"].get("deletionTimestamp") or not _ready(pod):
            continue
        name = pod["metadata"]["name"]
        with kube.port_forward(f"pod/{name}", 8080, probe="/livez") as url:
            out[name] = str(httpx.get(f"{url}/model", timeout=10).json()["version"])
    return out


def test_1_helm_install(figures: dict[str, Any]) -> None:
    base = _base_image()
    for tag in (TAG_1,):
        kube.run(
            ["make", "-C", str(kube.ROOT), "images", f"BASE_IMAGE={base}", f"VERSION={tag}"],
            timeout=1800,
        )
        # The images' configuration and files, on the very images this suite deploys.
        output = kube.run(
            ["make", "-C", str(kube.ROOT), "image-check-built", f"IMAGE_CHECK_TAG={tag}"],
            timeout=900,
        )
        figures["image_check"] = next(
            line.strip() for line in reversed(output.splitlines()) if " passed" in line
        )
        figures["image_sizes_mb"] = {
            role: round(
                int(kube.run(["docker", "image", "inspect", "-f", "{{.Size}}", image])) / 1e6
            )
            for role, image in ((r, f"mlstack-{r}:{tag}") for r in ROLES)
        }
        kube.run(
            ["make", "-C", str(kube.ROOT), "load", f"CLUSTER={kube.CLUSTER}", f"VERSION={tag}"],
            timeout=600,
        )
    if kube.kubectl("get", "namespace", NS, check=False).strip():
        kube.kubectl("delete", "namespace", NS, "--wait=true", timeout=600)
    kube.create_restricted_namespace(NS)
    started = time.monotonic()
    kube.helm(
        "upgrade",
        "--install",
        kube.RELEASE,
        str(kube.ROOT / "charts/mlstack"),
        "--namespace",
        NS,
        *_helm_values(*_image_tags(TAG_1)),
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "15m",
    )
    figures["install_seconds"] = round(time.monotonic() - started, 1)

    mlflow_pods = kube.get("pod", selector="app.kubernetes.io/component=mlflow")["items"]
    assert mlflow_pods and all(_ready(p) for p in mlflow_pods)
    jobs = kube.get("job", selector="app.kubernetes.io/component=training")["items"]
    assert jobs and jobs[0]["status"].get("succeeded") == 1
    accounts = kube.get("job", selector="app.kubernetes.io/component=mlflow-accounts")["items"]
    assert accounts and accounts[0]["status"].get("succeeded") == 1
    labels = json.loads(kube.kubectl("get", "namespace", NS, "-o", "json"))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # Every pod of the release was admitted under it.
    pods = kube.get("pod", selector=f"app.kubernetes.io/instance={kube.RELEASE}")["items"]
    figures["restricted_namespace_pods"] = sorted(
        {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods}
    )
    registry = _registry()
    assert contract.ALIAS_CHAMPION in registry["aliases"]
    deployment = _deployment("inference")
    assert deployment["status"].get("availableReplicas", 0) >= 1
    output = kube.helm("test", kube.RELEASE, "--namespace", NS, "--timeout", "5m")
    assert "Phase:          Succeeded" in output or "Phase: Succeeded" in output.replace("  ", " ")


def test_2_port_forward_then_curl() -> None:
    name, port = _service("inference")
    champion = _registry()["aliases"][contract.ALIAS_CHAMPION]
    with kube.port_forward(f"svc/{name}", port, probe="/livez") as url:
        ok = httpx.post(f"{url}/predict", json=SETOSA, timeout=10)
        assert ok.status_code == 200
        assert ok.json()["model_version"] == str(champion)
        assert ok.headers["x-model-version"] == str(champion)
        bad = httpx.post(f"{url}/predict", json={**SETOSA, "sepal_length": "x"}, timeout=10)
        assert bad.status_code == 422 and "sepal_length" in bad.json()["detail"]
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200 and "mlstack_requests_total" in metrics.text
        _other_protocols_agree_with_predict(url, champion, ok.json()["predictions"][0])


def _other_protocols_agree_with_predict(url: str, champion: int, expected: dict[str, Any]) -> None:
    """The same row through Open Inference Protocol V2 (tritonclient, binary tensors by
    default) and MLflow's /invocations (a body from MLflow's own helper), on the cluster."""
    import numpy as np
    import pandas as pd
    import tritonclient.http as triton
    from mlflow.models import convert_input_example_to_serving_input

    model = httpx.get(f"{url}/model", timeout=10).json()
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        assert client.is_model_ready(model["name"])
        row = np.array([[SETOSA[f] for f in model["features"]]], dtype=np.float32)
        tensor = triton.InferInput("input-0", list(row.shape), "FP32")
        tensor.set_data_from_numpy(row)
        outputs = [triton.InferRequestedOutput(n) for n in ("label", "probabilities")]
        result = client.infer(model["name"], [tensor], outputs=outputs)
    finally:
        client.close()
    assert result.get_response()["model_version"] == str(champion)
    assert result.as_numpy("label").tolist() == [expected["label"].encode()]
    probabilities = dict(
        zip(model["classes"], result.as_numpy("probabilities")[0].tolist(), strict=True)
    )
    assert probabilities == pytest.approx(expected["probabilities"], abs=1e-6)

    frame = pd.DataFrame([SETOSA])[model["features"]]
    body = convert_input_example_to_serving_input(frame)
    answer = httpx.post(
        f"{url}/invocations",
        content=body,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == str(champion)
    # The round logs pyfunc predict_fn="predict_proba": MLflow answers probabilities.
    [invoked] = answer.json()["predictions"]
    assert dict(zip(model["classes"], invoked, strict=True)) == pytest.approx(
        expected["probabilities"], abs=1e-6
    )


def _prometheus(url: str, query: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_3_monitoring(figures: dict[str, Any]) -> None:
    from tests.chart.monitoring import CHALLENGER_ROW, dashboard_queries

    name, port = _service("inference")
    with kube.port_forward(f"svc/{name}", port, probe="/livez") as app:
        # Traffic: single rows, a batch big enough for drift, and one invalid request.
        for _ in range(50):
            httpx.post(f"{app}/predict", json=SETOSA, timeout=10)
        httpx.post(f"{app}/predict", json={"instances": [SETOSA] * 150}, timeout=10)
        httpx.post(f"{app}/predict", json={"nope": 1}, timeout=10)
    with kube.port_forward(
        f"svc/{kube.PROMETHEUS_SERVICE}",
        9090,
        namespace=kube.MONITORING_NAMESPACE,
        probe="/-/ready",
    ) as prom:

        def target_up() -> bool:
            targets = httpx.get(f"{prom}/api/v1/targets", timeout=10).json()["data"]
            return any(
                t["labels"].get("namespace") == NS
                and t["health"] == "up"
                and "inference" in t["labels"].get("service", "")
                for t in targets["activeTargets"]
            )

        kube.wait_for(target_up, 180, "the inference target to be up in Prometheus")
        kube.wait_for(
            lambda: _prometheus(
                prom, f'mlstack_requests_total{{namespace="{NS}",route="/predict"}}'
            ),
            120,
            "mlstack_requests_total series for the pod",
        )
        series = _prometheus(prom, f'mlstack_request_duration_seconds_bucket{{namespace="{NS}"}}')
        assert series and all(s["metric"].get("pod") for s in series)

        groups = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rule_files = [g for g in groups if NS in g.get("file", "")]
        assert rule_files, f"no rule groups from namespace {NS}: {[g['file'] for g in groups]}"
        figures["prometheus_rule_groups"] = sorted({g["name"] for g in rule_files})

        # The challenger row has data once a challenger is shadowed (scenario 13 checks it).
        every = dashboard_queries(rate_interval="2m", namespace=NS)
        queries = [q for q in every if q.row != CHALLENGER_ROW]

        def empty_panels() -> list[str]:
            return [f"{q.dashboard} / {q.panel}" for q in queries if not _prometheus(prom, q.expr)]

        def all_have_data() -> bool:
            return not empty_panels()

        try:
            kube.wait_for(
                all_have_data, 240, "every dashboard panel query to return data", interval=10
            )
        except TimeoutError:
            pytest.fail(f"panels without data: {empty_panels()}")
        figures["dashboard_queries_with_data"] = len(queries)


def test_4_retraining_hot_swap_with_zero_failures(figures: dict[str, Any]) -> None:
    before = _registry()
    old = before["aliases"][contract.ALIAS_CHAMPION]
    client = kube.start_client_pod("e2e-steady-retrain", seconds=240, rate=20)
    started = time.monotonic()
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "control",
            "train",
            "--namespace",
            NS,
            "--release",
            kube.RELEASE,
            "--timeout",
            "900",
            "--",
            "--candidates",
            "logreg",
        ],
        capture_output=True,
        text=True,
        timeout=1000,
    )
    print(train.stdout[-3000:], train.stderr[-2000:])
    assert train.returncode == 0
    assert "gate: champion" in train.stdout
    finished = time.monotonic()
    after = _registry()
    new = after["aliases"][contract.ALIAS_CHAMPION]
    assert int(new) > int(old)

    def all_pods_on_new() -> bool:
        versions = _pod_versions()
        return bool(versions) and set(versions.values()) == {str(new)}

    kube.wait_for(
        all_pods_on_new, 2 * POLL_SECONDS + 30, f"every inference pod on v{new}", interval=1
    )
    figures["hot_swap_seconds_after_job"] = round(time.monotonic() - finished, 1)
    figures["retraining_job_seconds"] = round(finished - started, 1)
    summary = kube.client_summary(client, 400)
    figures["hot_swap_client"] = summary
    assert summary["sent"] > 0 and summary["failed"] == 0
    assert {str(old), str(new)} <= set(summary["versions"])
    assert all(
        c.get("restartCount", 0) == 0
        for p in _inference_pods()
        for c in p["status"]["containerStatuses"]
    )


def test_5_hpa_scales_out_under_load_and_back(figures: dict[str, Any]) -> None:
    deployment = _deployment("inference")["metadata"]["name"]
    hpa = kube.get("hpa", selector="app.kubernetes.io/component=inference")["items"][0]
    minimum = hpa["spec"]["minReplicas"]
    kube.wait_for(
        lambda: kube.get("hpa", hpa["metadata"]["name"])["status"].get("currentMetrics"),
        180,
        "the HPA to read CPU from metrics-server",
    )
    client = kube.start_client_pod("e2e-load", seconds=150, rate=0, workers=6)

    def scaled_out() -> int:
        replicas = int(kube.get("deployment", deployment)["status"].get("replicas", 0))
        return replicas if replicas > minimum else 0

    peak = kube.wait_for(scaled_out, 200, f"{deployment} to scale above {minimum}", interval=5)
    summary = kube.client_summary(client, 300)
    figures["hpa"] = {
        "min_replicas": minimum,
        "replicas_reached": peak,
        "requests_sent": summary["sent"],
        "failed": summary["failed"],
    }
    kube.wait_for(
        lambda: int(kube.get("deployment", deployment)["spec"]["replicas"]) == minimum,
        300,
        f"{deployment} to scale back to {minimum}",
        interval=5,
    )


def test_6_rolling_update_with_zero_failures(figures: dict[str, Any]) -> None:
    for role in ("inference", "training"):
        kube.run(["docker", "tag", f"mlstack-{role}:{TAG_1}", f"mlstack-{role}:{TAG_2}"])
    kube.run(
        [
            "make",
            "-C",
            str(kube.ROOT),
            "load",
            f"CLUSTER={kube.CLUSTER}",
            f"INFERENCE_IMAGE=mlstack-inference:{TAG_2}",
            f"TRAINING_IMAGE=mlstack-training:{TAG_2}",
            f"TRACKING_IMAGE=mlstack-tracking-server:{TAG_1}",
        ],
        timeout=600,
    )
    client = kube.start_client_pod("e2e-steady-rollout", seconds=150, rate=20)
    time.sleep(10)  # let the client run on the old pods first
    kube.helm(
        "upgrade",
        kube.RELEASE,
        str(kube.ROOT / "charts/mlstack"),
        "--namespace",
        NS,
        *_helm_values(*_image_tags(TAG_2, tracking=TAG_1)),
        "--wait",
        "--timeout",
        "10m",
    )
    deployment = _deployment("inference")["metadata"]["name"]
    kube.kubectl(
        "rollout", "status", f"deployment/{deployment}", "-n", NS, "--timeout=300s", timeout=320
    )
    summary = kube.client_summary(client, 300)
    figures["rolling_update_client"] = summary
    assert summary["sent"] > 0 and summary["failed"] == 0
    pods = [p for p in _inference_pods() if not p["metadata"].get("deletionTimestamp")]
    assert pods and all(
        c["image"].endswith(f":{TAG_2}") for p in pods for c in p["spec"]["containers"]
    )
    # The new pods' image was loaded into the node before: scheduled → ready is the start-up of
    # the slim inference image with the champion already in the registry.
    figures["inference_pod_scheduled_to_ready_seconds"] = {
        p["metadata"]["name"]: _scheduled_to_ready(p) for p in pods
    }


def _scheduled_to_ready(pod: dict[str, Any]) -> float:
    """Seconds from a pod's PodScheduled condition to its Ready one (1 s resolution)."""
    from datetime import datetime

    times = {
        c["type"]: datetime.fromisoformat(c["lastTransitionTime"].replace("Z", "+00:00"))
        for c in pod["status"]["conditions"]
    }
    return (times["Ready"] - times["PodScheduled"]).total_seconds()


def _pod_cpu() -> dict[str, int]:
    """Inference pod → CPU in millicores, as metrics-server (and so the HPA) sees it."""
    raw = kube.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods")
    out = {}
    for item in json.loads(raw)["items"]:
        name = item["metadata"]["name"]
        if "inference" in name:
            usage = item["containers"][0]["usage"]["cpu"]
            value = int(usage.rstrip("nmu") or 0)
            scale = {"n": 1e-6, "u": 1e-3, "m": 1.0}.get(usage[-1], 1000.0)
            out[name] = round(value * scale)
    return out


def test_7_mlflow_restart_keeps_everything(figures: dict[str, Any]) -> None:
    before = _registry()
    ready_before = {p["metadata"]["name"] for p in _inference_pods() if _ready(p)}
    since_before = _ready_since()
    client = kube.start_client_pod("e2e-steady-mlflow", seconds=120, rate=10)
    cpu_before = _pod_cpu()
    mlflow_pod = kube.get("pod", selector="app.kubernetes.io/component=mlflow")["items"][0]
    kube.kubectl(
        "delete", "pod", mlflow_pod["metadata"]["name"], "-n", NS, "--wait=true", timeout=180
    )
    cpu_while_away = _pod_cpu()
    kube.wait_for(
        lambda: any(
            _ready(p)
            for p in kube.get("pod", selector="app.kubernetes.io/component=mlflow")["items"]
        ),
        300,
        "a new MLflow pod to be ready",
    )
    after = _registry()
    assert after == before
    summary = kube.client_summary(client, 300)
    figures["mlflow_restart_client"] = summary
    # What the HPA saw: the service's CPU does not rise while MLflow is away.
    figures["mlflow_restart_inference_cpu_millicores"] = {
        "before": cpu_before,
        "mlflow_away": cpu_while_away,
    }
    assert summary["failed"] == 0
    # The pods that were ready stay ready (an HPA may add one meanwhile: it must become ready).
    since_after = _ready_since()
    for name in ready_before & since_after.keys():
        assert since_after[name] == since_before[name], f"{name} changed readiness"
    pods = [p for p in _inference_pods() if not p["metadata"].get("deletionTimestamp")]
    assert all(
        c.get("restartCount", 0) == 0 for p in pods for c in p["status"]["containerStatuses"]
    )
    kube.wait_for(
        lambda: all(
            _ready(p) for p in _inference_pods() if not p["metadata"].get("deletionTimestamp")
        ),
        120,
        "every inference pod ready once MLflow is back",
    )


def _skaffold(*args: str) -> list[str]:
    """A skaffold command on the repository's skaffold.yaml (built first), with kubectl and the
    pinned tools on PATH and the offline profile where the offline base image is."""
    kube.run([str(kube.ROOT / "hack/e2e/skaffold.sh")], timeout=1800)
    path = f"{kube.ROOT / '.cache/bin'}:{Path(kube.tool('kubectl')).parent}:{os.environ['PATH']}"
    profile = ["--profile", "offline"] if _base_image().startswith("mlstack/") else []
    return [
        *("env", f"PATH={path}", str(kube.ROOT / ".cache/bin/skaffold"), *args),
        *("--filename", str(kube.ROOT / "skaffold.yaml"), *profile),
        *("--kube-context", kube.CONTEXT),
    ]


def _skaffold_inference_pods() -> list[dict[str, Any]]:
    return kube.get("pod", selector="app.kubernetes.io/component=inference", namespace="mlstack")[
        "items"
    ]


def test_8_skaffold_build_and_run(figures: dict[str, Any]) -> None:
    started = time.monotonic()
    output = kube.run(
        _skaffold("run", "--status-check=true", "--port-forward=off"),
        timeout=2400,
    )
    figures["skaffold_run_seconds"] = round(time.monotonic() - started, 1)
    print(output[-2000:])
    pods = _skaffold_inference_pods()
    assert pods and all(_ready(p) for p in pods)
    name = pods[0]["metadata"]["name"]
    with kube.port_forward(f"pod/{name}", 8080, namespace="mlstack", probe="/livez") as url:
        response = httpx.post(f"{url}/predict", json=SETOSA, timeout=10)
        assert response.status_code == 200
    kube.run(_skaffold("delete"), timeout=600)


FORWARDED = re.compile(
    r"Port forwarding service/mlstack-inference in namespace mlstack, remote port 8080 -> "
    r"(http://[0-9.]+:\d+)"
)


def _title(url: str) -> str | None:
    try:
        return str(httpx.get(f"{url}/openapi.json", timeout=5).json()["info"]["title"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def test_8b_skaffold_dev_rebuilds_an_edit_and_cleans_up(figures: dict[str, Any]) -> None:
    """The inner loop: `skaffold dev` deploys and forwards the service; an edit under app/ (the
    OpenAPI title, reverted after) is rebuilt, redeployed and answering through skaffold's own
    port-forward with no manual step; Ctrl-C uninstalls the release."""
    main_py = kube.ROOT / "app" / "main.py"
    original = main_py.read_text()
    assert original.count('title="mlstack inference"') == 1
    edited = f"mlstack inference e2e-{int(time.time())}"
    log = kube.ROOT / ".cache" / "e2e" / "skaffold-dev.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = _skaffold("dev", "--port-forward=user", "--status-check=true", "--cleanup=true")
    started = time.monotonic()
    with log.open("w") as out:
        dev = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = kube.wait_for(
            lambda: (m := FORWARDED.search(log.read_text(errors="replace"))) and m.group(1),
            2400,
            "skaffold dev to forward the inference service",
            interval=2,
        )
        kube.wait_for(
            lambda: _title(url) == "mlstack inference", 600, f"{url} to answer", interval=2
        )
        figures["skaffold_dev_first_answer_seconds"] = round(time.monotonic() - started, 1)
        edit_at = time.monotonic()
        main_py.write_text(original.replace('title="mlstack inference"', f'title="{edited}"'))
        kube.wait_for(
            lambda: _title(url) == edited,
            1800,
            f"the edit under app/ to answer through {url}",
            interval=2,
        )
        figures["skaffold_dev_edit_to_answer_seconds"] = round(time.monotonic() - edit_at, 1)
        response = httpx.post(f"{url}/predict", json=SETOSA, timeout=10)
        assert response.status_code == 200, response.text
    finally:
        main_py.write_text(original)
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=600)
        finally:
            print(log.read_text(errors="replace")[-3000:])
    # Ctrl-C cleaned up: the release and its pods are gone (MLflow's PVC is kept by design).
    assert "mlstack" not in kube.helm("list", "--namespace", "mlstack", "--short").split()
    kube.wait_for(
        lambda: not _skaffold_inference_pods(), 300, "skaffold dev's inference pods to go"
    )
    figures["skaffold_dev_cleanup"] = "release uninstalled, inference pods gone"


def _control_key() -> str:
    secret = kube.get("secret", f"{_service('control')[0]}-api-key")
    return base64.b64decode(secret["data"]["api-key"]).decode()


def test_9_training_job_over_http_then_pods_follow(figures: dict[str, Any]) -> None:
    """POST /v1/training-jobs on the in-cluster control plane → the Job completes → a new version
    is registered → every inference pod serves the champion; the pods' prediction records reach
    the control plane's log."""
    name, port = _service("control")
    headers = {"x-api-key": _control_key()}
    before = _registry()
    with kube.port_forward(f"svc/{name}", port, probe="/livez") as url:
        assert httpx.get(f"{url}/v1/training-jobs", timeout=10).status_code == 401
        refused = httpx.post(
            f"{url}/v1/training-jobs", json={"candidates": ["xgboost"]}, headers=headers, timeout=30
        )
        assert refused.status_code == 422 and "candidates" in refused.text
        started = time.monotonic()
        created = httpx.post(
            f"{url}/v1/training-jobs",
            json={"candidates": ["logreg", "random_forest"]},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        job = created.json()["id"]
        busy = httpx.post(f"{url}/v1/training-jobs", json={}, headers=headers, timeout=30)
        assert busy.status_code == 409  # control.maxTrainingJobs is 1

        def finished() -> dict[str, Any] | None:
            view = httpx.get(f"{url}/v1/training-jobs/{job}", headers=headers, timeout=30).json()
            return view if view["state"] in ("succeeded", "failed") else None

        view = kube.wait_for(finished, 900, f"training Job {job} to finish", interval=2)
        figures["api_training_job_seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps({k: v for k, v in view.items() if k != "log_tail"}))
        assert view["state"] == "succeeded", view["log_tail"]
        version = view["registered_version"]
        assert version and int(version) > max(before["versions"])
        assert view["mlflow_run_id"] and view["decision"]
        if not view["decision"].startswith(contract.ALIAS_CHAMPION):
            # The gate kept the champion: promote the new version through the API instead.
            moved = httpx.put(
                f"{url}/v1/models/mlstack-classifier/aliases/{contract.ALIAS_CHAMPION}",
                json={"version": version},
                headers=headers,
                timeout=30,
            )
            assert moved.status_code == 200, moved.text
        figures["api_training_decision"] = view["decision"]
        assert _registry()["aliases"][contract.ALIAS_CHAMPION] == version
        job_done = time.monotonic()

        def all_pods_on_new() -> bool:
            versions = _pod_versions()
            return bool(versions) and set(versions.values()) == {version}

        kube.wait_for(
            all_pods_on_new, 2 * POLL_SECONDS + 30, f"every inference pod on v{version}", interval=1
        )
        figures["api_hot_swap_seconds"] = round(time.monotonic() - job_done, 1)

        # A prediction on the new version, and a refused one, arrive in the prediction log.
        inference, inference_port = _service("inference")
        with kube.port_forward(f"svc/{inference}", inference_port, probe="/livez") as served:
            assert httpx.post(f"{served}/predict", json=SETOSA, timeout=10).status_code == 200
            bad = httpx.post(f"{served}/predict", json={"sepal_length": "x"}, timeout=10)
            assert bad.status_code == 422

        def logged() -> dict[str, Any] | None:
            page = httpx.get(
                f"{url}/v1/predictions",
                params={"model_version": version, "limit": 500},
                headers=headers,
                timeout=30,
            ).json()
            outcomes = {item["outcome"] for item in page["items"]}
            return page if {"success", "error"} <= outcomes else None

        page = kube.wait_for(logged, 60, f"prediction records of v{version}", interval=1)
        figures["api_prediction_log_rows_for_version"] = page["total"]
        errors = [i for i in page["items"] if i["outcome"] == "error"]
        assert any(i["error_source"] == "validation" and i["status"] == 422 for i in errors)


USER_TRAINING = Path(__file__).with_name("user_training")
USER_IMAGE = f"mlstack-e2e-user-train:{TAG_1}"


def _chart_training_jobs() -> list[dict[str, Any]]:
    """The training Jobs the chart made (not those the control plane or `mlstack train` made)."""
    jobs = kube.get("job", selector="app.kubernetes.io/component=training")["items"]
    return [
        j
        for j in jobs
        if "mlstack/requested-by" not in j["metadata"].get("annotations", {})
        and not j["metadata"].get("deletionTimestamp")
    ]


def _template_entrypoint() -> str:
    # Found as the control plane finds it: the release's ConfigMap carrying `job.yaml` (its
    # name depends on the release name: the chart shortens "mlstack-mlstack-...").
    (configmap,) = [
        c
        for c in kube.get("configmap", selector=f"app.kubernetes.io/instance={kube.RELEASE}")[
            "items"
        ]
        if "job.yaml" in (c.get("data") or {})
    ]
    job = yaml.safe_load(configmap["data"]["job.yaml"])
    return str(job["metadata"]["annotations"][ENTRYPOINT])


def test_10_users_own_training_code_runs_as_the_job_then_serves(figures: dict[str, Any]) -> None:
    """A user's image built FROM the training image with their own train.py (a Pipeline published
    with training.publish.log_classifier) runs as the chart's training Job (training.image and
    training.command, `helm upgrade`) → the Job succeeds and leaves its result as termination
    message → the version is registered and gated → every inference pod serves it. Then
    `helm rollback` returns to the built-in round."""
    training_image = kube.training_image()
    kube.run(
        [
            "docker",
            "build",
            "--build-arg",
            f"TRAINING_IMAGE={training_image}",
            "-t",
            USER_IMAGE,
            str(USER_TRAINING),
        ],
        timeout=600,
    )
    kube.run(
        [
            "make",
            "-C",
            str(kube.ROOT),
            "load",
            f"CLUSTER={kube.CLUSTER}",
            f"INFERENCE_IMAGE=mlstack-inference:{TAG_2}",
            f"TRAINING_IMAGE={USER_IMAGE}",
            f"TRACKING_IMAGE=mlstack-tracking-server:{TAG_1}",
        ],
        timeout=600,
    )
    before = _registry()
    old_champion = before["aliases"][contract.ALIAS_CHAMPION]
    repository, tag = USER_IMAGE.rsplit(":", 1)
    started = time.monotonic()
    kube.helm(
        "upgrade",
        kube.RELEASE,
        str(kube.ROOT / "charts/mlstack"),
        "--namespace",
        NS,
        *_helm_values(
            *_image_tags(TAG_2, tracking=TAG_1),
            "--set",
            f"training.image.repository={repository}",
            "--set",
            f"training.image.tag={tag}",
            # Never pulled: the Job runs only if the loaded image is the one it names.
            "--set",
            "training.image.pullPolicy=Never",
            "--set-json",
            'training.command=["python", "train.py"]',
            "--set-json",
            'training.args=["--seed", "11"]',
        ),
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "15m",
    )
    figures["user_training_upgrade_seconds"] = round(time.monotonic() - started, 1)

    (job,) = _chart_training_jobs()
    name = job["metadata"]["name"]
    assert job["metadata"]["annotations"][ENTRYPOINT] == "custom"
    assert job["status"].get("succeeded") == 1, job["status"]
    assert _template_entrypoint() == "custom"  # what the control plane copies now
    (pod,) = [
        p
        for p in kube.get("pod", selector=f"batch.kubernetes.io/job-name={name}")["items"]
        if p["status"]["phase"] == "Succeeded"
    ]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == USER_IMAGE
    assert container["command"] == ["python", "train.py"]
    assert container["args"] == ["--seed", "11"]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    message = terminated.get("message", "")
    assert message, f"{name} left no termination message: log_classifier wrote no result"
    result = contract.TrainingResult.from_json(message)
    print(f"user training result: {result}")
    figures["user_training_decision"] = f"{result.decision}: {result.reason}"
    assert result.model_name == "mlstack-classifier"
    assert int(result.version) > max(before["versions"])
    log = kube.kubectl("logs", f"pod/{pod['metadata']['name']}", "-n", NS)
    assert f"registered mlstack-classifier v{result.version}" in log

    after = _registry()
    assert int(result.version) in after["versions"]
    assert len(after["runs"]) == len(before["runs"]) + 1  # the script's run, in `mlstack`
    if result.decision == contract.ALIAS_CHAMPION:
        assert after["aliases"][contract.ALIAS_CHAMPION] == result.version
    else:
        # The gate kept the champion, as it would for the round: promote through the API.
        assert result.decision == contract.ALIAS_CHALLENGER, result
        assert after["aliases"][contract.ALIAS_CHAMPION] == old_champion
        control, control_port = _service("control")
        with kube.port_forward(f"svc/{control}", control_port, probe="/livez") as url:
            moved = httpx.put(
                f"{url}/v1/models/mlstack-classifier/aliases/{contract.ALIAS_CHAMPION}",
                json={"version": result.version},
                headers={"x-api-key": _control_key()},
                timeout=30,
            )
            assert moved.status_code == 200, moved.text
        assert _registry()["aliases"][contract.ALIAS_CHAMPION] == result.version

    def all_pods_on_new() -> bool:
        versions = _pod_versions()
        return bool(versions) and set(versions.values()) == {result.version}

    kube.wait_for(
        all_pods_on_new,
        2 * POLL_SECONDS + 30,
        f"every inference pod on the user's v{result.version}",
        interval=1,
    )
    inference, inference_port = _service("inference")
    with kube.port_forward(f"svc/{inference}", inference_port, probe="/livez") as served:
        answer = httpx.post(f"{served}/predict", json=SETOSA, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == result.version
        assert answer.headers["x-model-version"] == result.version

    # Back to the built-in round: the previous revision's Job runs `python -m training` again.
    kube.helm(
        "rollback", kube.RELEASE, "--namespace", NS, "--wait", "--wait-for-jobs", "--timeout", "15m"
    )
    (job,) = _chart_training_jobs()
    assert job["metadata"]["annotations"][ENTRYPOINT] == "round"
    assert job["status"].get("succeeded") == 1, job["status"]
    assert _template_entrypoint() == "round"


PROBE = r"""
import json, socket, sys
results = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            results[target] = "open: " + sock.recv(12).decode(errors="replace")
    except OSError as exc:
        results[target] = f"denied: {type(exc).__name__}"
print(json.dumps(results))
"""


def _probe(name: str, namespace: str, targets: list[str]) -> dict[str, str]:
    script = f"import sys; sys.argv[1:] = {targets!r}\n{PROBE}"
    output = kube.run_script_pod(name, script, namespace)
    return json.loads(output.strip().splitlines()[-1])


def test_11_the_registry_the_network_and_the_pods_are_protected(figures: dict[str, Any]) -> None:
    services = {c: _service(c) for c in ("mlflow", "control", "inference")}
    targets = {c: f"{n}.{NS}.svc:{p}" for c, (n, p) in services.items()}
    # A pod outside the release, in its namespace and in another one: only the service answers.
    outside = f"{NS}-outside"
    if kube.kubectl("get", "namespace", outside, check=False).strip():
        kube.kubectl("delete", "namespace", outside, "--wait=true", timeout=300)
    kube.create_restricted_namespace(outside)
    try:
        seen = {
            "same_namespace": _probe("e2e-outsider", NS, list(targets.values())),
            "other_namespace": _probe("e2e-outsider", outside, list(targets.values())),
        }
    finally:
        kube.kubectl("delete", "namespace", outside, "--wait=false")
    figures["network_policy_probes"] = seen
    for where, results in seen.items():
        assert results[targets["mlflow"]].startswith("denied"), (where, results)
        assert results[targets["control"]].startswith("denied"), (where, results)
        assert results[targets["inference"]].startswith("open: HTTP/1."), (where, results)

    # The namespace refuses a pod that does not meet the restricted standard.
    refused = subprocess.run(
        [kube.tool("kubectl"), "--context", kube.CONTEXT, "run", "e2e-privileged", "-n", NS,
         f"--image={kube.inference_image()}", "--restart=Never",
         '--overrides={"spec": {"containers": [{"name": "e2e-privileged", "image": "'
         + kube.inference_image() + '", "securityContext": {"privileged": true}}]}}',
         "--command", "--", "true"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    figures["privileged_pod_refused"] = refused.stderr.strip()[:300]
    assert refused.returncode != 0 and 'violates PodSecurity "restricted' in refused.stderr

    # The inference pods' own MLflow account reads, and cannot move an alias.
    registry = _registry()
    champion = registry["aliases"][contract.ALIAS_CHAMPION]
    attempt = r"""
import base64, json, os, urllib.request, urllib.error
auth = base64.b64encode(
    f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}".encode()
).decode()
base = os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/registered-models/alias"
def call(method, url, body=None):
    request = urllib.request.Request(url, method=method, data=body, headers={
        "Authorization": "Basic " + auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
read = call("GET", base + "?name=mlstack-classifier&alias=champion")
body = json.dumps({"name": "mlstack-classifier", "alias": "champion", "version": "1"}).encode()
print(json.dumps({"user": os.environ["MLFLOW_TRACKING_USERNAME"], "read": read,
                  "move_alias": call("POST", base, body)}))
"""
    pod = next(p for p in _inference_pods() if _ready(p))["metadata"]["name"]
    output = kube.kubectl("exec", pod, "-n", NS, "--", "python", "-c", attempt)
    account = json.loads(output.strip().splitlines()[-1])
    figures["inference_account_alias_move"] = account
    assert account == {"user": "mlstack-inference", "read": 200, "move_alias": 403}
    assert _registry()["aliases"][contract.ALIAS_CHAMPION] == champion

    # A version whose skops file needs a type outside the allow-list: refused, the champion
    # serves on, and a steady client sees no failure.
    refused_version = _log_untrusted_version()
    client = kube.start_client_pod("e2e-steady-refused", seconds=60, rate=10)
    time.sleep(5)
    _move_champion(refused_version)
    try:

        def refused_everywhere() -> dict[str, Any] | None:
            answers = {}
            for pod in _inference_pods():
                name = pod["metadata"]["name"]
                with kube.port_forward(f"pod/{name}", 8080, probe="/livez") as url:
                    ready = httpx.get(f"{url}/readyz", timeout=10).json()
                    if ready.get("refused", {}).get("version") != refused_version:
                        return None
                    answers[name] = {
                        "serving": httpx.get(f"{url}/model", timeout=10).json()["version"],
                        "refused": ready["refused"]["reason"],
                    }
            return answers

        answers = kube.wait_for(
            refused_everywhere, 2 * POLL_SECONDS + 60, f"v{refused_version} refused", interval=2
        )
    finally:
        _move_champion(champion)
    summary = kube.client_summary(client, 200)
    figures["untrusted_version_refused"] = {"pods": answers, "client": summary}
    for answer in answers.values():
        assert answer["serving"] == champion
        assert "Clip" in answer["refused"] and "allow-list" in answer["refused"]
    assert summary["sent"] > 0 and summary["failed"] == 0
    assert set(summary["versions"]) == {champion}


def _log_untrusted_version() -> str:
    """Log, as the training account, a pipeline holding a type of the tests' own in a skops
    file whose MLmodel claims to trust it; its new version number."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from tests.integration.custom_types import Clip

    iris = load_iris(as_frame=True)
    x = pd.DataFrame(iris.data.values, columns=list(SETOSA))
    pipe = make_pipeline(Clip(), LogisticRegression(max_iter=500)).fit(x, iris.target)
    name, port = _service("mlflow")
    password = kube.secret_value(MLFLOW_AUTH_SECRET, "training-password")
    with (
        kube.mlflow_account("mlstack-training", password),
        kube.port_forward(f"svc/{name}", port, probe="/health") as url,
    ):
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("mlstack-e2e-untrusted")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                pipe,
                name="model",
                registered_model_name="mlstack-classifier",
                signature=infer_signature(x, pipe.predict(x)),
                serialization_format="skops",
                skops_trusted_types=[f"{Clip.__module__}.{Clip.__name__}"],
                pip_requirements=["scikit-learn"],
            )
    return str(info.registered_model_version)


def _move_champion(version: str) -> None:
    """Move champion as the control plane's account does."""
    from mlflow import MlflowClient

    name, port = _service("mlflow")
    password = kube.secret_value(MLFLOW_AUTH_SECRET, "control-password")
    with (
        kube.mlflow_account("mlstack-control", password),
        kube.port_forward(f"svc/{name}", port, probe="/health") as url,
    ):
        MlflowClient(url).set_registered_model_alias(
            "mlstack-classifier", contract.ALIAS_CHAMPION, version
        )


def _round_runs(run_id: str) -> dict[str, Any]:
    """The tags of a round's run and the shard of each of its candidate runs, from MLflow."""
    from mlflow import MlflowClient

    name, port = _service("mlflow")
    with _admin(), kube.port_forward(f"svc/{name}", port, probe="/health") as url:
        client = MlflowClient(url)
        parent = client.get_run(run_id)
        children = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
        )
        return {
            "tags": dict(parent.data.tags),
            "candidates": sorted(
                (c.data.tags[contract.TAG_CANDIDATE], c.data.tags[contract.TAG_SHARD])
                for c in children
            ),
        }


def test_12_a_round_spread_over_two_pods_registers_a_version_every_pod_then_serves(
    figures: dict[str, Any],
) -> None:
    """POST /v1/training-jobs with parallelism 2 → an Indexed Job of two pods, each searching
    its share under one round run → pod 0 registers the best → every inference pod serves it."""
    name, port = _service("control")
    headers = {"x-api-key": _control_key()}
    before = _registry()
    with kube.port_forward(f"svc/{name}", port, probe="/livez") as url:
        started = time.monotonic()
        created = httpx.post(
            f"{url}/v1/training-jobs",
            json={"parallelism": 2, "candidates": ["logreg", "random_forest"]},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        job = created.json()["id"]

        def finished() -> dict[str, Any] | None:
            view = httpx.get(f"{url}/v1/training-jobs/{job}", headers=headers, timeout=30).json()
            return view if view["state"] in ("succeeded", "failed") else None

        view = kube.wait_for(finished, 900, f"training Job {job} to finish", interval=2)
        figures["parallel_training_job_seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps({k: v for k, v in view.items() if k != "log_tail"}))
        assert view["state"] == "succeeded", view["log_tail"]
        spec = kube.get("job", job)["spec"]
        assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
            "Indexed",
            2,
            2,
        )
        pods = kube.get("pod", selector=f"job-name={job}")["items"]
        indexes = sorted(
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods
        )
        assert indexes == ["0", "1"]
        uid = kube.get("job", job)["metadata"]["uid"]
        version = view["registered_version"]
        assert version and int(version) > max(before["versions"])
        runs = _round_runs(view["mlflow_run_id"])
        figures["parallel_training_candidates"] = runs["candidates"]
        assert runs["tags"][contract.TAG_ROUND_ID] == uid
        assert {f"{contract.TAG_SHARD_PREFIX}0", f"{contract.TAG_SHARD_PREFIX}1"} <= set(
            runs["tags"]
        )
        # logreg's 3 points and random_forest's 4, dealt over the two pods: both searched some.
        assert {shard for _, shard in runs["candidates"]} == {"0", "1"}
        if not view["decision"].startswith(contract.ALIAS_CHAMPION):
            moved = httpx.put(
                f"{url}/v1/models/mlstack-classifier/aliases/{contract.ALIAS_CHAMPION}",
                json={"version": version},
                headers=headers,
                timeout=30,
            )
            assert moved.status_code == 200, moved.text
        figures["parallel_training_decision"] = view["decision"]
        job_done = time.monotonic()

        def all_pods_on_new() -> bool:
            versions = _pod_versions()
            return bool(versions) and set(versions.values()) == {version}

        kube.wait_for(
            all_pods_on_new, 2 * POLL_SECONDS + 30, f"every inference pod on v{version}", interval=1
        )
        figures["parallel_hot_swap_seconds"] = round(time.monotonic() - job_done, 1)


# Polls every inference pod's GET /model from inside the cluster and prints each change of the
# version it serves, with the time (the node's clock, which the test host shares).
SWAP_PROBE = r"""
import json, sys, time, urllib.request
urls, seconds = json.loads(sys.argv[1]), float(sys.argv[2])
last, changes, end = {}, [], time.time() + seconds
while time.time() < end:
    for url in urls:
        try:
            with urllib.request.urlopen(url + "/model", timeout=2) as response:
                version = json.loads(response.read())["version"]
        except Exception:
            continue
        if last.get(url) != version:
            last[url] = version
            changes.append([time.time(), url, version])
    time.sleep(0.02)
print(json.dumps(changes))
"""


def _pod_models() -> dict[str, dict[str, Any]]:
    """Each ready inference pod's GET /model."""
    out = {}
    for pod in _inference_pods():
        if pod["metadata"].get("deletionTimestamp") or not _ready(pod):
            continue
        name = pod["metadata"]["name"]
        with kube.port_forward(f"pod/{name}", 8080, probe="/livez") as url:
            out[name] = httpx.get(f"{url}/model", timeout=10).json()
    return out


def _upgrade(*settings: str) -> float:
    """`helm upgrade --reuse-values` with `--set` settings, as a user changes one value; its
    seconds."""
    started = time.monotonic()
    sets = [arg for setting in settings for arg in ("--set", setting)]
    kube.helm(
        "upgrade", kube.RELEASE, str(kube.ROOT / "charts/mlstack"), "--namespace", NS,
        "--reuse-values", *sets, "--wait", "--timeout", "10m",
    )  # fmt: skip
    return round(time.monotonic() - started, 1)


def _every_pod(check: Any, what: str, timeout: float = 240) -> float:
    """Wait until `check(model)` holds on every ready inference pod; the seconds it took."""
    started = time.monotonic()
    kube.wait_for(
        lambda: (models := _pod_models()) and all(check(m) for m in models.values()),
        timeout,
        what,
        interval=3,
    )
    return round(time.monotonic() - started, 1)


def _swap_delays(changes: list[list[Any]], moves: list[tuple[float, str]], urls: list[str]) -> list:
    """Per alias move: the seconds until the last pod served the version moved to (None when a
    pod never did before the next move)."""
    delays: list[float | None] = []
    for index, (moved, version) in enumerate(moves):
        until = moves[index + 1][0] if index + 1 < len(moves) else float("inf")
        per_pod = []
        for url in urls:
            seen = [t for t, u, v in changes if u == url and v == version and moved <= t < until]
            per_pod.append(min(seen) - moved if seen else None)
        delays.append(None if None in per_pod else round(max(per_pod), 3))  # type: ignore[type-var]
    return delays


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def test_13_the_challenger_shadowed_then_a_canary_then_a_swap_pushed_by_the_registry(
    figures: dict[str, Any],
) -> None:
    """A round the gate keeps out of champion becomes the challenger → shadowed on every
    request by a `helm upgrade` that restarts nothing, its agreement in Prometheus and the
    prediction log → a 20% canary that another `helm upgrade` ends → alias moves pushed by
    MLflow's webhook to every pod, timed beside polling alone. One steady client throughout."""
    from mlflow import MlflowClient

    from tests.chart.monitoring import CHALLENGER_ROW, dashboard_queries

    control, control_port = _service("control")
    headers = {"x-api-key": _control_key()}
    with kube.port_forward(f"svc/{control}", control_port, probe="/livez") as url:
        created = httpx.post(
            f"{url}/v1/training-jobs", json={"candidates": ["baseline"]}, headers=headers,
            timeout=30,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        job = created.json()["id"]

        def finished() -> dict[str, Any] | None:
            view = httpx.get(f"{url}/v1/training-jobs/{job}", headers=headers, timeout=30).json()
            return view if view["state"] in ("succeeded", "failed") else None

        view = kube.wait_for(finished, 900, f"training Job {job} to finish", interval=2)
    assert view["state"] == "succeeded", view["log_tail"]
    assert view["decision"].startswith(contract.ALIAS_CHALLENGER), view["decision"]
    challenger = str(view["registered_version"])
    champion = str(_registry()["aliases"][contract.ALIAS_CHAMPION])
    figures["challenger"] = {"champion": champion, "challenger": challenger}

    pods_before = sorted(p["metadata"]["name"] for p in _inference_pods())
    client = kube.start_client_pod("e2e-steady-challenger", seconds=1800, rate=10)

    # Shadow every request: the traffic ConfigMap changes, the pods stay.
    figures["shadow_upgrade_seconds"] = _upgrade(
        "inference.shadow.percent=100", "inference.canary.percent=0"
    )
    figures["shadow_on_after_upgrade_seconds"] = _every_pod(
        lambda m: (
            (m["shadow"] or {}).get("version") == challenger
            and m["shadow"]["shadow_percent"] == 100
        ),
        f"every pod shadowing v{challenger} on every request",
    )
    # No rollout: every pod from before still serves, never restarted (the autoscaler may add
    # pods under the shadow's load).
    assert set(pods_before) <= {p["metadata"]["name"] for p in _inference_pods()}
    assert all(
        c.get("restartCount", 0) == 0
        for p in _inference_pods()
        for c in p["status"]["containerStatuses"]
    )

    pair = f'namespace="{NS}", live_version="{champion}", shadow_version="{challenger}"'
    with kube.port_forward(
        f"svc/{kube.PROMETHEUS_SERVICE}", 9090, namespace=kube.MONITORING_NAMESPACE,
        probe="/-/ready",
    ) as prom:  # fmt: skip

        def shadowed_rows() -> float:
            result = _prometheus(prom, f"sum(mlstack_shadow_rows_total{{{pair}}})")
            return float(result[0]["value"][1]) if result else 0.0

        kube.wait_for(lambda: shadowed_rows() >= 200, 240, "200 shadowed rows in Prometheus")
        [agreement] = _prometheus(
            prom,
            f"sum(mlstack_shadow_agreed_rows_total{{{pair}}}) "
            f"/ sum(mlstack_shadow_rows_total{{{pair}}})",
        )
        figures["shadow_agreement_prometheus"] = {
            "rows": shadowed_rows(),
            "agreement": round(float(agreement["value"][1]), 4),
        }
        every = dashboard_queries(rate_interval="2m", namespace=NS)
        queries = [q for q in every if q.row == CHALLENGER_ROW]
        assert queries

        def empty() -> list[str]:
            return [q.panel for q in queries if not _prometheus(prom, q.expr)]

        try:
            kube.wait_for(lambda: not empty(), 180, "the challenger row's panels", interval=10)
        except TimeoutError:
            pytest.fail(f"challenger panels without data: {empty()}")
    with kube.port_forward(f"svc/{control}", control_port, probe="/livez") as url:
        logged = httpx.get(
            f"{url}/v1/predictions/agreement",
            params={"model_version": challenger, "live_version": champion},
            headers=headers,
            timeout=30,
        ).json()
        assert logged["rows"] > 0, logged
        figures["shadow_agreement_prediction_log"] = logged
        # The promotion bar refuses a challenger shadowed on fewer rows than it asks for.
        refused = httpx.put(
            f"{url}/v1/models/mlstack-classifier/aliases/{contract.ALIAS_CHAMPION}",
            json={"version": challenger, "min_agreement": 0.5, "min_rows": logged["rows"] + 10**6},
            headers=headers,
            timeout=30,
        )
        assert refused.status_code == 409 and "--min-rows" in refused.text, refused.text
        assert str(_registry()["aliases"][contract.ALIAS_CHAMPION]) == champion

    # A 20% canary, then a `helm upgrade` to 0 ends it.
    figures["canary_upgrade_seconds"] = _upgrade("inference.canary.percent=20")
    figures["canary_on_after_upgrade_seconds"] = _every_pod(
        lambda m: m["shadow"]["canary_percent"] == 20, "every pod at a 20% canary"
    )
    canary = kube.client_summary(kube.start_client_pod("e2e-canary", seconds=40, rate=20), 120)
    share = canary["versions"].get(challenger, 0) / canary["sent"]
    figures["canary_20_client"] = {**canary, "challenger_share": round(share, 3)}
    assert canary["failed"] == 0 and set(canary["versions"]) == {champion, challenger}
    assert 0.1 <= share <= 0.3, share  # 20% of ~800 requests: 5 standard deviations ≈ ±7%
    figures["canary_off_upgrade_seconds"] = _upgrade("inference.canary.percent=0")
    figures["canary_off_after_upgrade_seconds"] = _every_pod(
        lambda m: m["shadow"]["canary_percent"] == 0, "every pod with the canary ended"
    )
    after = kube.client_summary(kube.start_client_pod("e2e-canary-off", seconds=20, rate=20), 90)
    figures["canary_0_client"] = after
    assert after["failed"] == 0 and set(after["versions"]) == {champion}
    assert set(pods_before) <= {p["metadata"]["name"] for p in _inference_pods()}

    # Alias moves pushed by the webhook, then with its delivery disabled (polling alone).
    urls = [
        f"http://{p['status']['podIP']}:8080" for p in _inference_pods() if _ready(p)
    ]  # fmt: skip
    pushed, polled, spacing = 6, 4, 8.0
    probe_seconds = 30 + (pushed + polled) * spacing + 20
    kube.start_script_pod("e2e-swap-probe", SWAP_PROBE, NS, json.dumps(urls), str(probe_seconds))
    kube.wait_for(
        lambda: kube.get("pod", "e2e-swap-probe")["status"]["phase"] == "Running",
        120,
        "the swap probe to run",
    )
    mlflow, mlflow_port = _service("mlflow")
    moves: list[tuple[float, str]] = []
    with _admin(), kube.port_forward(f"svc/{mlflow}", mlflow_port, probe="/health") as registry:
        mlflow_client = MlflowClient(registry)
        [hook] = [w for w in mlflow_client.list_webhooks() if w.name == "mlstack"]
        figures["webhook"] = {"url": hook.url, "events": [str(e) for e in hook.events]}
        time.sleep(5)  # the probe has seen every pod's version
        targets = [challenger, champion] * ((pushed + polled) // 2)
        for index, version in enumerate(targets):
            if index == pushed:
                mlflow_client.update_webhook(hook.webhook_id, status="DISABLED")
                time.sleep(12)  # MLflow's webhook cache (webhooks.cacheTtlSeconds, 10 s)
            moved = time.time()
            mlflow_client.set_registered_model_alias(
                "mlstack-classifier", contract.ALIAS_CHAMPION, version
            )
            moves.append((moved, version))
            time.sleep(spacing)
        mlflow_client.update_webhook(hook.webhook_id, status="ACTIVE")
    changes = json.loads(kube.script_output("e2e-swap-probe", NS, probe_seconds + 120))
    delays = _swap_delays(changes, moves, urls)
    with_webhook, polling = delays[:pushed], delays[pushed:]
    figures["swap_seconds"] = {
        "pods": len(urls),
        "poll_seconds": POLL_SECONDS,
        "webhook": with_webhook,
        "polling": polling,
    }
    assert None not in delays, delays
    figures["swap_seconds"]["webhook_p95"] = _p95(with_webhook)  # type: ignore[arg-type]
    figures["swap_seconds"]["polling_p95"] = _p95(polling)  # type: ignore[arg-type]
    assert _registry()["aliases"][contract.ALIAS_CHAMPION] == champion  # the last move

    kube.stop_client_pod(client)
    summary = kube.client_summary(client, 120)
    figures["challenger_steady_client"] = summary
    assert summary["sent"] > 0 and summary["failed"] == 0
    assert {champion, challenger} <= set(summary["versions"])
