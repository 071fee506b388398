"""What protects the registry, the network and the pods, as the chart renders it by default."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import CHART, NAMESPACE, HelmError, find, pod_specs, render, training_jobs

MLFLOW = "mlstack-mlflow"
SECRET = "mlstack-mlflow-auth"
ROLES = {
    "training": "mlstack-training",
    "control": "mlstack-control",
    "inference": "mlstack-inference",
}


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    (spec,) = pod_specs(workload)
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _flags(container: dict[str, Any]) -> dict[str, str]:
    return dict(a.removeprefix("--").partition("=")[::2] for a in container["args"])


def test_mlflow_runs_its_auth_app_with_the_middleware_set_for_the_service_names() -> None:
    objects = render()
    server = _container(find(objects, "Deployment", MLFLOW)[0], "mlflow")
    flags = _flags(server)
    assert flags["app-name"] == "basic-auth"
    service = f"{MLFLOW}.{NAMESPACE}"
    assert flags["allowed-hosts"].split(",")[:5] == [
        MLFLOW,
        f"{MLFLOW}:*",
        service,
        f"{service}:*",
        f"{service}.svc*",
    ]
    assert flags["cors-allowed-origins"].split(",") == [
        f"http://{MLFLOW}:5000",
        f"http://{service}:5000",
        f"http://{service}.svc:5000",
        f"http://{service}.svc.cluster.local:5000",
        "http://localhost:5000",
        "http://127.0.0.1:5000",
    ]
    assert flags["x-frame-options"] == "DENY"
    env = _env(server)
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow-auth/basic_auth.ini"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == {
        "secretKeyRef": {"name": SECRET, "key": "admin-password"}
    }
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["secretKeyRef"]["key"] == "flask-secret-key"
    config = _container(find(objects, "Deployment", MLFLOW)[0], "auth-config")
    assert _env(config)["DEFAULT_PERMISSION"] == "NO_PERMISSIONS"
    assert _env(config)["AUTH_DATABASE_URI"] == "sqlite:////mlflow/basic_auth.db"
    assert _env(config)["CACHE_SECONDS"] == "60"


def test_the_generated_secret_holds_every_password() -> None:
    (secret,) = [s for s in find(render(), "Secret") if s["metadata"]["name"] == SECRET]
    assert sorted(secret["data"]) == [
        "admin-password",
        "control-password",
        "flask-secret-key",
        "inference-password",
        "training-password",
    ]
    assert len(set(secret["data"].values())) == 5
    # Kept with the PVC: the user store on it was made with these passwords.
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_each_client_sends_its_own_account() -> None:
    objects = render()
    workloads = {
        "training": training_jobs(objects)[0],
        "control": find(objects, "Deployment", "mlstack-control")[0],
        "inference": find(objects, "Deployment", "mlstack-inference")[0],
    }
    for role, workload in workloads.items():
        env = _env(_container(workload, role))
        assert env["MLFLOW_TRACKING_USERNAME"] == ROLES[role]
        assert env["MLFLOW_TRACKING_PASSWORD"] == {
            "secretKeyRef": {"name": SECRET, "key": f"{role}-password"}
        }


def test_the_accounts_job_creates_every_account_without_a_token() -> None:
    objects = render()
    (job,) = [
        j
        for j in find(objects, "Job")
        if j["metadata"]["labels"]["app.kubernetes.io/component"] == "mlflow-accounts"
    ]
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    (spec,) = pod_specs(job)
    assert spec["automountServiceAccountToken"] is False
    container = spec["containers"][0]
    assert container["command"] == ["python", "-m", "control.accounts"]
    accounts = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--account=")]
    assert accounts == [f"{role}={user}" for role, user in ROLES.items()]
    items = next(v for v in spec["volumes"] if v["name"] == "secret")["secret"]["items"]
    assert "flask-secret-key" not in {i["key"] for i in items}


def test_auth_off_renders_no_account_anywhere() -> None:
    objects = render(set_values=["mlflow.auth.enabled=false"])
    server = _container(find(objects, "Deployment", MLFLOW)[0], "mlflow")
    assert "app-name" not in _flags(server)
    assert not [s for s in find(objects, "Secret") if s["metadata"]["name"] == SECRET]
    assert not [j for j in find(objects, "Job") if "accounts" in j["metadata"]["name"]]
    inference = _container(find(objects, "Deployment", "mlstack-inference")[0], "inference")
    assert "MLFLOW_TRACKING_USERNAME" not in _env(inference)


def test_external_mlflow_reads_the_client_passwords_from_the_users_secret() -> None:
    objects = render([CHART / "ci" / "external-mlflow-values.yaml"])
    assert not [j for j in find(objects, "Job") if "accounts" in j["metadata"]["name"]]
    inference = _container(find(objects, "Deployment", "mlstack-inference")[0], "inference")
    assert _env(inference)["MLFLOW_TRACKING_PASSWORD"]["secretKeyRef"] == {
        "name": "mlflow-client-passwords",
        "key": "inference-password",
    }


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (
            ["mlflow.enabled=false", "mlflow.externalTrackingUri=http://mlflow:5000"],
            "its accounts are yours to create",
        ),
        (["mlflow.auth.enabled=false", "mlflow.auth.existingSecret=x"], "no client would use it"),
        (["mlflow.auth.accounts.control=admin"], "four different names"),
        (["mlflow.auth.database.existingSecret=db"], "the user store is then basic_auth.db"),
        (["mlflow.auth.defaultPermission=EDIT"], "defaultPermission"),
    ],
)
def test_incoherent_auth_values_are_refused_naming_them(
    set_values: list[str], message: str
) -> None:
    with pytest.raises(HelmError, match=message):
        render(set_values=set_values)


def _peers(policy: dict[str, Any]) -> list[str]:
    out = []
    for peer in policy["spec"]["ingress"][0].get("from", []):
        if "podSelector" in peer:
            out.append(peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"])
        else:
            out.append(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
    return out


def test_network_policies_are_on_and_deny_by_default() -> None:
    objects = render()
    policies = {p["metadata"]["name"]: p for p in find(objects, "NetworkPolicy")}
    deny = policies["mlstack-default-deny"]
    assert deny["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "mlstack",
        "app.kubernetes.io/instance": "mlstack",
    }
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    assert _peers(policies[MLFLOW]) == [
        "training",
        "inference",
        "control",
        "mlflow-accounts",
        "webhooks",
        "monitoring",
    ]
    # MLflow delivers its webhooks to the control plane.
    assert _peers(policies["mlstack-control"]) == ["inference", "mlflow", "monitoring"]
    assert "from" not in policies["mlstack-inference"]["spec"]["ingress"][0]
    # Every pod of the release is selected by the default deny.
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "mlstack", obj["metadata"]["name"]


def test_the_control_plane_takes_the_ingress_the_user_names() -> None:
    objects = render([CHART / "ci" / "networkpolicy-values.yaml"])
    policy = find(objects, "NetworkPolicy", "mlstack-control")[0]
    assert _peers(policy) == ["inference", "mlflow", "observability", "ingress-nginx"]


def test_only_the_control_plane_mounts_a_token() -> None:
    objects = render(set_values=["training.schedule.enabled=true"])
    mounted = []
    for obj in objects:
        for spec in pod_specs(obj):
            if spec.get("automountServiceAccountToken") is not False:
                mounted.append(obj["metadata"]["name"])
    assert mounted == ["mlstack-control"]
    for account in find(objects, "ServiceAccount"):
        expected = account["metadata"]["name"] == "mlstack-control"
        assert account.get("automountServiceAccountToken", True) is expected


@pytest.mark.parametrize("component", ["mlflow", "training", "inference", "control"])
def test_each_component_takes_a_service_account_of_its_own_or_the_users(component: str) -> None:
    annotation = "eks.amazonaws.com/role-arn=arn:aws:iam::1:role/mlstack"
    objects = render(
        set_values=[
            f"{component}.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn="
            + annotation.split("=", 1)[1]
        ]
    )
    account = find(objects, "ServiceAccount", f"mlstack-{component}")[0]
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": annotation.split("=", 1)[1]
    }
    named = render(
        set_values=[
            f"{component}.serviceAccount.create=false",
            f"{component}.serviceAccount.name=mine",
        ]
    )
    assert not find(named, "ServiceAccount", f"mlstack-{component}")
    users = [
        o["metadata"]["name"]
        for o in named
        for spec in pod_specs(o)
        if spec.get("serviceAccountName") == "mine"
    ]
    assert users, f"no {component} pod runs as the named ServiceAccount"
