"""The GitHub workflows, read as data: pinned actions, least privilege, cancelled superseded
runs, and the same make targets as .ci/run. (actionlint checks their syntax and expressions.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
NAMES = [path.name for path in WORKFLOWS]
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return dict(data)


def _steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec["steps"]]


def _make_targets() -> set[str]:
    text = "\n".join(p.read_text() for p in [ROOT / "Makefile", *ROOT.glob("mk/*.mk")])
    return set(re.findall(r"^([a-zA-Z0-9_-]+):", text, re.MULTILINE))


def test_the_three_workflows_exist() -> None:
    assert {"ci.yaml", "release.yaml", "security.yaml"} <= set(NAMES)


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_every_action_is_pinned_by_commit_sha_with_its_version(path: Path) -> None:
    lines = [line.strip() for line in path.read_text().splitlines() if "uses:" in line]
    assert lines
    for line in lines:
        reference = line.split("uses:", 1)[1].split("#", 1)[0].strip()
        assert PINNED.match(reference), f"{path.name}: {reference} is not pinned by a commit SHA"
        assert re.search(r"# v\d+\.\d+\.\d+$", line), f"{path.name}: {line} names no version"


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_least_privilege_per_job(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {}, "the workflow grants nothing by default"
    for job, spec in workflow["jobs"].items():
        assert "permissions" in spec, f"{path.name}: job {job} sets no permissions"
        assert spec["permissions"].get("contents") in ("read", "write"), job
        writes = {k for k, v in spec["permissions"].items() if v == "write"}
        if path.name != "release.yaml":
            assert writes <= {"security-events"}, f"{path.name}: {job} writes {writes}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_concurrency_groups(path: Path) -> None:
    concurrency = _load(path)["concurrency"]
    assert "${{ github.ref }}" in concurrency["group"]
    # A release is never cancelled half-pushed; everything else yields to a newer run.
    assert concurrency["cancel-in-progress"] is (path.name != "release.yaml")


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_checkouts_keep_no_credentials(path: Path) -> None:
    for job, step in _steps(_load(path)):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, job


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_make_targets_the_workflows_call_exist(path: Path) -> None:
    targets = _make_targets()
    for job, step in _steps(_load(path)):
        for target in re.findall(r"\bmake ([a-z][a-z0-9-]*)", step.get("run", "")):
            assert target in targets, f"{path.name}: job {job} runs `make {target}`"


def test_ci_runs_what_ci_run_runs() -> None:
    ci_run = (ROOT / ".ci" / "run").read_text()
    runs = [step.get("run", "") for _, step in _steps(_load(ROOT / ".github/workflows/ci.yaml"))]
    for target in re.findall(r"^make (\S+)", ci_run, re.MULTILINE):
        assert f"make {target}" in runs
    assert "make lint" in runs and "make e2e" in runs


def test_ci_builds_each_role_with_a_cache() -> None:
    images = _load(ROOT / ".github/workflows/ci.yaml")["jobs"]["images"]
    assert images["strategy"]["matrix"]["target"] == ["inference", "training", "tracking-server"]
    build = next(s for s in images["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["cache-from"].startswith("type=gha")
    assert build["with"]["cache-to"].startswith("type=gha")


def test_release_signs_attests_and_publishes_the_chart() -> None:
    release = _load(ROOT / ".github/workflows/release.yaml")
    assert release["on"]["push"]["tags"] == ["v*.*.*"]
    images = release["jobs"]["images"]
    build = next(s for s in images["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["sbom"] is True and build["with"]["provenance"] == "mode=max"
    assert any("cosign sign --yes" in s.get("run", "") for s in images["steps"])
    assert images["permissions"]["id-token"] == "write"
    chart = " ".join(s.get("run", "") for s in release["jobs"]["chart"]["steps"])
    assert "helm push" in chart and "oci://ghcr.io/" in chart
    notes = " ".join(s.get("run", "") for s in release["jobs"]["release"]["steps"])
    assert "hack/release.py notes" in notes


def test_security_uploads_sarif_for_each_scanner() -> None:
    security = _load(ROOT / ".github/workflows/security.yaml")
    categories = {
        step["with"]["category"]
        for _, step in _steps(security)
        if "upload-sarif" in step.get("uses", "")
    }
    assert {"bandit", "pip-audit", "trivy-chart"} <= categories
    assert any(c.startswith("trivy-image-") for c in categories)


def test_dependabot_covers_uv_actions_and_docker() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in config["updates"]} == {"uv", "github-actions", "docker"}
