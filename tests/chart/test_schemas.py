"""Every rendered object is valid, strictly, for the oldest and newest Kubernetes supported;
the Prometheus Operator objects against the operator's CRDs; skaffold.yaml against its schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.chart.helm import (
    KUBE_VERSIONS,
    MONITORING_API,
    REPO,
    SHARED,
    Scenario,
    scenarios,
    template,
    tool,
)

SCENARIOS = scenarios()

KUBE_SCHEMAS = SHARED / "schemas" / "kubernetes"
CRDS = SHARED / "crds"


@pytest.fixture(scope="session")
def crd_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's CRDs as strict JSON schemas in kubeconform's layout."""
    out = tmp_path_factory.mktemp("crd-schemas")
    crds = sorted(CRDS.glob("*.yaml"))
    assert crds, f"no CRDs in {CRDS}"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "hack" / "chart" / "crd_schemas.py"),
            str(out),
            *map(str, crds),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


def kubeconform(manifests: str, kube_version: str, crd_schemas: Path) -> dict:
    """kubeconform's JSON report; objects with no schema count as errors, not skips."""
    result = subprocess.run(
        [
            str(tool("kubeconform")),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            kube_version,
            "-schema-location",
            f"{KUBE_SCHEMAS}/{{{{.NormalizedKubernetesVersion}}}}-standalone-strict/"
            "{{.ResourceKind}}{{.KindSuffix}}.json",
            "-schema-location",
            f"{crd_schemas}/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report: dict = json.loads(result.stdout)
    return report


def test_the_oldest_and_newest_supported_versions_have_schemas() -> None:
    for version in KUBE_VERSIONS:
        assert (KUBE_SCHEMAS / f"v{version}-standalone-strict" / "deployment-apps-v1.json").exists()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_rendered_objects_are_valid(
    scenario: Scenario, kube_version: str, crd_schemas: Path
) -> None:
    manifests = template(scenario.values, api_versions=[MONITORING_API], kube_version=kube_version)
    report = kubeconform(manifests, kube_version, crd_schemas)
    problems = [
        f"{r['kind']} {r['name']}: {r['msg']}"
        for r in report["resources"]
        if r["status"] != "statusValid"
    ]
    assert not problems, "\n".join(problems)
    summary = report["summary"]
    assert summary["valid"] == manifests.count("\nkind: ") + manifests.startswith("kind: ")
    assert summary["skipped"] == 0


def test_validation_is_strict_for_kubernetes_and_operator_objects(crd_schemas: Path) -> None:
    manifests = template(api_versions=[MONITORING_API])
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["replica"] = 2
        if doc["kind"] == "ServiceMonitor":
            doc["spec"]["endpoints"][0]["intervall"] = "15s"
    report = kubeconform(yaml.safe_dump_all(docs), KUBE_VERSIONS[0], crd_schemas)
    invalid = {r["kind"] for r in report["resources"] if r["status"] == "statusInvalid"}
    assert invalid == {"Deployment", "ServiceMonitor"}


def test_skaffold_config_is_valid_v4beta14() -> None:
    schema = json.loads((SHARED / "schemas" / "skaffold-v4beta14.json").read_text())
    docs = [d for d in yaml.safe_load_all((REPO / "skaffold.yaml").read_text()) if d]
    assert docs
    validator = jsonschema.Draft7Validator(schema)
    for doc in docs:
        assert doc["apiVersion"] == "skaffold/v4beta14"
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
        assert not errors, "\n".join(errors)


def _apply_add(doc: dict, patches: list[dict]) -> dict:
    """Apply a profile's JSON patches (only `add`, what skaffold.yaml uses) to a copy of doc."""
    doc = json.loads(json.dumps(doc))
    for patch in patches:
        assert patch["op"] == "add", f"unsupported op {patch['op']}"
        *parents, last = patch["path"].strip("/").split("/")
        target = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), patch["value"])
        else:
            target[last] = patch["value"]
    return doc


def test_every_skaffold_profile_yields_a_valid_config() -> None:
    schema = json.loads((SHARED / "schemas" / "skaffold-v4beta14.json").read_text())
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema)
    assert {p["name"] for p in config["profiles"]} == {"monitoring", "offline"}
    for profile in config["profiles"]:
        patched = _apply_add(
            {k: v for k, v in config.items() if k != "profiles"}, profile["patches"]
        )
        assert not list(validator.iter_errors(patched)), profile["name"]
    monitoring = next(p for p in config["profiles"] if p["name"] == "monitoring")
    releases = _apply_add(config, monitoring["patches"])["deploy"]["helm"]["releases"]
    # The operator's CRDs must exist before the chart's ServiceMonitor is rendered.
    assert [r["name"] for r in releases] == ["kube-prometheus-stack", "mlstack"]


def test_skaffold_binds_both_built_images_into_the_chart() -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    images = {a["image"] for a in config["build"]["artifacts"]}
    templates = config["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    for image in images:
        key = image.replace("-", "_")
        assert f"{{{{.IMAGE_REPO_{key}}}}}" in templates.values()
        assert f"{{{{.IMAGE_TAG_{key}}}}}" in templates.values()
