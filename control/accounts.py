"""MLflow accounts of mlstack's clients: one per role, each with only what the role needs.

    python -m control.accounts --tracking-uri URL --secret-dir DIR \\
        --account training=mlstack-training --account control=mlstack-control ...

Run by the chart's accounts Job on every install and upgrade, as MLflow's admin (the basic-auth
app). It is idempotent: an account that exists gets its password set again from the Secret (so
the Secret stays the truth), and its grants are granted again. Passwords are read from files
(`admin-password`, `<role>-password` in `--secret-dir`: the mounted Secret) and never logged.
Exit status: 0 done, 1 refused by MLflow, 2 invalid input, 3 MLflow unreachable.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from kernel import log as kernel_log

log = structlog.get_logger()

# What each role may do, as MLflow permissions on every experiment and registered model ("*").
# The round registers versions and its gate moves `champion`; the control plane moves aliases,
# sets tags and logs the extras of adopted versions (a run); the inference pods only read.
GRANTS: dict[str, dict[str, str]] = {
    "training": {"experiment": "EDIT", "registered_model": "EDIT"},
    "control": {"experiment": "EDIT", "registered_model": "EDIT"},
    "inference": {"experiment": "READ", "registered_model": "READ"},
}

_USERS = "/api/2.0/mlflow/users"
_GRANT = "/api/3.0/mlflow/users/permissions/grant"
_REVOKE = "/api/3.0/mlflow/users/permissions/revoke"
_PERMISSION = "/api/3.0/mlflow/users/permissions/get"


class AccountError(Exception):
    """MLflow refused a call, or answered something unexpected."""


class Unreachable(Exception):
    """MLflow did not answer within the wait."""


@dataclass(frozen=True)
class Account:
    role: str
    username: str
    password: str


def _read_secret(directory: Path, key: str) -> str:
    path = directory / key
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    if len(value) < 12:
        raise ValueError(f"{path} holds {len(value)} characters: a password needs at least 12")
    return value


def _accounts(specs: list[str], directory: Path) -> list[Account]:
    accounts = []
    for spec in specs:
        role, sep, username = spec.partition("=")
        if not sep or role not in GRANTS or not username:
            raise ValueError(
                f"--account {spec!r}: expected ROLE=USERNAME with ROLE one of {', '.join(GRANTS)}"
            )
        accounts.append(Account(role, username, _read_secret(directory, f"{role}-password")))
    return accounts


def _wait(client: httpx.Client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no attempt made"
    while time.monotonic() < deadline:
        try:
            if client.get("/health").status_code == 200:
                return
            last = "/health is not 200 yet"
        except httpx.HTTPError as exc:
            last = str(exc)
        log.info("mlflow.waiting", reason=last)
        time.sleep(2)
    raise Unreachable(f"MLflow did not answer within {timeout:g} s: {last}")


def _call(client: httpx.Client, method: str, path: str, **kw: object) -> httpx.Response:
    try:
        return client.request(method, path, **kw)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        raise Unreachable(f"{path}: {exc}") from exc


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise AccountError(f"{what}: MLflow answered {response.status_code}: {response.text[:200]}")


def sync(client: httpx.Client, accounts: list[Account]) -> None:
    """Create or update every account and grant its role's permissions (idempotent)."""
    me = _call(client, "GET", f"{_USERS}/current")
    if me.status_code == 401:
        raise AccountError(
            "MLflow refused the admin account (401): its user store was made with another "
            "admin-password (a reinstall over a kept volume whose Secret was deleted, for "
            "instance); restore that Secret, or reset the admin password in MLflow"
        )
    for account in accounts:
        found = _call(client, "GET", f"{_USERS}/get", params={"username": account.username})
        if found.status_code == 200:
            user = found.json().get("user", {})
            if user.get("is_admin"):
                raise AccountError(
                    f"{account.username!r} is an MLflow admin: a {account.role} account must not "
                    "be; name another account"
                )
            response = _call(
                client,
                "PATCH",
                f"{_USERS}/update-password",
                json={"username": account.username, "password": account.password},
            )
            _check(response, f"updating the password of {account.username!r}")
            log.info("account.updated", role=account.role, username=account.username)
        elif found.status_code == 404:
            response = _call(
                client,
                "POST",
                f"{_USERS}/create",
                json={"username": account.username, "password": account.password},
            )
            _check(response, f"creating {account.username!r}")
            log.info("account.created", role=account.role, username=account.username)
        else:
            _check(found, f"looking up {account.username!r}")
        for resource_type, permission in GRANTS[account.role].items():
            body = {
                "username": account.username,
                "resource_type": resource_type,
                "resource_id": "*",
                "permission": permission,
            }
            response = _call(client, "POST", _GRANT, json=body)
            if "RESOURCE_ALREADY_EXISTS" in response.text:
                # Granted before. The same grant is left alone: revoking it would leave the
                # running clients without it for a moment. Another one is replaced, since this
                # role's grant is the truth.
                key = {k: body[k] for k in ("username", "resource_type", "resource_id")}
                held = _call(client, "GET", _PERMISSION, params=key)
                _check(held, f"reading {resource_type} permission of {account.username!r}")
                was = held.json().get("permission")
                if was != permission:
                    _check(_call(client, "POST", _REVOKE, json=key), f"revoking {resource_type}")
                    response = _call(client, "POST", _GRANT, json=body)
                else:
                    response = held
            else:
                was = None
            _check(
                response, f"granting {permission} on every {resource_type} to {account.username!r}"
            )
            log.info(
                "account.granted",
                username=account.username,
                resource_type=resource_type,
                permission=permission,
                was=was,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m control.accounts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tracking-uri", required=True, help="MLflow server (http://...)")
    parser.add_argument("--admin-username", default="admin", help="MLflow admin account")
    parser.add_argument(
        "--secret-dir", type=Path, required=True, help="folder of the mounted Secret's keys"
    )
    parser.add_argument(
        "--account", action="append", default=[], help="ROLE=USERNAME, once per account"
    )
    parser.add_argument("--wait-seconds", type=float, default=300, help="wait for MLflow this long")
    args = parser.parse_args(argv)
    kernel_log.configure("info", quiet=("httpx",))
    try:
        admin = (args.admin_username, _read_secret(args.secret_dir, "admin-password"))
        accounts = _accounts(args.account, args.secret_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not accounts:
        print("error: no --account given", file=sys.stderr)
        return 2
    with httpx.Client(base_url=args.tracking_uri.rstrip("/"), auth=admin, timeout=30) as client:
        try:
            _wait(client, args.wait_seconds)
            sync(client, accounts)
        except Unreachable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        except AccountError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    log.info("accounts.synced", accounts=[a.username for a in accounts])
    return 0


if __name__ == "__main__":
    sys.exit(main())
