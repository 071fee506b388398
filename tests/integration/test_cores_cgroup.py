"""The round's core count inside a real cgroup with a CPU quota, made here as a container
runtime makes one (v1's cpu controller, or v2's cpu.max)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path("/sys/fs/cgroup")
_CHILD = (
    "import json; from training.cores import available_cores, cgroup_quota; "
    "print(json.dumps({'cores': available_cores(), 'quota': cgroup_quota()}))"
)


@pytest.fixture
def half_a_core() -> Iterator[Path]:
    """A cgroup limited to half a core (50 ms of every 100 ms): its cgroup.procs file."""
    name = f"mlstack-test-{uuid.uuid4().hex[:8]}"
    if (ROOT / "cgroup.controllers").exists():  # v2
        directory = ROOT / name
        directory.mkdir()
        (directory / "cpu.max").write_text("50000 100000\n")
    else:  # v1
        directory = ROOT / "cpu" / name
        directory.mkdir()
        (directory / "cpu.cfs_period_us").write_text("100000\n")
        (directory / "cpu.cfs_quota_us").write_text("50000\n")
    try:
        yield directory / "cgroup.procs"
    finally:
        directory.rmdir()


def test_a_process_in_a_cgroup_with_a_quota_counts_the_quota_not_the_host(
    half_a_core: Path,
) -> None:
    result = subprocess.run(
        ["sh", "-c", f'echo $$ > {half_a_core} && exec "$0" -c "$1"', sys.executable, _CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr
    counted = json.loads(result.stdout)
    assert counted == {"cores": 1, "quota": 0.5}
    outside = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120
    )
    assert json.loads(outside.stdout)["cores"] == len(os.sched_getaffinity(0))
