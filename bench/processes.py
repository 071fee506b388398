"""Processes the benchmark starts: each in its own session, pinned to a core, always stopped.

Every server runs as the leader of a new session, so the whole tree it spawns (uvicorn
workers, MLServer's inference pool, the child `mlflow models serve` execs) shares that
session id: that is how the tree is found for memory and how all of it is stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CORE = 0
LOAD_CORE = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_self_to_load_core() -> None:
    """Keep the harness (and everything it starts unpinned) off the servers' core."""
    if (os.cpu_count() or 1) < 2:
        raise RuntimeError("the benchmark needs two cores: one for the server, one for the load")
    os.sched_setaffinity(0, {LOAD_CORE})


@dataclass
class Started:
    """A process tree started by the benchmark. `stop()` ends all of it."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started_at: float  # time.monotonic() just before the process was spawned

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tree(self) -> list[int]:
        """PIDs of the leader and every live process in its session."""
        return [pid for pid in _all_pids() if _session_of(pid) == self.pid]

    def peak_rss_bytes(self) -> int:
        """Sum over the live tree of each process's peak resident set (VmHWM)."""
        return sum(_vm_hwm_bytes(pid) for pid in self.tree())

    def cpu_seconds(self) -> float:
        """Sum over the live tree of each process's user and system CPU time, in seconds."""
        return sum(_cpu_seconds(pid) for pid in self.tree())

    def run_only_when_idle(self) -> None:
        """Put every thread of the live tree under SCHED_IDLE: it gets the CPU its core leaves
        idle and, against any other runnable task, only the kernel's smallest share. Threads
        and processes it starts later inherit the policy. Raises OSError when the kernel
        refuses."""
        for pid in self.tree():
            # The policy belongs to a thread, not to a process: set it on each one.
            for tid in _threads(pid):
                with suppress(ProcessLookupError):  # the thread ended since it was listed
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the session's processes, SIGKILL after `timeout` seconds."""
        members = self.tree()
        if not members and not self.alive():
            return
        _signal_all(members, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            if not any(_exists(pid) for pid in members if pid != self.pid) and not self.alive():
                return
            time.sleep(0.1)
        _signal_all(self.tree() or members, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


@dataclass
class Supervisor:
    """Owns every process the benchmark starts; `close()` stops whatever is still running."""

    log_dir: Path
    _running: list[Started] = field(default_factory=list)

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        core: int | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Started:
        """Spawn `cmd` as a new session leader, pinned to `core` (None: inherit ours)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        argv = [*(["taskset", "-c", str(core)] if core is not None else []), *cmd]
        with log.open("ab") as handle:
            started_at = time.monotonic()
            proc = subprocess.Popen(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        started = Started(name, proc, log, started_at)
        self._running.append(started)
        return started

    def stop(self, started: Started) -> None:
        started.stop()
        if started in self._running:
            self._running.remove(started)

    def close(self) -> None:
        for started in reversed(self._running):
            started.stop()
        self._running.clear()


@contextmanager
def supervised(log_dir: Path) -> Iterator[Supervisor]:
    """A supervisor whose processes are stopped on exit, Ctrl-C and SIGTERM alike."""
    supervisor = Supervisor(log_dir)

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _terminate)
    previous_hup = signal.signal(signal.SIGHUP, _terminate)
    try:
        yield supervisor
    finally:
        # A second Ctrl-C during cleanup must not leave servers behind.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            supervisor.close()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGHUP, previous_hup)


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _threads(pid: int) -> list[int]:
    try:
        return [int(entry) for entry in os.listdir(f"/proc/{pid}/task")]
    except OSError:  # the process ended since it was listed
        return []


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from its third field (state) on, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may contain spaces) start after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def _session_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[3])  # state, ppid, pgrp, session


def _cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15, in clock ticks
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] != "Z"


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
