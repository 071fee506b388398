"""The tools the benchmark needs: wrk from Debian, each peer in its own virtual environment.

Peer servers are pinned here. The libraries that read the model (scikit-learn, joblib,
skops, mlflow) are pinned to the versions in the project's environment, so every peer
unpickles exactly the estimator the project trained.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.settings import BENCH_DIR

VENVS_DIR = BENCH_DIR / ".venvs"
PYTHON_VERSION = "3.11"
_STAMP = ".bench-requirements"

# The peers' own packages, at the versions the benchmark was written against.
_PEER_PACKAGES: dict[str, tuple[str, ...]] = {
    "mlserver": ("mlserver==1.7.1", "mlserver-sklearn==1.7.1"),
    "kserve": ("kserve==0.21.0",),
    "mlflow": (),  # mlflow itself is pinned to the project's version below
}
_MODEL_LIBRARIES: dict[str, tuple[str, ...]] = {
    "mlserver": ("scikit-learn", "joblib"),
    "kserve": ("scikit-learn", "joblib"),
    "mlflow": ("mlflow", "scikit-learn", "skops"),
}


class ToolError(RuntimeError):
    """A tool the benchmark needs could not be found or installed."""


@dataclass(frozen=True)
class PeerEnv:
    name: str
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def requirements(peer: str) -> list[str]:
    """Pinned requirement lines for `peer`'s environment."""
    return [
        *_PEER_PACKAGES[peer],
        *(f"{name}=={metadata.version(name)}" for name in _MODEL_LIBRARIES[peer]),
    ]


def ensure_peer_env(peer: str) -> PeerEnv:
    """Create (or reuse, when its pins are unchanged) `bench/.venvs/<peer>`."""
    env = PeerEnv(peer, VENVS_DIR / peer)
    wanted = "\n".join(requirements(peer)) + "\n"
    stamp = env.root / _STAMP
    if env.python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return env
    uv = _uv()
    print(f"  creating {env.root.relative_to(BENCH_DIR.parent)}: {wanted.split()}", flush=True)
    _run([uv, "venv", "--quiet", "--clear", "--python", PYTHON_VERSION, str(env.root)], peer)
    _run([uv, "pip", "install", "--quiet", "--python", str(env.python), *wanted.split()], peer)
    stamp.write_text(wanted)
    return env


def ensure_wrk() -> str:
    """Path of `wrk`, installing Debian's package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise ToolError("wrk is not installed and there is no apt-get to install it")
    print("  installing wrk with apt-get", flush=True)
    install = [apt, "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends"]
    if subprocess.run([*install, "wrk"], stdout=subprocess.DEVNULL).returncode != 0:
        _run([apt, "-o", "DPkg::Lock::Timeout=300", "update", "-qq"], "apt-get update")
        _run([*install, "wrk"], "apt-get install wrk")
    found = shutil.which("wrk")
    if found is None:
        raise ToolError("apt-get installed wrk but it is not on PATH")
    return found


def _uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        raise ToolError("uv is needed to build the peers' environments (`pip install uv`)")
    return found


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolError(f"{what}: `{' '.join(cmd[:4])} …` failed:\n{result.stderr[-3000:]}")
