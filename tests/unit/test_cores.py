"""The core count from cgroup files laid out as the kernel does (v1 and v2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.cores import available_cores, cgroup_quota

HOST = len(os.sched_getaffinity(0))


def _v2(root: Path, cpu_max: str, own: str = "/") -> Path:
    directory = root / own.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cpu.max").write_text(f"{cpu_max}\n")
    proc = root / "self-cgroup"
    proc.write_text(f"0::{own}\n")
    return proc


def _v1(root: Path, quota: int, period: int, own: str = "/") -> Path:
    directory = root / "cpu,cpuacct" / own.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (directory / "cpu.cfs_period_us").write_text(f"{period}\n")
    proc = root / "self-cgroup"
    proc.write_text(f"5:cpu,cpuacct:{own}\n4:memory:{own}\n")
    return proc


@pytest.mark.parametrize(
    ("cpu_max", "quota"), [("150000 100000", 1.5), ("50000 100000", 0.5), ("max 100000", None)]
)
def test_a_v2_quota_is_read_in_cores(tmp_path: Path, cpu_max: str, quota: float | None) -> None:
    proc = _v2(tmp_path, cpu_max)
    assert cgroup_quota(tmp_path, proc) == quota


def test_a_v1_quota_is_read_from_the_process_own_cgroup(tmp_path: Path) -> None:
    proc = _v1(tmp_path, 250000, 100000, own="/kubepods/pod1/abc")
    assert cgroup_quota(tmp_path, proc) == 2.5


def test_a_v1_cgroup_without_a_quota_has_none(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path, _v1(tmp_path, -1, 100000)) is None


def test_the_quota_caps_the_affinity_rounded_up_to_at_least_one(tmp_path: Path) -> None:
    assert available_cores(None, tmp_path, _v2(tmp_path, "50000 100000")) == 1
    assert available_cores(None, tmp_path, _v2(tmp_path, f"{HOST * 400000} 100000")) == HOST


def test_the_setting_overrides_the_count(tmp_path: Path) -> None:
    assert available_cores(7, tmp_path, _v2(tmp_path, "50000 100000")) == 7


def test_no_cgroup_files_leaves_the_affinity(tmp_path: Path) -> None:
    assert available_cores(None, tmp_path, tmp_path / "missing") == HOST
