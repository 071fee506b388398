"""The built images, as Docker holds them: their configuration and their files.

Run by `make image-check` (which builds them first) and by `make e2e` on the images it deploys;
`make test` runs it whenever a Docker engine answers. IMAGE_CHECK_TAG names the tag (default:
the version), IMAGE_CHECK_ROLES the roles (default: all three).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from functools import cache
from typing import Any

import pytest

from tests.chart.helm import APP_VERSION

ROLES = os.environ.get("IMAGE_CHECK_ROLES", "inference training tracking-server").split()
TAG = os.environ.get("IMAGE_CHECK_TAG") or APP_VERSION
SHELLS = {"sh", "bash", "dash", "rbash", "ash", "zsh", "ksh", "busybox"}
# Where a shell would be run from (a shell's name elsewhere is data: /usr/share/menu/bash).
BIN = re.compile(r"^(usr/)?(local/)?s?bin/[^/]+$")
COMPILER = re.compile(
    r"^(usr/(local/)?bin/((x86_64|aarch64)-linux-gnu-)?(gcc|g\+\+|cc|c\+\+|clang|clang\+\+|gfortran)"
    r"(-\d+)?|usr/lib/gcc/.+/cc1(plus)?)$"
)
CACHE = re.compile(
    r"^(var/cache/apt/archives/.+\.deb|var/lib/apt/lists/[^/]+_[^/]+"
    r"|(root|tmp|home/[^/]+)/\.cache/.+|.*/pip/cache/.+|.*/\.cache/(pip|uv)/.+)$"
)


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _image(role: str) -> str:
    return f"mlstack-{role}:{TAG}"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


@cache
def _inspect(role: str) -> dict[str, Any]:
    return dict(json.loads(_docker("image", "inspect", _image(role)))[0])


@cache
def _files(role: str) -> dict[str, str]:
    """Path → symlink target ('' for anything else) of every entry of the image's filesystem."""
    container = _docker("create", _image(role)).strip()
    try:
        with subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE) as export:
            assert export.stdout is not None
            with tarfile.open(fileobj=export.stdout, mode="r|") as archive:
                return {m.name.lstrip("./"): m.linkname if m.issym() else "" for m in archive}
    finally:
        _docker("rm", container)


@pytest.mark.parametrize("role", ROLES)
def test_runs_as_a_user_that_is_not_root(role: str) -> None:
    user = _inspect(role)["Config"].get("User") or "root"
    assert user.split(":")[0] not in {"", "root", "0"}, f"{_image(role)} runs as {user!r}"


@pytest.mark.parametrize("role", ROLES)
def test_no_compiler(role: str) -> None:
    found = sorted(path for path in _files(role) if COMPILER.match(path))
    assert not found, f"{_image(role)} holds compilers: {found}"


@pytest.mark.parametrize("role", ROLES)
def test_no_package_cache(role: str) -> None:
    found = sorted(path for path in _files(role) if CACHE.match(path))
    assert not found, f"{_image(role)} holds package caches: {found[:20]}"


@pytest.mark.parametrize("role", ROLES)
def test_base_is_named_and_not_latest(role: str) -> None:
    labels = _inspect(role)["Config"].get("Labels") or {}
    base = labels.get("org.opencontainers.image.base.name", "")
    reference = base.split("@")[0]
    assert base, f"{_image(role)} has no org.opencontainers.image.base.name label"
    assert "@sha256:" in base or re.search(r":[^/:]+$", reference), f"untagged base {base!r}"
    assert not reference.endswith(":latest"), f"{_image(role)} is built on {base!r}"
    assert labels.get("org.opencontainers.image.version"), f"{_image(role)} has no version label"


@pytest.mark.skipif("inference" not in ROLES, reason="IMAGE_CHECK_ROLES leaves inference out")
def test_inference_has_no_shell() -> None:
    files = _files("inference")
    found = sorted(
        path
        for path, target in files.items()
        if BIN.match(path) and (_name(path) in SHELLS or _name(target) in SHELLS)
    )
    assert not found, f"{_image('inference')} holds shells: {found}"


SERVING_IMPORTS = """
import importlib.util, json, sys
import app.main, app.predictors, onnxruntime, skops.io, sklearn.ensemble, uvloop, httptools
print(json.dumps({name: importlib.util.find_spec(name) is not None for name in sys.argv[1:]}))
"""
NOT_SERVING = ["mlflow", "pandas", "matplotlib", "pyarrow", "skl2onnx", "control", "training.round"]


@pytest.mark.skipif("inference" not in ROLES, reason="IMAGE_CHECK_ROLES leaves inference out")
def test_inference_imports_what_serving_needs_and_nothing_of_training() -> None:
    """The service's modules import (with the libraries they load lazily), without a network,
    and the training side's libraries and modules are not in the image."""
    output = _docker(
        *("run", "--rm", "--network=none", _image("inference")),
        *("python", "-c", SERVING_IMPORTS, *NOT_SERVING),
    )
    present = json.loads(output.strip().splitlines()[-1])
    assert present == dict.fromkeys(NOT_SERVING, False)


# What each role's command imports, the modules its shared libraries are loaded by included:
# the build strips extension modules, and a broken one fails here, not in a pod.
ROLE_IMPORTS = {
    "training": "import training.round, training.search, control.service, control.accounts, "
    "mlflow.sklearn, skl2onnx, onnxruntime, pyarrow.parquet, boto3, psycopg, kubernetes",
    "tracking-server": "import mlflow.server, mlflow.server.auth, psycopg2, boto3, "
    "prometheus_flask_exporter, sqlalchemy",
}


@pytest.mark.parametrize("role", [r for r in ROLES if r in ROLE_IMPORTS])
def test_the_roles_modules_import(role: str) -> None:
    script = f"{ROLE_IMPORTS[role]}\nprint('imported')"
    output = _docker("run", "--rm", "--network=none", _image(role), "python", "-c", script)
    assert output.strip().splitlines()[-1] == "imported"
