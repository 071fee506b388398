"""Policy checks on every rendered workload of every scenario: what a cluster's admission policy
(restricted Pod Security Standard and the usual hygiene rules) would demand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import pod_specs, scenarios

SCENARIOS = scenarios()

SCENARIO_NAMES = [s.name for s in SCENARIOS]


def _workloads(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (f"{o['kind']} {o['metadata']['name']}", o, spec) for o in objects for spec in pod_specs(o)
    ]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_pods_run_as_non_root_with_the_default_seccomp_profile(
    scenario: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    workloads = _workloads(rendered[scenario])
    assert workloads
    # Only a pod whose ServiceAccount a RoleBinding grants something needs an API token.
    bound = {
        s["name"]
        for o in rendered[scenario]
        if o["kind"] == "RoleBinding"
        for s in o["subjects"]
        if s["kind"] == "ServiceAccount"
    }
    for name, _, spec in workloads:
        context = spec.get("securityContext", {})
        assert context.get("runAsNonRoot") is True, name
        assert context.get("runAsUser", 0) != 0, name
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        wants_token = spec.get("serviceAccountName") in bound
        assert spec.get("automountServiceAccountToken") is wants_token, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_containers_are_locked_down(
    scenario: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for name, _, spec in _workloads(rendered[scenario]):
        for container in _containers(spec):
            where = f"{name} container {container['name']}"
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("privileged", False) is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_containers_set_resources(scenario: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, _, spec in _workloads(rendered[scenario]):
        for container in _containers(spec):
            resources = container.get("resources", {})
            where = f"{name} container {container['name']}"
            assert {"cpu", "memory"} <= resources.get("requests", {}).keys(), where
            assert "memory" in resources.get("limits", {}), where


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_long_running_containers_have_probes(
    scenario: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    deployments = [o for o in rendered[scenario] if o["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            where = f"Deployment {deployment['metadata']['name']} container {container['name']}"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container.get(probe), f"{where} has no {probe}"


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_images_are_pinned(scenario: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, _, spec in _workloads(rendered[scenario]):
        for container in _containers(spec):
            image = container["image"]
            reference = image.split("@", 1)[0]
            repository, _, tag = reference.rpartition(":")
            assert repository and "/" not in tag, f"{name}: {image} has no tag"
            assert tag != "latest", f"{name}: {image} uses latest"


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_writable_paths_are_empty_dirs_or_volumes(
    scenario: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    # A read-only root filesystem needs /tmp mounted in every container.
    for name, _, spec in _workloads(rendered[scenario]):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in _containers(spec):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name} container {container['name']} has no /tmp"
            assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_inference_drains_before_it_stops(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = next(
        o
        for o in rendered["default"]
        if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-inference")
    )
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert spec["terminationGracePeriodSeconds"] > sleep
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
