"""The chart's challenger on live traffic: the shadow and canary settings, the traffic file a
`helm upgrade` changes without a rollout, and the MLflow webhook (its Secret, MLflow's delivery
settings, the registration hook, the receivers' secret)."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet

from tests.chart.helm import find, render
from tests.chart.test_control import _container, _env, _volume

INFERENCE = "mlstack-inference"
CONTROL = "mlstack-control"
MLFLOW = "mlstack-mlflow"
SECRET_FILE = "/var/run/secrets/mlstack-webhook/secret"


def _deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return find(objects, "Deployment", name)[0]


def _hook(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [job] = [j for j in find(objects, "Job") if j["metadata"]["name"].endswith("register-webhook")]
    return job


def test_shadow_and_canary_settings_reach_the_service() -> None:
    objects = render(set_values=["inference.shadow.queue=50", "inference.canary.header=x-user"])
    env = _env(_container(_deployment(objects, INFERENCE), "inference"))
    assert env["MLSTACK_SHADOW_ALIAS"] == "challenger"
    assert env["MLSTACK_SHADOW_QUEUE"] == "50"
    assert env["MLSTACK_CANARY_HEADER"] == "x-user"
    assert env["MLSTACK_TRAFFIC_FILE"] == "/etc/mlstack/traffic/traffic.json"
    # The shares are not in the environment: they live in the traffic file.
    assert "MLSTACK_SHADOW_PERCENT" not in env and "MLSTACK_CANARY_PERCENT" not in env


def test_the_shares_change_in_the_file_and_never_in_the_pod_template() -> None:
    before = render()
    after = render(set_values=["inference.canary.percent=20", "inference.shadow.percent=100"])
    [config] = find(after, "ConfigMap", "mlstack-inference-traffic")
    assert json.loads(config["data"]["traffic.json"]) == {
        "shadow_percent": 100,
        "canary_percent": 20,
    }
    [default] = find(before, "ConfigMap", "mlstack-inference-traffic")
    defaults = json.loads(default["data"]["traffic.json"])
    assert defaults == {"shadow_percent": 10, "canary_percent": 0}
    # Same pod template: `helm upgrade` changes the share without a rollout.
    assert _deployment(before, INFERENCE)["spec"] == _deployment(after, INFERENCE)["spec"]
    deployment = _deployment(after, INFERENCE)
    mount = next(
        m for m in _container(deployment, "inference")["volumeMounts"] if m["name"] == "traffic"
    )
    assert mount["mountPath"] == "/etc/mlstack/traffic" and "subPath" not in mount
    assert _volume(deployment, "traffic")["configMap"]["name"] == "mlstack-inference-traffic"


def test_shares_outside_0_to_100_are_refused_by_the_schema() -> None:
    import pytest

    from tests.chart.helm import HelmError

    for setting in ("inference.canary.percent=101", "inference.shadow.percent=-1"):
        with pytest.raises(HelmError, match="percent"):
            render(set_values=[setting])


def test_webhooks_wire_mlflow_the_receivers_and_the_registration_hook() -> None:
    objects = render()
    [secret] = find(objects, "Secret", "mlstack-webhook")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert len(data["secret"]) >= 32
    Fernet(data["encryption-key"])  # MLflow's key must be a valid Fernet key
    # Kept with MLflow's PVC: the stored webhook's secret is encrypted with that key.
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    mlflow = _env(_container(_deployment(objects, MLFLOW), "mlflow"))
    assert mlflow["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] == "http,https"
    assert mlflow["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "true"
    assert mlflow["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] == {
        "secretKeyRef": {"name": "mlstack-webhook", "key": "encryption-key"}
    }
    for name, container, prefix in (
        (INFERENCE, "inference", "MLSTACK_"),
        (CONTROL, "control", "MLSTACK_CONTROL_"),
    ):
        deployment = _deployment(objects, name)
        env = _env(_container(deployment, container))
        assert env[f"{prefix}WEBHOOK_SECRET_FILE"] == SECRET_FILE, name
        assert env[f"{prefix}WEBHOOK_TOLERANCE_SECONDS"] == "300", name
        assert _volume(deployment, "webhook-secret")["secret"]["secretName"] == "mlstack-webhook"

    hook = _hook(objects)
    annotations = hook["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    container = _container(hook, "register")
    assert container["command"] == ["python", "-m", "control", "webhook"]
    assert "--url=http://mlstack-control.mlstack.svc:8090/v1/webhooks/mlflow" in container["args"]
    assert "--secret-file=/var/run/mlstack/webhook/secret" in container["args"]


def test_without_the_control_plane_mlflow_delivers_to_the_inference_service() -> None:
    hook = _hook(render(set_values=["control.enabled=false"]))
    args = _container(hook, "register")["args"]
    assert "--url=http://mlstack-inference.mlstack.svc:8080/v1/webhooks/mlflow" in args


def test_with_mlflow_auth_the_hook_registers_as_mlflows_admin() -> None:
    objects = render(set_values=["mlflow.auth.enabled=true"])
    env = _env(_container(_hook(objects), "register"))
    assert env["MLFLOW_TRACKING_USERNAME"] == "admin"
    assert env["MLFLOW_TRACKING_PASSWORD"] == {
        "secretKeyRef": {"name": "mlstack-mlflow-auth", "key": "admin-password"}
    }


def test_webhooks_off_leaves_polling_alone() -> None:
    objects = render(set_values=["webhooks.enabled=false"])
    assert not find(objects, "Secret", "mlstack-webhook")
    assert not [j for j in find(objects, "Job") if "webhook" in j["metadata"]["name"]]
    for name, container in ((INFERENCE, "inference"), (CONTROL, "control"), (MLFLOW, "mlflow")):
        env = _env(_container(_deployment(objects, name), container))
        assert not [k for k in env if "WEBHOOK" in k], name


def test_the_dashboard_row_shows_every_shadow_metric() -> None:
    from tests.chart.monitoring import CHALLENGER_ROW, raw_dashboard_queries

    exprs = " ".join(q.expr for q in raw_dashboard_queries() if q.row == CHALLENGER_ROW)
    for metric in (
        "mlstack_shadow_agreed_rows_total",
        "mlstack_shadow_rows_total",
        "mlstack_shadow_probability_difference_bucket",
        "mlstack_shadow_predictions_total",
        "mlstack_shadow_duration_seconds_bucket",
        "mlstack_shadow_dropped_total",
        "mlstack_shadow_queue",
    ):
        assert metric in exprs, metric
