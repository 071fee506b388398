"""Local processes started by the demo, the tests and the benchmark: start, wait, stop."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(cmd: list[str], log: Path, url: str, env: dict[str, str] | None = None) -> Process:
    """Start `cmd` in its own process group (so stop() ends its children too)."""
    handle = log.open("ab")
    proc = subprocess.Popen(
        cmd,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    return Process(proc, log, url)


# No job runner: two processes (~0.45 GiB) instead of thirteen.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_command(directory: Path, port: int) -> list[str]:
    """`mlflow server` on loopback: SQLite and artifacts under `directory`, artifacts served
    by the server, one worker."""
    return [
        str(VENV_BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{directory / 'mlflow.db'}",
        "--artifacts-destination",
        str(directory / "artifacts"),
    ]


def mlflow_auth_env(
    directory: Path, admin_password: str, cache_seconds: int = 60
) -> dict[str, str]:
    """The environment of a basic-auth `mlflow server` (`--app-name basic-auth`), as the chart
    configures it: its user store in SQLite under `directory`, no permission for an account
    without grants, checked credentials cached for `cache_seconds` (0: every call hashes the
    password), the admin's password, and the static key its CSRF protection needs."""
    config = directory / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{directory / 'basic_auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {cache_seconds}\n"
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }


def start_mlflow(
    directory: Path,
    port: int | None = None,
    admin_password: str | None = None,
    env: dict[str, str] | None = None,
) -> Process:
    """A real `mlflow server`: SQLite backend and artifacts under `directory`, artifacts
    served by the server, trimmed to two processes (see the README's notes). With
    `admin_password`, MLflow's basic-auth app runs: every call needs an account. `env` adds
    to its environment (e.g. what webhook delivery to loopback needs)."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    command = mlflow_server_command(directory, port)
    server_env = {**MLFLOW_SERVER_ENV, **(env or {})}
    if admin_password is not None:
        command += ["--app-name", "basic-auth"]
        server_env.update(mlflow_auth_env(directory, admin_password))
    process = start(command, directory / "mlflow.log", url, env=server_env)
    probe = "/health" if admin_password is not None else "/api/2.0/mlflow/experiments/search"
    try:
        wait_until(
            lambda: http_status(f"{url}{probe}?max_results=1") == 200,
            120,
            f"mlflow server on {url}",
            interval=0.5,
        )
    except TimeoutError:
        process.stop()
        raise TimeoutError(f"mlflow server did not start:\n{process.output()[-3000:]}") from None
    return process


def postgres_bin() -> Path:
    """The directory of PostgreSQL's server binaries (Debian keeps them off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise FileNotFoundError(
        "PostgreSQL server binaries (initdb, postgres) not found: "
        "apt-get install -y --no-install-recommends postgresql"
    )


@dataclass
class Postgres:
    """A throwaway PostgreSQL server on loopback; `uri` reaches its `postgres` database."""

    process: Process
    root: Path
    uri: str

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(port: int | None = None) -> Postgres:
    """initdb + postgres in a fresh directory under the system temp dir, trust auth, listening
    on 127.0.0.1 only, fsync off (a test database). PostgreSQL refuses to run as root: as
    root, the server runs as the `postgres` user (created by Debian's package)."""
    binaries = postgres_bin()
    port = port or free_port()
    root = Path(tempfile.mkdtemp(prefix="mlstack-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run(
        [
            *prefix,
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}{init.stderr}")
    uri = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    process = start(
        [
            *prefix,
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        root / "postgres.log",
        uri,
    )
    server = Postgres(process, root, uri)

    def accepting() -> bool:
        ready = [str(binaries / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        return subprocess.run(ready, check=False, timeout=10).returncode == 0

    try:
        wait_until(accepting, 60, f"postgres on 127.0.0.1:{port}", interval=0.3)
    except TimeoutError:
        output = process.output()
        server.stop()
        raise TimeoutError(f"postgres did not start:\n{output[-3000:]}") from None
    return server
