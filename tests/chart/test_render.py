"""The chart lints and renders for every scenario, and its values do what they say."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    KUBE_VERSIONS,
    MONITORING_API,
    NAMESPACE,
    HelmError,
    Scenario,
    find,
    helm,
    render,
    scenarios,
    training_jobs,
)

SCENARIOS = scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_lint_strict_passes(scenario: Scenario, kube_version: str) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", kube_version]
    for path in scenario.values:
        args += ["--values", str(path)]
    helm(*args)


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (
            ["mlflow.enabled=false"],
            "set mlflow.externalTrackingUri",
        ),
        (
            ["mlflow.backendStore.type=external"],
            "set mlflow.backendStore.existingSecret",
        ),
        (
            ["mlflow.replicaCount=2"],
            "mlflow.replicaCount > 1 needs shared storage",
        ),
        (
            ["mlflow.artifacts.s3.existingSecret=s3"],
            "mlflow.artifacts.destination is not s3://",
        ),
        (
            ["training.dataset=csv"],
            "training.dataset is csv: set training.data.source",
        ),
        (
            [
                "inference.auth.enabled=true",
                "inference.auth.existingSecret=a",
                "inference.auth.apiKey=b",
            ],
            "either inference.auth.existingSecret or inference.auth.apiKey",
        ),
        (
            ["inference.autoscaling.minReplicas=4", "inference.autoscaling.maxReplicas=2"],
            "inference.autoscaling.minReplicas (4) is above inference.autoscaling.maxReplicas (2)",
        ),
    ],
)
def test_invalid_combination_fails_naming_the_values(set_values: list[str], message: str) -> None:
    with pytest.raises(HelmError, match="invalid values") as failure:
        render(set_values=set_values)
    assert message in str(failure.value)


def test_every_invalid_combination_is_reported_at_once() -> None:
    with pytest.raises(HelmError) as failure:
        render(set_values=["mlflow.replicaCount=2", "training.dataset=csv"])
    assert "mlflow.replicaCount" in str(failure.value)
    assert "training.dataset is csv" in str(failure.value)


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (["image.inference.tag=latest"], "/image/inference/tag"),
        (["image.training.tag=latest"], "/image/training/tag"),
        (["inference.replicas=2"], "'replicas' not allowed"),
        (["training.dataset=mnist"], "/training/dataset"),
        (["training.candidates={logreg,xgboost}"], "/training/candidates/1"),
        (["monitoring.serviceMonitor.interval=15"], "/monitoring/serviceMonitor/interval"),
        (["mlflow.artifacts.destination=gs://bucket"], "/mlflow/artifacts/destination"),
    ],
)
def test_schema_rejects_bad_values(set_values: list[str], message: str) -> None:
    with pytest.raises(HelmError, match="values don't meet the specifications") as failure:
        render(set_values=set_values)
    assert message in str(failure.value)


def test_monitoring_objects_follow_the_operator_api() -> None:
    kinds = {"ServiceMonitor", "PrometheusRule"}
    assert not kinds & {o["kind"] for o in render()}
    assert kinds <= {o["kind"] for o in render(api_versions=[MONITORING_API])}
    assert kinds <= {o["kind"] for o in render(set_values=["monitoring.forceCRDs=true"])}
    off = render(set_values=["monitoring.enabled=false"], api_versions=[MONITORING_API])
    assert not kinds & {o["kind"] for o in off}
    # Only the training Job template is left: no dashboards.
    assert sorted(c["metadata"]["name"] for c in find(off, "ConfigMap")) == [
        "mlstack-inference-traffic",
        "mlstack-training-job",
    ]


def test_service_monitor_and_rule_carry_the_prometheus_selector_labels() -> None:
    objects = render(set_values=["monitoring.labels.release=kps"], api_versions=[MONITORING_API])
    for obj in find(objects, "ServiceMonitor") + find(objects, "PrometheusRule"):
        assert obj["metadata"]["labels"]["release"] == "kps"


def test_mlflow_metrics_add_the_exporter_flag_and_a_service_monitor() -> None:
    objects = render(set_values=["mlflow.metrics.enabled=true"], api_versions=[MONITORING_API])
    server = find(objects, "Deployment", "mlstack-mlflow")[0]
    assert "--expose-prometheus=/tmp/prometheus-metrics" in _container(server, "mlflow")["args"]
    assert find(objects, "ServiceMonitor", "mlstack-mlflow")


def test_dashboards_are_configmaps_for_the_grafana_sidecar() -> None:
    maps = [m for m in find(render(), "ConfigMap") if "dashboard" in m["metadata"]["name"]]
    assert {m["metadata"]["name"] for m in maps} == {
        "mlstack-dashboard-inference",
        "mlstack-dashboard-model",
    }
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    spec = workload["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_sqlite_mlflow_keeps_one_writer_on_a_volume() -> None:
    objects = render()
    server = find(objects, "Deployment", "mlstack-mlflow")[0]
    assert server["spec"]["strategy"]["type"] == "Recreate"
    assert find(objects, "PersistentVolumeClaim", "mlstack-mlflow")
    container = _container(server, "mlflow")
    assert _env(container)["MLFLOW_BACKEND_STORE_URI"] == "sqlite:////mlflow/mlflow.db"
    assert _env(container)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    init = server["spec"]["template"]["spec"]["initContainers"][0]
    assert "mlflow db upgrade" in " ".join(init["command"])


def test_mlflow_allows_its_service_names_pod_ip_and_port_forward() -> None:
    server = find(render(), "Deployment", "mlstack-mlflow")[0]
    args = _container(server, "mlflow")["args"]
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    expected = {
        "mlstack-mlflow:*",
        f"mlstack-mlflow.{NAMESPACE}.svc*",
        "localhost:*",
        "127.0.0.1:*",
        "$(POD_IP):*",
    }
    assert expected <= set(hosts)
    assert "--serve-artifacts" in args


def test_external_backends_use_secrets_and_no_volume() -> None:
    objects = render([CHART / "ci" / "external-backends-values.yaml"])
    server = find(objects, "Deployment", "mlstack-mlflow")[0]
    container = _container(server, "mlflow")
    assert _env(container)["MLFLOW_BACKEND_STORE_URI"] == {
        "secretKeyRef": {"name": "mlflow-database", "key": "uri"}
    }
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow-s3"}}]
    assert "--artifacts-destination=s3://mlstack-artifacts/mlflow" in container["args"]
    assert server["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not find(objects, "PersistentVolumeClaim")
    assert find(objects, "CronJob")


def test_inference_env_maps_values_onto_settings() -> None:
    objects = render(set_values=["inference.pollSeconds=5", "model.alias=challenger"])
    env = _env(_container(find(objects, "Deployment", "mlstack-inference")[0], "inference"))
    assert env["MLSTACK_POLL_SECONDS"] == "5"
    assert env["MLSTACK_MODEL_ALIAS"] == "challenger"
    assert env["MLFLOW_TRACKING_URI"] == f"http://mlstack-mlflow.{NAMESPACE}.svc:5000"
    assert env["MLSTACK_CACHE_DIR"] == "/var/cache/mlstack"
    assert "MLSTACK_API_KEY_FILE" not in env


def test_auth_mounts_the_key_file_from_a_generated_secret() -> None:
    objects = render(set_values=["inference.auth.enabled=true"])
    secret = find(objects, "Secret", "mlstack-inference-api-key")[0]
    assert len(secret["data"]["api-key"]) > 40
    deployment = find(objects, "Deployment", "mlstack-inference")[0]
    env = _env(_container(deployment, "inference"))
    assert env["MLSTACK_API_KEY_FILE"] == "/var/run/secrets/mlstack/api-key"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "api-key",
        "secret": {
            "secretName": "mlstack-inference-api-key",
            "items": [{"key": "api-key", "path": "api-key"}],
        },
    } in volumes
    test_pod = find(objects, "Pod")[0]
    assert {"name": "api-key", "secret": {"secretName": "mlstack-inference-api-key"}} in test_pod[
        "spec"
    ]["volumes"]


def test_auth_with_an_existing_secret_renders_no_secret() -> None:
    objects = render([CHART / "ci" / "auth-existing-secret-values.yaml"])
    secrets = sorted(s["metadata"]["name"] for s in find(objects, "Secret"))
    # The generated ones: the control plane's key, MLflow's passwords and the webhook's secret.
    assert secrets == ["mlstack-control-api-key", "mlstack-mlflow-auth", "mlstack-webhook"]
    deployment = find(objects, "Deployment", "mlstack-inference")[0]
    env = _env(_container(deployment, "inference"))
    assert env["MLSTACK_API_KEY_FILE"] == "/var/run/secrets/mlstack/key"


def _training_job(set_values: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    jobs = training_jobs(render(set_values=set_values or [], **kwargs))
    assert len(jobs) == 1
    return jobs[0]


def test_training_job_is_renamed_when_training_values_change() -> None:
    base = _training_job()["metadata"]["name"]
    assert base.startswith("mlstack-train-")
    for change in (
        "training.metric=accuracy",
        "training.candidates={logreg}",
        "image.training.tag=0.2.0",
        "model.name=other",
    ):
        assert _training_job([change])["metadata"]["name"] != base, change


def test_training_job_keeps_its_name_when_nothing_it_runs_changes() -> None:
    base = _training_job()["metadata"]["name"]
    for change in (
        "inference.pollSeconds=5",
        "mlflow.resources.limits.memory=2Gi",
        "commonLabels.team=ml",
        "monitoring.enabled=false",
        "image.inference.tag=0.2.0",
    ):
        assert _training_job([change])["metadata"]["name"] == base, change


def test_names_fit_in_63_characters_with_a_long_release_name() -> None:
    release = "a-release-name-as-long-as-helm-allows-which-is-53-chr"
    assert len(release) == 53
    objects = render(
        set_values=["training.schedule.enabled=true", "inference.auth.enabled=true"],
        api_versions=[MONITORING_API],
        release=release,
    )
    for obj in objects:
        limit = 52 if obj["kind"] == "CronJob" else 63
        assert len(obj["metadata"]["name"]) <= limit, obj["metadata"]["name"]


def test_helm_test_pod_posts_the_payload_to_the_service() -> None:
    pod = find(render(), "Pod")[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["PREDICT_URL"] == "http://mlstack-inference:8080/predict"
    assert '"petal_width"' in env["PAYLOAD"]


def _notes(tmp_path: Path, set_values: list[str]) -> str:
    """NOTES.txt rendered as `helm install` would print it. `helm install --dry-run` needs a
    cluster, so a copy of the chart renders the same template into a ConfigMap instead."""
    chart = tmp_path / "mlstack"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "files" / "notes.txt")
    (chart / "templates" / "notes-configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}\n'
    )
    args = ["template", "mlstack", str(chart), "--namespace", NAMESPACE]
    args += ["--show-only", "templates/notes-configmap.yaml"]
    for assignment in set_values:
        args += ["--set", assignment]
    notes: str = yaml.safe_load(helm(*args))["data"]["notes"]
    return notes


def test_notes_print_the_port_forward_and_curl_commands(tmp_path: Path) -> None:
    notes = _notes(tmp_path, ["inference.auth.enabled=true"])
    assert f"kubectl -n {NAMESPACE} port-forward svc/mlstack-inference 8080:8080" in notes
    assert f"kubectl -n {NAMESPACE} port-forward svc/mlstack-mlflow 5000:5000" in notes
    assert "curl -s http://127.0.0.1:8080/predict" in notes
    assert '-H "x-api-key: $API_KEY"' in notes
    assert "get secret mlstack-inference-api-key" in notes
    assert f"helm test mlstack -n {NAMESPACE} --logs" in notes


def test_decimals_given_with_set_are_accepted() -> None:
    # `helm --set` passes decimals as strings; the schema takes numeric strings too.
    objects = render(
        set_values=["training.margin=0.01", "monitoring.prometheusRule.latency.p99Seconds=0.25"],
        api_versions=[MONITORING_API],
    )
    env = {e["name"]: e.get("value") for e in _training_job_env(objects)}
    assert env["MLSTACK_MARGIN"] == "0.01"
    rules = find(objects, "PrometheusRule")[0]["spec"]["groups"][0]["rules"]
    latency = next(r for r in rules if r["alert"] == "MlstackInferenceLatencyHigh")
    assert latency["expr"].endswith("> 0.25")


def _training_job_env(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = training_jobs(objects)[0]["spec"]["template"]["spec"]["containers"][
        0
    ]["env"]
    return env
