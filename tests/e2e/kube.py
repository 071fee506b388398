"""Cluster helpers for the end-to-end suite: commands, bounded waits, port-forwards, and
in-cluster client pods. Every wait prints what it waits for."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from devsupport.processes import free_port, http_status

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = os.environ.get("CLUSTER", "mlstack")
CONTEXT = os.environ.get("KUBE_CONTEXT", f"kind-{CLUSTER}")
NAMESPACE = os.environ.get("NAMESPACE", "mlstack-e2e")
RELEASE = os.environ.get("RELEASE", "mlstack")
MONITORING_NAMESPACE = os.environ.get("MONITORING_NAMESPACE", "monitoring")
PROMETHEUS_SERVICE = os.environ.get("PROMETHEUS_SERVICE", "kube-prometheus-stack-prometheus")


def tool(name: str) -> str:
    """A pinned tool: .cache/bin, then the offline cache's bin (OFFLINE_CACHE moves it, as it
    does for hack/offline), then PATH."""
    offline = Path(os.environ.get("OFFLINE_CACHE") or ROOT / ".cache/offline") / "bin"
    for candidate in (ROOT / ".cache/bin" / name, offline / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make chart-tools` or `make cluster-offline`")
    return found


def run(cmd: list[str], timeout: float = 600, check: bool = True) -> str:
    print(f"$ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{cmd[0]} failed ({result.returncode}):\n{result.stdout[-2000:]}"
            f"\n{result.stderr[-3000:]}"
        )
    return result.stdout


def kubectl(*args: str, timeout: float = 120, check: bool = True) -> str:
    return run([tool("kubectl"), "--context", CONTEXT, *args], timeout=timeout, check=check)


def secret_value(name: str, key: str) -> str:
    """One key of a Secret in the e2e namespace, decoded."""
    import base64

    data = get("secret", name)["data"]
    return base64.b64decode(data[key]).decode()


@contextlib.contextmanager
def mlflow_account(username: str, password: str) -> Iterator[None]:
    """MLflow's client (and `mlstack`) use this account inside the block."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_restricted_namespace(name: str) -> None:
    """A namespace that admits only pods meeting the restricted Pod Security Standard."""
    kubectl("create", "namespace", name)
    kubectl(
        "label",
        "namespace",
        name,
        *(f"pod-security.kubernetes.io/{m}=restricted" for m in ("enforce", "warn", "audit")),
    )


def helm(*args: str, timeout: float = 900) -> str:
    return run([tool("helm"), "--kube-context", CONTEXT, *args], timeout=timeout)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
    """Poll until `check` returns something truthy (returned); bounded by `timeout`."""
    print(f"waiting up to {timeout:g} s for {what}", flush=True)
    started = time.monotonic()
    while True:
        try:
            value = check()
        except Exception as exc:  # the object may not exist yet
            value, error = None, exc
        else:
            error = None
        if value:
            print(f"  {what}: done after {time.monotonic() - started:.0f} s", flush=True)
            return value
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"timed out after {timeout:g} s waiting for {what}"
                + (f" (last error: {error})" if error else "")
            )
        time.sleep(interval)


def get(kind: str, name: str = "", namespace: str = NAMESPACE, selector: str = "") -> Any:
    args = ["get", kind, "-n", namespace, "-o", "json"]
    if name:
        args.insert(2, name)
    if selector:
        args += ["-l", selector]
    return json.loads(kubectl(*args))


@contextlib.contextmanager
def port_forward(
    target: str, remote_port: int, namespace: str = NAMESPACE, probe: str = "/"
) -> Iterator[str]:
    """`kubectl port-forward` to a free local port; yields the base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            tool("kubectl"),
            "--context",
            CONTEXT,
            "-n",
            namespace,
            "port-forward",
            target,
            f"{port}:{remote_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: http_status(url + probe) is not None,
            60,
            f"port-forward {target} → {url}",
            interval=0.5,
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def inference_image() -> str:
    """The inference pods' image: Python and its standard library, no shell."""
    deployment = get("deployment", selector="app.kubernetes.io/component=inference")["items"][0]
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def training_image() -> str:
    """The built-in round's image, as the control plane's Job template names it."""
    template = get("configmap", selector="app.kubernetes.io/component=training")["items"][0]
    job = yaml.safe_load(template["data"]["job.yaml"])
    return str(job["spec"]["template"]["spec"]["containers"][0]["image"])


STEADY_CLIENT = r"""
import json, signal, sys, time, urllib.request, urllib.error
url, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
# SIGTERM (stop_client_pod) ends the run early, with its summary.
signal.signal(signal.SIGTERM, lambda *_: globals().update(end=0.0))
body = json.dumps({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                   "petal_width": 0.2}).encode()
sent, failed, statuses, versions, errors = 0, 0, {}, {}, []
end = time.monotonic() + seconds
while time.monotonic() < end:
    started = time.monotonic()
    request = urllib.request.Request(url + "/predict", data=body,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
            version = response.headers.get("x-model-version", "?")
            versions[version] = versions.get(version, 0) + 1
    except urllib.error.HTTPError as exc:
        status = exc.code
    except Exception as exc:
        status = 0
        errors.append(repr(exc)[:200])
    sent += 1
    statuses[str(status)] = statuses.get(str(status), 0) + 1
    if status != 200:
        failed += 1
    if rate > 0:
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - started)))
print(json.dumps({"sent": sent, "failed": failed, "statuses": statuses,
                  "versions": versions, "errors": errors[:10]}))
"""


CLIENT_WORKERS = r"""
import signal, subprocess, sys
workers, script, *args = sys.argv[1:]
procs = [subprocess.Popen([sys.executable, "-c", script, *args]) for _ in range(int(workers))]
signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in procs])
sys.exit(max(p.wait() for p in procs))
"""


def stop_client_pod(name: str) -> None:
    """End a client pod's run now: its workers stop and print their summaries."""
    kubectl(
        "exec", name, "-n", NAMESPACE, "--", "python", "-c",
        "import os, signal; os.kill(1, signal.SIGTERM)",
    )  # fmt: skip


def start_client_pod(name: str, seconds: float, rate: float, workers: int = 1) -> str:
    """A pod (inference image: it has Python) sending steady /predict requests to the
    inference Service for `seconds`, printing a JSON summary per worker at the end."""
    service = get("service", selector="app.kubernetes.io/component=inference")["items"][0]
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}"
    kubectl("delete", "pod", name, "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    # The inference image has no shell: Python starts the workers and waits for them.
    overrides = _restricted_pod(
        name,
        ["python", "-c", CLIENT_WORKERS, str(workers), STEADY_CLIENT, url, str(seconds), str(rate)],
    )
    kubectl(
        "run",
        name,
        "-n",
        NAMESPACE,
        "--restart=Never",
        f"--image={inference_image()}",
        f"--overrides={json.dumps(overrides)}",
        "--labels=app=mlstack-e2e-client",
    )
    wait_for(
        lambda: get("pod", name)["status"]["phase"] in ("Running", "Succeeded"),
        120,
        f"client pod {name} to start",
    )
    return name


def _restricted_pod(name: str, command: list[str]) -> dict[str, Any]:
    """The overrides of a pod meeting the restricted Pod Security Standard."""
    return {
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": name,
                    "image": inference_image(),
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        }
    }


def start_script_pod(name: str, script: str, namespace: str, *args: str) -> None:
    """Start a Python script (with `args`) in a pod of its own (inference image, no release
    labels); `script_output` waits for its end."""
    kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=true")
    overrides = _restricted_pod(name, ["python", "-c", script, *args])
    kubectl(
        "run",
        name,
        "-n",
        namespace,
        "--restart=Never",
        f"--image={inference_image()}",
        f"--overrides={json.dumps(overrides)}",
        "--labels=app=mlstack-e2e-outsider",
    )


def run_script_pod(name: str, script: str, namespace: str, timeout: float = 180) -> str:
    """Run a Python script in a pod of its own (inference image, no release labels) to its end;
    its output. The pod is deleted afterwards."""
    start_script_pod(name, script, namespace)
    return script_output(name, namespace, timeout)


def script_output(name: str, namespace: str, timeout: float) -> str:
    """The output of a script pod once it has finished; the pod is deleted afterwards."""
    try:
        wait_for(
            lambda: (
                get("pod", name, namespace=namespace)["status"]["phase"] in ("Succeeded", "Failed")
            ),
            timeout,
            f"pod {namespace}/{name} to finish",
        )
        return kubectl("logs", name, "-n", namespace)
    finally:
        kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=false")


def client_summary(name: str, timeout: float) -> dict[str, Any]:
    """Wait for a client pod to finish and add up its workers' summaries."""
    wait_for(
        lambda: get("pod", name)["status"]["phase"] in ("Succeeded", "Failed"),
        timeout,
        f"client pod {name} to finish",
    )
    total: dict[str, Any] = {"sent": 0, "failed": 0, "statuses": {}, "versions": {}, "errors": []}
    # Workers print concurrently: their JSON objects may share a line, so decode a stream.
    text, decoder, position = kubectl("logs", name, "-n", NAMESPACE), json.JSONDecoder(), 0
    while (start := text.find("{", position)) != -1:
        part, position = decoder.raw_decode(text, start)
        total["sent"] += part["sent"]
        total["failed"] += part["failed"]
        total["errors"] += part["errors"]
        for key in ("statuses", "versions"):
            for k, v in part[key].items():
                total[key][k] = total[key].get(k, 0) + v
    print(f"client {name}: {json.dumps(total)}", flush=True)
    if total["sent"] == 0:
        raise RuntimeError(
            f"client pod {name} sent nothing:\n{kubectl('logs', name, '-n', NAMESPACE)}"
        )
    return total
