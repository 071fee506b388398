"""Rendering the chart with the real helm binary, for the chart checks."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mlstack"
TOOLS = REPO / ".cache" / "bin"
# The images' default tag: the chart's appVersion (one version everywhere: hack/release.py).
APP_VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def _shared_dir() -> Path:
    """Validation data beside the repository (Kubernetes schemas, skaffold schema, operator
    CRDs): MLSTACK_SHARED_DIR, else `../shared`, else `../shared` of the checkout this one was
    cloned from (a clone in a temporary directory keeps its origin's data)."""
    if "MLSTACK_SHARED_DIR" in os.environ:
        return Path(os.environ["MLSTACK_SHARED_DIR"])
    candidates = [REPO.parent / "shared"]
    origin = subprocess.run(
        ["git", "-C", str(REPO), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and "://" not in origin and not origin.startswith("git@"):
        candidates.append(Path(origin.removeprefix("file:")).resolve().parent / "shared")
    for candidate in candidates:
        if (candidate / "crds").is_dir():
            return candidate
    return candidates[0]


SHARED = _shared_dir()
RELEASE = "mlstack"
NAMESPACE = "mlstack"
# The oldest and newest Kubernetes versions the chart supports, both with schemas in SHARED.
KUBE_VERSIONS = ("1.29.0", "1.36.0")
MONITORING_API = "monitoring.coreos.com/v1"


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


def tool(name: str) -> Path:
    """Path of a pinned tool built by hack/tools.sh."""
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"{path} is missing: run hack/chart/setup.sh (make chart-test does)"
        )
    return path


@dataclass(frozen=True)
class Scenario:
    """One entry of the test matrix: a name and the values files rendered together."""

    name: str
    values: tuple[Path, ...]


def scenarios() -> list[Scenario]:
    """ci/<name>-values.yaml, one scenario each, plus the kind values."""
    found = [
        Scenario(path.name.removesuffix("-values.yaml"), (path,))
        for path in sorted((CHART / "ci").glob("*-values.yaml"))
    ]
    return [*found, Scenario("kind", (CHART / "values-kind.yaml",))]


def helm(*args: str) -> str:
    result = subprocess.run(
        [str(tool("helm")), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise HelmError(result.stderr.strip())
    return result.stdout


def template(
    values: Iterable[Path] = (),
    set_values: Sequence[str] = (),
    api_versions: Sequence[str] = (),
    kube_version: str = KUBE_VERSIONS[-1],
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> str:
    """`helm template` output (hooks of `helm test` included)."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", kube_version]
    for path in values:
        args += ["--values", str(path)]
    for assignment in set_values:
        args += ["--set", assignment]
    for api in api_versions:
        args += ["--api-versions", api]
    return helm(*args)


def render(
    values: Iterable[Path] = (),
    set_values: Sequence[str] = (),
    api_versions: Sequence[str] = (),
    kube_version: str = KUBE_VERSIONS[-1],
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """The rendered objects, parsed."""
    text = template(values, set_values, api_versions, kube_version, release, namespace)
    return [obj for obj in yaml.safe_load_all(text) if obj]


def find(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> list[dict]:
    """Objects of `kind` (and `name`, when given)."""
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def training_jobs(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training Jobs among `objects` (the MLflow accounts Job is a Job too)."""
    return [
        obj
        for obj in find(objects, "Job")
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "training"
    ]


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs inside a workload object (none for other kinds)."""
    kind = obj["kind"]
    if kind == "Pod":
        return [obj["spec"]]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [obj["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []
