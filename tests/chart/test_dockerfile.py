"""The Dockerfile builds with the classic builder and ends in two non-root targets."""

from __future__ import annotations

import re

import pytest

from tests.chart.helm import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
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
def test_no_buildkit_only_syntax(buildkit_only: str) -> None:
    assert buildkit_only not in DOCKERFILE
    assert not DOCKERFILE.startswith("# syntax=")


def test_base_image_is_a_pinned_build_argument() -> None:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert match
    assert ":" in match.group(1) and not match.group(1).endswith(":latest")


@pytest.mark.parametrize("target", ["platform", "tracking-server"])
def test_targets_run_as_a_non_root_user_from_the_lock_file(target: str) -> None:
    stages = _stages()
    assert target in stages
    users = [line.split()[1] for line in stages[target] if line.startswith("USER ")]
    assert users and not users[-1].startswith(("0", "root")), target
    build = stages[f"{target}-build"]
    assert any("uv sync --frozen --no-dev" in line for line in build)


def test_platform_is_the_last_stage_so_the_default_target() -> None:
    assert list(_stages())[-1] == "platform"
