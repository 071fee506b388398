"""MLflow with its basic-auth app: the accounts program, and every client with its own account.

A real `mlflow server --app-name basic-auth`, the real accounts program, a real training round,
a real service and the real `mlstack` command, each with the account the chart gives it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import Process, start_app, start_mlflow, train_model

pytestmark = pytest.mark.integration

ROLES = ("training", "control", "inference")


def _user(role: str) -> str:
    return f"mlstack-{role}"


@pytest.fixture(scope="module")
def secret_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The accounts Secret as the chart mounts it: one file per key."""
    directory = tmp_path_factory.mktemp("mlflow-auth-secret")
    for key in ("admin", *ROLES):
        (directory / f"{key}-password").write_text(secrets.token_urlsafe(24))
    return directory


def _password(secret_dir: Path, role: str) -> str:
    return (secret_dir / f"{role}-password").read_text()


@pytest.fixture(scope="module")
def auth_mlflow(tmp_path_factory: pytest.TempPathFactory, secret_dir: Path) -> Iterator[Process]:
    process = start_mlflow(
        tmp_path_factory.mktemp("mlflow-auth"), admin_password=_password(secret_dir, "admin")
    )
    yield process
    process.stop()


def _sync(url: str, secret_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    accounts = [a for role in ROLES for a in ("--account", f"{role}={_user(role)}")]
    return subprocess.run(
        [
            *(sys.executable, "-m", "control.accounts", "--tracking-uri", url),
            *("--wait-seconds", "30", "--secret-dir", str(secret_dir), *accounts, *extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(secret_dir: Path, role: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_USERNAME": _user(role),
        "MLFLOW_TRACKING_PASSWORD": _password(secret_dir, role),
    }


@pytest.fixture(scope="module")
def accounts(auth_mlflow: Process, secret_dir: Path) -> subprocess.CompletedProcess[str]:
    result = _sync(auth_mlflow.url, secret_dir)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def model(auth_mlflow: Process, secret_dir: Path, accounts: object) -> str:
    """A registered model trained by the training account, its gate having set champion."""
    name = f"auth-{uuid.uuid4().hex[:8]}"
    saved = dict(os.environ)
    os.environ.update(_env(secret_dir, "training"))
    try:
        train_model(auth_mlflow.url, name, "--candidates", "logreg")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return name


def _alias(url: str, auth: tuple[str, str], name: str, version: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/2.0/mlflow/registered-models/alias",
        json={"name": name, "alias": "challenger", "version": version},
        auth=auth,
        timeout=10,
    )


def test_accounts_are_created_once_and_synced_again_without_printing_a_password(
    auth_mlflow: Process, secret_dir: Path, accounts: subprocess.CompletedProcess[str]
) -> None:
    assert accounts.stdout.count("account.created") == 3
    again = _sync(auth_mlflow.url, secret_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("account.updated") == 3
    assert "account.created" not in again.stdout
    # The grants held are left as they are: never revoked under running clients.
    assert again.stdout.count('"was":"EDIT"') == 4 and again.stdout.count('"was":"READ"') == 2
    output = accounts.stdout + accounts.stderr + again.stdout + again.stderr
    for key in ("admin", *ROLES):
        assert _password(secret_dir, key) not in output
    for role in ROLES:
        me = httpx.get(
            f"{auth_mlflow.url}/api/2.0/mlflow/users/current",
            auth=(_user(role), _password(secret_dir, role)),
            timeout=10,
        )
        assert me.status_code == 200 and me.json()["user"]["is_admin"] is False


def test_a_grant_changed_by_hand_is_set_back_to_the_roles_own(
    auth_mlflow: Process, secret_dir: Path, accounts: object
) -> None:
    admin = ("admin", _password(secret_dir, "admin"))
    key = {"username": _user("inference"), "resource_type": "registered_model", "resource_id": "*"}
    for path, body in (
        ("revoke", key),
        ("grant", {**key, "permission": "MANAGE"}),
    ):
        changed = httpx.post(
            f"{auth_mlflow.url}/api/3.0/mlflow/users/permissions/{path}",
            json=body,
            auth=admin,
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
    again = _sync(auth_mlflow.url, secret_dir)
    assert again.returncode == 0, again.stderr
    assert '"was":"MANAGE"' in again.stdout
    held = httpx.get(
        f"{auth_mlflow.url}/api/3.0/mlflow/users/permissions/get",
        params=key,
        auth=admin,
        timeout=10,
    )
    assert held.json()["permission"] == "READ"


def test_each_account_can_do_what_its_role_needs_and_the_inference_one_cannot_move_an_alias(
    auth_mlflow: Process, secret_dir: Path, model: str
) -> None:
    url = auth_mlflow.url
    inference = (_user("inference"), _password(secret_dir, "inference"))
    read = httpx.get(
        f"{url}/api/2.0/mlflow/registered-models/alias",
        params={"name": model, "alias": "champion"},
        auth=inference,
        timeout=10,
    )
    assert read.status_code == 200
    version = read.json()["model_version"]["version"]
    refused = _alias(url, inference, model, version)
    assert refused.status_code == 403, refused.text
    moved = _alias(url, (_user("control"), _password(secret_dir, "control")), model, version)
    assert moved.status_code == 200, moved.text
    nobody = httpx.get(f"{url}/api/2.0/mlflow/registered-models/get", params={"name": model})
    assert nobody.status_code == 401


def test_the_service_serves_the_champion_with_the_read_only_account(
    auth_mlflow: Process, secret_dir: Path, model: str, tmp_path: Path
) -> None:
    app = start_app(tmp_path, auth_mlflow.url, model, env=_env(secret_dir, "inference"))
    try:
        served = httpx.get(f"{app.url}/model", timeout=10).json()
        assert served["name"] == model and served["version"] == "1"
    finally:
        app.stop()


def test_the_service_without_an_account_says_why_it_is_not_ready(
    auth_mlflow: Process, model: str, tmp_path: Path
) -> None:
    app = start_app(tmp_path, auth_mlflow.url, model, wait_ready=False)
    try:
        ready = httpx.get(f"{app.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "401" in ready.text
    finally:
        app.stop()


def test_mlstack_commands_use_the_control_account(
    auth_mlflow: Process, secret_dir: Path, model: str
) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": auth_mlflow.url, **_env(secret_dir, "control")}
    result = subprocess.run(
        [sys.executable, "-m", "control", "models", model, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"champion"' in result.stdout
    env.pop("MLFLOW_TRACKING_PASSWORD")
    env.pop("MLFLOW_TRACKING_USERNAME")
    refused = subprocess.run(
        [sys.executable, "-m", "control", "models", model, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 3
    assert "MLFLOW_TRACKING_USERNAME" in refused.stderr


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ("missing", 2, "cannot read"),
        ("short", 2, "a password needs at least 12"),
        ("wrong-admin", 1, "refused the admin account"),
        ("bad-role", 2, "expected ROLE=USERNAME"),
    ],
)
def test_the_accounts_program_refuses_bad_input_naming_it(
    auth_mlflow: Process,
    secret_dir: Path,
    accounts: object,
    tmp_path: Path,
    change: str,
    status: int,
    message: str,
) -> None:
    broken = tmp_path / "secret"
    broken.mkdir()
    for path in secret_dir.iterdir():
        (broken / path.name).write_text(path.read_text())
    extra: list[str] = []
    if change == "missing":
        (broken / "control-password").unlink()
    elif change == "short":
        (broken / "training-password").write_text("short")
    elif change == "wrong-admin":
        (broken / "admin-password").write_text(secrets.token_urlsafe(24))
    else:
        extra = ["--account", "root=someone"]
    result = _sync(auth_mlflow.url, broken, *extra)
    assert result.returncode == status, result.stderr
    assert message in result.stderr
