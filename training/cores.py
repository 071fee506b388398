"""The CPU cores this process is given: its CPU affinity, capped by its cgroup's CPU quota.

In a pod, the host's core count says nothing: a container limited to 2 CPUs on a 64-core node
that starts 64 workers spends its quota in a few milliseconds and is throttled for the rest
of each period. The quota is what the kernel enforces, so it is what the round sizes its
workers by.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_quota(
    root: Path = CGROUP_ROOT, self_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The CPU quota of this process's cgroup in cores (1.5 for `150000 100000`), or None
    when no quota is set or none can be read. cgroup v2 (`cpu.max`) and v1
    (`cpu.cfs_quota_us` over `cpu.cfs_period_us`) are both read; in a container the cgroup
    namespace puts its own cgroup at the root, on a host the path comes from `self_cgroup`."""
    v2, v1 = _own_paths(self_cgroup)
    for directory in dict.fromkeys((root / v2.lstrip("/"), root)):
        quota = _v2_quota(directory / "cpu.max")
        if quota is not None:
            return quota
    for base in (root / "cpu", root / "cpu,cpuacct"):
        for directory in dict.fromkeys((base / v1.lstrip("/"), base)):
            quota = _v1_quota(directory)
            if quota is not None:
                return quota
    return None


def available_cores(
    override: int | None = None,
    root: Path = CGROUP_ROOT,
    self_cgroup: Path = Path("/proc/self/cgroup"),
) -> int:
    """How many workers to run: `override` when set (the `MLSTACK_N_JOBS` setting), else the
    cores in this process's CPU affinity, capped by its cgroup quota rounded up (at least 1)."""
    if override is not None:
        return override
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_quota(root, self_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _own_paths(self_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup path in the v2 hierarchy and in v1's cpu controller ("/" when
    unknown)."""
    v2 = v1 = "/"
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _v2_quota(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period
