"""Starting and stopping the real processes the tests run against."""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

from devsupport.processes import (
    Postgres,
    Process,
    free_port,
    http_status,
    start,
    start_mlflow,
    start_postgres,
    wait_until,
)
from tests import leaks

__all__ = [
    "KUBE_BIN",
    "KubeApi",
    "Postgres",
    "Process",
    "free_port",
    "http_status",
    "metric_samples",
    "start_app",
    "start_control",
    "start_kube_api",
    "start_mlflow",
    "start_postgres",
    "train_model",
    "wait_until",
]


def train_model(tracking_uri: str, name: str, *args: str) -> None:
    """Run a real training round (`python -m training`) and fail with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "training", "--model-name", name, "--experiment", name, *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"training failed ({result.returncode}):\n{result.stderr[-3000:]}")


@dataclass
class Service(Process):
    """An inference service or a control plane the tests started: registered with the leak
    check (`tests/leaks.py`), which keeps its /metrics just before it stops."""

    def stop(self) -> None:
        if self.proc.poll() is None:
            leaks.LEDGER.scrape(self.url)
        super().stop()


def _service(cmd: list[str], log: Path, url: str, env: dict[str, str]) -> Service:
    leaks.LEDGER.register(log, url, {**os.environ, **env})
    process = start(cmd, log, url, env=env)
    return Service(process.proc, process.log, process.url)


def start_app(
    directory: Path,
    tracking_uri: str,
    model_name: str,
    wait_ready: bool = True,
    env: dict[str, str] | None = None,
) -> Process:
    """A real uvicorn process: `python -m app` on a free port, following model_name@champion."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    process = _service(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
        directory / f"app-{port}.log",
        url,
        env={
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLSTACK_MODEL_NAME": model_name,
            "MLSTACK_CACHE_DIR": str(directory / "cache"),
            "MLSTACK_POLL_SECONDS": "1",
            "MLSTACK_RETRY_MAX_SECONDS": "2",
            **(env or {}),
        },
    )
    try:
        wait_until(lambda: http_status(f"{url}/livez") == 200, 60, f"service live on {url}")
        if wait_ready:
            wait_until(lambda: http_status(f"{url}/readyz") == 200, 60, f"service ready on {url}")
    except TimeoutError:
        process.stop()
        raise TimeoutError(f"service did not start:\n{process.output()[-3000:]}") from None
    return process


def start_control(
    directory: Path,
    tracking_uri: str,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> Process:
    """A real control plane (`python -m control serve`, or `command` plus `--port PORT`) on a
    free port, ready: its database migrated. The prediction log is SQLite under `directory`
    unless `env` sets MLSTACK_CONTROL_DATABASE_URI; no cluster unless `env` sets KUBECONFIG."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    base = command or [sys.executable, "-m", "control", "serve", "--host", "127.0.0.1"]
    process = _service(
        [*base, "--port", str(port)],
        directory / f"control-{port}.log",
        url,
        env={
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLSTACK_CONTROL_SQLITE_PATH": str(directory / "predictions.db"),
            # Never the developer's own cluster: tests that need one pass their KUBECONFIG.
            "KUBECONFIG": str(directory / "no-kubeconfig"),
            "KUBERNETES_SERVICE_HOST": "",
            **(env or {}),
        },
    )
    try:
        wait_until(lambda: http_status(f"{url}/readyz") == 200, 60, f"control plane on {url}")
    except TimeoutError:
        process.stop()
        raise TimeoutError(f"control plane did not start:\n{process.output()[-3000:]}") from None
    return process


# Where hack/offline/tools.sh puts kube-apiserver and etcd (`make control-kube-bin`, which
# `make control-test` runs first); OFFLINE_CACHE moves it, as it does for the script.
_OFFLINE_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "offline"
KUBE_BIN = Path(os.environ.get("OFFLINE_CACHE") or _OFFLINE_CACHE) / "bin"


@dataclass
class KubeApi:
    """A real kube-apiserver backed by a real etcd, with no kubelet and no controllers: Jobs
    are stored but never run. Identities are static bearer tokens (`tokens`: name → token)."""

    etcd: Process
    apiserver: Process
    url: str
    ca: Path
    tokens: dict[str, str]

    def kubeconfig(self, path: Path, identity: str, namespace: str = "default") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "t",
                            "cluster": {"server": self.url, "certificate-authority": str(self.ca)},
                        }
                    ],
                    "users": [{"name": identity, "user": {"token": self.tokens[identity]}}],
                    "contexts": [
                        {
                            "name": "t",
                            "context": {"cluster": "t", "user": identity, "namespace": namespace},
                        }
                    ],
                    "current-context": "t",
                }
            )
        )
        return path

    def stop(self) -> None:
        self.apiserver.stop()
        self.etcd.stop()


def start_kube_api(directory: Path, identities: dict[str, str]) -> KubeApi:
    """etcd and kube-apiserver (the binaries `make control-kube-bin` builds into KUBE_BIN) on
    free loopback ports, RBAC on. `identities` maps a name to the user the token authenticates
    as; `admin` (group system:masters) is always there."""
    directory.mkdir(parents=True, exist_ok=True)
    client_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    etcd = start(
        [
            str(KUBE_BIN / "etcd"),
            "--data-dir",
            str(directory / "etcd"),
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"default={peer_url}",
            "--unsafe-no-fsync",
        ],
        directory / "etcd.log",
        etcd_url,
    )
    try:
        wait_until(lambda: http_status(f"{etcd_url}/health") == 200, 60, "etcd")
    except TimeoutError:
        etcd.stop()
        raise TimeoutError(f"etcd did not start:\n{etcd.output()[-3000:]}") from None
    key = directory / "sa.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = directory / "sa.pub"
    subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(public)],
        check=True,
        capture_output=True,
    )
    tokens = {
        "admin": secrets.token_hex(16),
        **{name: secrets.token_hex(16) for name in identities},
    }
    users = {"admin": ("admin", "system:masters"), **{n: (u, "") for n, u in identities.items()}}
    (directory / "tokens.csv").write_text(
        "".join(
            f'{tokens[n]},{user},{i},"{group}"\n'
            for i, (n, (user, group)) in enumerate(users.items())
        )
    )
    url = f"https://127.0.0.1:{api_port}"
    apiserver = start(
        [
            str(KUBE_BIN / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={directory / 'certs'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={public}",
            f"--service-account-signing-key-file={key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            f"--token-auth-file={directory / 'tokens.csv'}",
        ],
        directory / "kube-apiserver.log",
        url,
    )
    api = KubeApi(etcd, apiserver, url, directory / "certs" / "apiserver.crt", tokens)

    def ready() -> bool:
        request = urllib.request.Request(
            f"{url}/readyz", headers={"authorization": f"Bearer {tokens['admin']}"}
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the serving certificate is made at start-up
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(ready, 90, f"kube-apiserver on {url}", interval=0.5)
    except TimeoutError:
        output = apiserver.output()
        api.stop()
        raise TimeoutError(f"kube-apiserver did not start:\n{output[-3000:]}") from None
    return api


def metric_samples(url: str) -> dict[str, float]:
    """`<url>/metrics` as `name{label=value,...}` → value (labels sorted; `name{}` without)."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out
