"""The Dockerfile builds with the classic builder and has one non-root target per role; so does
the end-to-end suite's user training image. (The built images themselves are checked by
tests/images, where Docker runs.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chart.helm import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
USER_TRAINING_DOCKERFILE = REPO / "tests" / "e2e" / "user_training" / "Dockerfile"
LINES = [line for line in DOCKERFILE.splitlines() if line and not line.startswith("#")]


def _stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in LINES:
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


@pytest.mark.parametrize(
    "buildkit_only", ["RUN --mount", "COPY --chmod", "COPY --link", "ADD --chmod", "<<EOF"]
)
@pytest.mark.parametrize(
    "dockerfile", [REPO / "Dockerfile", USER_TRAINING_DOCKERFILE], ids=["mlstack", "user"]
)
def test_no_buildkit_only_syntax(dockerfile: Path, buildkit_only: str) -> None:
    text = dockerfile.read_text()
    assert buildkit_only not in text
    assert not text.startswith("# syntax=")


def test_user_training_image_is_the_training_image_plus_a_script_outside_tmp() -> None:
    """The chart mounts an emptyDir on /tmp (the training image's WORKDIR): code there is hidden."""
    lines = [
        line
        for line in USER_TRAINING_DOCKERFILE.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0].startswith("ARG TRAINING_IMAGE=mlstack-training:")
    assert lines[1] == "FROM ${TRAINING_IMAGE}"
    workdir = next(line.split()[1] for line in lines if line.startswith("WORKDIR "))
    assert workdir != "/tmp" and not workdir.startswith("/tmp/")
    assert next(line for line in lines if line.startswith("USER ")).split()[1] == "10001:10001"


def test_base_image_is_a_build_argument_pinned_by_digest() -> None:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert match
    reference, _, digest = match.group(1).partition("@")
    assert ":" in reference and not reference.endswith(":latest")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), match.group(1)


@pytest.mark.parametrize("target", ["inference", "training", "tracking-server"])
def test_targets_run_as_a_non_root_user_from_the_lock_file(target: str) -> None:
    stages = _stages()
    assert target in stages
    users = [line.split()[1] for line in stages[target] if line.startswith("USER ")]
    assert users and not users[-1].startswith(("0", "root")), target
    build = stages[f"{target}-build"]
    assert any("uv sync --frozen --no-dev" in line for line in build)


def test_the_inference_image_installs_no_extra() -> None:
    """Serving needs the package's base dependencies alone: no MLflow, no pandas."""
    build = " ".join(_stages()["inference-build"])
    assert "uv sync --frozen --no-dev" in build and "--extra" not in build


def test_roles_come_lightest_first_and_inference_is_the_default_target() -> None:
    """The classic builder builds every stage above its target."""
    stages = list(_stages())
    assert stages.index("tracking-server") < stages.index("training") < stages.index("inference")
    assert stages[-1] == "inference"
