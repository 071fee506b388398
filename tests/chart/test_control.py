"""The chart's control plane: its Deployment, the Role it holds, the training Job template it
copies, and the inference pods' prediction log wired to it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from control.jobs import job_from_template
from tests.chart.helm import (
    CHART,
    MONITORING_API,
    NAMESPACE,
    HelmError,
    find,
    render,
    training_jobs,
)
from tests.control.test_training_jobs import RELEASE, ROLE_RULES, TEMPLATE_CONFIGMAP

CONTROL = "mlstack-control"


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    spec = workload["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _volume(workload: dict[str, Any], name: str) -> dict[str, Any]:
    volumes = workload["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == name)


def test_control_plane_runs_mlstack_serve_with_its_settings() -> None:
    objects = render(set_values=["control.maxTrainingJobs=2", "control.retentionDays=7"])
    deployment = find(objects, "Deployment", CONTROL)[0]
    container = _container(deployment, "control")
    assert container["command"] == ["mlstack", "serve"]
    env = _env(container)
    assert env["MLFLOW_TRACKING_URI"] == f"http://mlstack-mlflow.{NAMESPACE}.svc:5000"
    assert env["MLSTACK_CONTROL_HOST"] == "0.0.0.0"
    assert env["MLSTACK_CONTROL_PORT"] == "8090"
    assert env["MLSTACK_CONTROL_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["MLSTACK_CONTROL_RELEASE"] == "mlstack"
    assert env["MLSTACK_CONTROL_TRAINING_TEMPLATE_CONFIGMAP"] == "mlstack-training-job"
    assert env["MLSTACK_CONTROL_MAX_TRAINING_JOBS"] == "2"
    assert env["MLSTACK_CONTROL_RETENTION_DAYS"] == "7"
    assert env["MLSTACK_CONTROL_API_KEY_FILE"] == "/var/run/secrets/mlstack-control/api-key"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == CONTROL
    assert pod["automountServiceAccountToken"] is True
    service = find(objects, "Service", CONTROL)[0]
    assert service["spec"]["ports"][0]["port"] == 8090


def test_sqlite_prediction_log_lives_on_a_kept_volume_with_one_writer() -> None:
    objects = render()
    deployment = find(objects, "Deployment", CONTROL)[0]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    env = _env(_container(deployment, "control"))
    assert env["MLSTACK_CONTROL_SQLITE_PATH"] == "/var/lib/mlstack-control/predictions.db"
    assert "MLSTACK_CONTROL_DATABASE_URI" not in env
    assert _volume(deployment, "data")["persistentVolumeClaim"] == {"claimName": CONTROL}
    claim = find(objects, "PersistentVolumeClaim", CONTROL)[0]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_external_database_comes_from_a_secret_and_rolls() -> None:
    objects = render([CHART / "ci" / "external-backends-values.yaml"])
    deployment = find(objects, "Deployment", CONTROL)[0]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = _env(_container(deployment, "control"))
    assert env["MLSTACK_CONTROL_DATABASE_URI"] == {
        "secretKeyRef": {"name": "control-database", "key": "uri"}
    }
    assert "MLSTACK_CONTROL_SQLITE_PATH" not in env
    assert not find(objects, "PersistentVolumeClaim", CONTROL)
    assert _volume(deployment, "api-key")["secret"]["secretName"] == "control-api-key"
    # Only the webhook's Secret is the chart's: every other one is the user's.
    assert [s["metadata"]["name"] for s in find(objects, "Secret")] == ["mlstack-webhook"]


def test_role_allows_exactly_what_the_control_plane_uses() -> None:
    """The same rules the kube-apiserver tests grant the control plane (and check it is denied
    everything else with), for the same release name."""
    objects = render(release=RELEASE)
    role = find(objects, "Role", f"{RELEASE}-mlstack-control")[0]
    assert role["rules"] == ROLE_RULES
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    binding = find(objects, "RoleBinding", f"{RELEASE}-mlstack-control")[0]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{RELEASE}-mlstack-control",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-mlstack-control", "namespace": NAMESPACE}
    ]
    assert find(objects, "ConfigMap", TEMPLATE_CONFIGMAP)


@pytest.mark.parametrize("training_enabled", ["true", "false"])
def test_job_template_is_the_install_jobs_pod_template(training_enabled: str) -> None:
    objects = render(set_values=["training.candidates={logreg}"])
    configmap = find(objects, "ConfigMap", "mlstack-training-job")[0]
    template = yaml.safe_load(configmap["data"]["job.yaml"])
    assert template["kind"] == "Job"
    assert template["metadata"]["namespace"] == NAMESPACE
    installed = training_jobs(objects)[0]
    assert template["spec"] == installed["spec"]
    # Published even without an install-time round, unchanged.
    without = render(
        set_values=["training.candidates={logreg}", f"training.enabled={training_enabled}"]
    )
    again = yaml.safe_load(
        find(without, "ConfigMap", "mlstack-training-job")[0]["data"]["job.yaml"]
    )
    assert again == template
    job = job_from_template(template, "mlstack-train-api-1", ["--min-score", "0.8"], "test")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--candidates=logreg", "--min-score", "0.8"]


def test_inference_pods_ship_records_to_the_control_plane_with_its_key() -> None:
    objects = render(set_values=["control.predictionLog.queue=500"])
    deployment = find(objects, "Deployment", "mlstack-inference")[0]
    env = _env(_container(deployment, "inference"))
    assert env["MLSTACK_PREDICTION_LOG_URL"] == f"http://{CONTROL}.{NAMESPACE}.svc:8090"
    assert env["MLSTACK_PREDICTION_LOG_QUEUE"] == "500"
    assert env["MLSTACK_PREDICTION_LOG_FEATURES"] == "false"
    key_file = env["MLSTACK_PREDICTION_LOG_API_KEY_FILE"]
    assert key_file == "/var/run/secrets/mlstack-control/api-key"
    assert _volume(deployment, "control-api-key")["secret"]["secretName"] == (f"{CONTROL}-api-key")
    mounts = _container(deployment, "inference")["volumeMounts"]
    assert {
        "name": "control-api-key",
        "mountPath": "/var/run/secrets/mlstack-control",
        "readOnly": True,
    } in mounts
    secret = find(objects, "Secret", f"{CONTROL}-api-key")[0]
    assert len(secret["data"]["api-key"]) > 40


@pytest.mark.parametrize(
    "set_values", [["control.enabled=false"], ["control.predictionLog.enabled=false"]]
)
def test_no_prediction_log_without_the_control_plane_or_when_off(set_values: list[str]) -> None:
    objects = render(set_values=set_values)
    deployment = find(objects, "Deployment", "mlstack-inference")[0]
    assert not any(
        k.startswith("MLSTACK_PREDICTION_LOG") for k in _env(_container(deployment, "inference"))
    )
    names = [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]]
    assert "control-api-key" not in names
    if set_values == ["control.enabled=false"]:
        assert not [o for o in objects if o["metadata"]["name"].startswith(CONTROL)]
        assert not find(objects, "ConfigMap", "mlstack-training-job")


def test_control_plane_is_scraped_and_reaches_mlflow_through_the_policies() -> None:
    objects = render(set_values=["networkPolicy.enabled=true"], api_versions=[MONITORING_API])
    monitor = find(objects, "ServiceMonitor", CONTROL)[0]
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "control"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    mlflow_policy = find(objects, "NetworkPolicy", "mlstack-mlflow")[0]
    peers = mlflow_policy["spec"]["ingress"][0]["from"]
    components = [
        p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        for p in peers
    ]
    assert "control" in components
    assert find(objects, "NetworkPolicy", CONTROL)


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (["control.database.type=external"], "control.database.existingSecret"),
        (["control.replicaCount=2"], "control.replicaCount > 1 needs a shared database"),
        (
            ["control.auth.existingSecret=a", "control.auth.apiKey=b"],
            "either control.auth.existingSecret or control.auth.apiKey",
        ),
        (
            ["mlflow.enabled=false", "training.enabled=false", "inference.enabled=false"],
            "control.enabled is true but mlflow.enabled is false",
        ),
    ],
)
def test_invalid_control_values_fail_naming_them(set_values: list[str], message: str) -> None:
    with pytest.raises(HelmError, match="invalid values") as failure:
        render(set_values=set_values)
    assert message in str(failure.value)
