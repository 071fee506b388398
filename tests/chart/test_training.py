"""The chart's training Job, CronJob and Job template: the built-in round, or the user's own image
and command with the same environment; the gate metric's choices are the contract's."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.chart.helm import (
    APP_VERSION,
    CHART,
    NAMESPACE,
    HelmError,
    find,
    render,
    training_jobs,
)
from training import contract

ENTRYPOINT = "mlstack.io/training-entrypoint"
TEMPLATE = "mlstack-training-job"
RESULT_FILE = "/dev/termination-log"
CUSTOM = [
    "training.image.repository=registry.example.com/my-team/train",
    "training.image.tag=2024.06.1",
    "training.command={python,train.py}",
    "training.args={--rows=500,--seed=7}",
]


def _jobs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The three Jobs the chart defines, by where they come from: the install-time Job, the
    CronJob's template and the ConfigMap's template (all as Job manifests)."""
    (job,) = training_jobs(objects)
    (cron,) = find(objects, "CronJob")
    (configmap,) = find(objects, "ConfigMap", TEMPLATE)
    return {
        "job": job,
        "cronjob": cron["spec"]["jobTemplate"],
        "configmap": yaml.safe_load(configmap["data"]["job.yaml"]),
    }


def _render_jobs(set_values: list[str]) -> dict[str, dict[str, Any]]:
    return _jobs(render(set_values=["training.schedule.enabled=true", *set_values]))


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "training"
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_built_in_round_runs_python_m_training_with_its_flags() -> None:
    jobs = _render_jobs(["training.candidates={logreg,svm}", "training.extraArgs={--no-onnx}"])
    for where, job in jobs.items():
        container = _container(job)
        assert container["image"] == f"mlstack-training:{APP_VERSION}", where
        assert container["imagePullPolicy"] == "IfNotPresent", where
        assert container["command"] == ["python", "-m", "training"], where
        assert container["args"] == ["--candidates=logreg,svm", "--no-onnx"], where


def test_custom_image_and_command_run_in_the_job_the_cronjob_and_the_template() -> None:
    jobs = _render_jobs([*CUSTOM, "training.image.pullPolicy=Always"])
    for where, job in jobs.items():
        container = _container(job)
        assert container["image"] == "registry.example.com/my-team/train:2024.06.1", where
        assert container["imagePullPolicy"] == "Always", where
        assert container["command"] == ["python", "train.py"], where
        # The built-in round's --candidates is not passed: only the round understands it.
        assert container["args"] == ["--rows=500", "--seed=7"], where
    # One pod template: the Job `mlstack train` and the API copy is the one the chart runs.
    assert jobs["configmap"]["spec"] == jobs["job"]["spec"]
    assert jobs["cronjob"]["spec"] == jobs["job"]["spec"]


def test_custom_command_without_args_passes_none() -> None:
    container = _container(_render_jobs(["training.command={python,train.py}"])["job"])
    assert container["command"] == ["python", "train.py"]
    assert "args" not in container
    assert container["image"] == f"mlstack-training:{APP_VERSION}"


def test_custom_image_digest_is_appended_to_its_tag() -> None:
    digest = "sha256:" + "ab" * 32
    container = _container(_render_jobs([*CUSTOM, f"training.image.digest={digest}"])["job"])
    assert container["image"] == f"registry.example.com/my-team/train:2024.06.1@{digest}"


def test_image_registry_is_not_prefixed_to_the_users_image() -> None:
    jobs = _render_jobs([*CUSTOM, "image.registry=mirror.example.com"])
    assert _container(jobs["job"])["image"] == "registry.example.com/my-team/train:2024.06.1"
    images = {
        d["metadata"]["name"]: c["image"]
        for d in find(render(set_values=["image.registry=mirror.example.com"]), "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images["mlstack-inference"] == f"mirror.example.com/mlstack-inference:{APP_VERSION}"
    assert images["mlstack-control"] == f"mirror.example.com/mlstack-training:{APP_VERSION}"


def test_training_pull_policy_defaults_to_the_charts() -> None:
    jobs = _render_jobs([*CUSTOM, "image.pullPolicy=Never"])
    assert {_container(j)["imagePullPolicy"] for j in jobs.values()} == {"Never"}


@pytest.mark.parametrize(("set_values", "entrypoint"), [([], "round"), (CUSTOM, "custom")])
def test_job_and_pods_say_which_entrypoint_runs(set_values: list[str], entrypoint: str) -> None:
    jobs = _render_jobs([*set_values, "training.podAnnotations.team=ml"])
    for where, job in jobs.items():
        assert job["metadata"]["annotations"][ENTRYPOINT] == entrypoint, where
        pod = job["spec"]["template"]["metadata"]["annotations"]
        assert pod == {ENTRYPOINT: entrypoint, "team": "ml"}, where


@pytest.mark.parametrize(
    "backend",
    [
        [],
        [
            "mlflow.enabled=false",
            "mlflow.externalTrackingUri=https://mlflow.example.com",
            "mlflow.auth.enabled=false",
        ],
    ],
    ids=["release-mlflow", "external-mlflow"],
)
def test_custom_command_gets_the_built_in_rounds_environment(backend: list[str]) -> None:
    settings = [
        *backend,
        "model.name=iris-prod",
        "training.metric=accuracy",
        "training.margin=0.01",
        "training.minScore=0.9",
        "training.extraEnv[0].name=MLFLOW_TRACKING_TOKEN",
        "training.extraEnv[0].valueFrom.secretKeyRef.name=mlflow-token",
        "training.extraEnv[0].valueFrom.secretKeyRef.key=token",
    ]
    round_env = _env(_container(_render_jobs(settings)["job"]))
    # A command in the platform image: exactly the round's environment.
    command_only = _render_jobs([*settings, "training.command={python,/code/train.py}"])
    for where, job in command_only.items():
        assert _container(job)["env"] == _container(_render_jobs(settings)[where])["env"], where
    # The user's image: the same, but the runs are tagged with the code that ran, its tag.
    for where, job in _render_jobs([*settings, *CUSTOM]).items():
        env = _env(_container(job))
        assert env == {**round_env, "MLSTACK_CODE_VERSION": "2024.06.1"}, where
    assert round_env["MLFLOW_TRACKING_URI"] == (
        "https://mlflow.example.com" if backend else f"http://mlstack-mlflow.{NAMESPACE}.svc:5000"
    )
    assert round_env["MLSTACK_MODEL_NAME"] == "iris-prod"
    assert round_env["MLSTACK_METRIC"] == "accuracy"
    assert round_env["MLSTACK_CODE_VERSION"] == APP_VERSION
    assert round_env["MLFLOW_TRACKING_TOKEN"] == {
        "secretKeyRef": {"name": "mlflow-token", "key": "token"}
    }


@pytest.mark.parametrize("set_values", [[], CUSTOM], ids=["round", "custom"])
def test_result_is_the_termination_message(set_values: list[str]) -> None:
    for where, job in _render_jobs(set_values).items():
        container = _container(job)
        assert _env(container)["MLSTACK_RESULT_FILE"] == RESULT_FILE, where
        assert container["terminationMessagePath"] == RESULT_FILE, where
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", where


def test_custom_training_values_rename_the_job() -> None:
    def name(set_values: list[str]) -> str:
        (job,) = training_jobs(render(set_values=set_values))
        return str(job["metadata"]["name"])

    custom = name(CUSTOM)
    assert custom != name([])
    for change in (
        "training.image.tag=2024.06.2",
        "training.command={python,other.py}",
        "training.args={--rows=600}",
    ):
        assert name([*CUSTOM, change]) != custom, change


def test_custom_training_scenario_renders_the_users_job() -> None:
    objects = render([CHART / "ci" / "custom-training-values.yaml"])
    jobs = _jobs(objects)
    for where, job in jobs.items():
        container = _container(job)
        assert container["command"] == ["python", "train.py"], where
        assert job["metadata"]["annotations"][ENTRYPOINT] == "custom", where
    assert jobs["configmap"]["spec"] == jobs["job"]["spec"]


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (
            ["training.args={--rows=500}"],
            "training.args is set without training.command: training.args are the arguments "
            "of your own command; for the built-in round use training.extraArgs",
        ),
        (
            ["training.command={python,train.py}", "training.extraArgs={--no-onnx}"],
            "training.extraArgs is set with training.command: training.extraArgs go to the "
            "built-in round only; put the arguments of your command in training.args",
        ),
        (
            ["training.image.repository=my-team/train"],
            "training.image.repository is my-team/train: set training.image.tag",
        ),
        (
            ["training.podAnnotations.mlstack\\.io/training-entrypoint=round"],
            "training.podAnnotations sets mlstack.io/training-entrypoint, which the chart sets "
            "from training.command (round or custom): remove it",
        ),
        (
            ["training.image.tag=1.0"],
            "training.image.tag or training.image.digest is set but training.image.repository "
            "is empty",
        ),
        (
            ["training.image.digest=sha256:" + "ab" * 32],
            "training.image.tag or training.image.digest is set but training.image.repository "
            "is empty",
        ),
    ],
)
def test_invalid_training_values_fail_naming_them(set_values: list[str], message: str) -> None:
    with pytest.raises(HelmError, match="invalid values") as failure:
        render(set_values=set_values)
    assert message in str(failure.value)


def test_invalid_training_values_fail_even_without_an_install_time_round() -> None:
    # The Job template is still published for the control plane.
    with pytest.raises(HelmError, match="invalid values") as failure:
        render(set_values=["training.enabled=false", "training.args={--rows=500}"])
    assert "training.args is set without training.command" in str(failure.value)


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (["training.image.repository=my-team/train", "training.image.tag=latest"], "/tag"),
        (["training.image.repository=my-team/train:1.0"], "/training/image/repository"),
        (["training.image.pullPolicy=Sometimes"], "/training/image/pullPolicy"),
        (["training.command={python,train.py}", "training.args={--rows,500}"], "/args/1"),
        (["training.command="], "/training/command"),
    ],
)
def test_schema_rejects_bad_training_values(set_values: list[str], message: str) -> None:
    with pytest.raises(HelmError, match="values don't meet the specifications") as failure:
        render(set_values=set_values)
    assert message in str(failure.value)


def _enums(node: Any, path: str = "") -> list[tuple[str, list[Any]]]:
    """Every enum in a JSON schema, with the path of the property holding it."""
    found: list[tuple[str, list[Any]]] = []
    if isinstance(node, dict):
        if "enum" in node:
            found.append((path, node["enum"]))
        for key, value in node.items():
            found += _enums(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _enums(value, f"{path}/{index}")
    return found


def test_gate_metric_choices_are_the_contracts_metrics() -> None:
    """training.metric (the round's gate and the control plane's main metric) offers exactly the
    metrics of training/contract.py, in its order; so does any other enum naming a metric."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    metric_enums = dict(
        (path, values) for path, values in _enums(schema) if set(values) & set(contract.METRICS)
    )
    assert "/properties/training/properties/metric" in metric_enums
    for path, values in metric_enums.items():
        assert values == list(contract.METRICS), path
    default = yaml.safe_load((CHART / "values.yaml").read_text())["training"]["metric"]
    assert default in contract.METRICS


def test_s3_data_gets_the_s3_settings_of_mlflows_artifacts_unless_its_own_are_set() -> None:
    mlflow_s3 = [
        "mlflow.artifacts.destination=s3://artifacts/mlflow",
        "mlflow.artifacts.s3.endpointUrl=http://minio.storage:9000",
        "mlflow.artifacts.s3.existingSecret=minio-keys",
        "training.data.source=s3://datasets/churn/2026-11.parquet",
        "training.target=churned",
    ]
    for where, job in _render_jobs(mlflow_s3).items():
        container = _container(job)
        env = _env(container)
        assert env["MLSTACK_DATA"] == "s3://datasets/churn/2026-11.parquet", where
        assert env["MLSTACK_TARGET"] == "churned", where
        assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.storage:9000", where
        assert container["envFrom"] == [{"secretRef": {"name": "minio-keys"}}], where
    own = [*mlflow_s3, "training.data.s3.existingSecret=data-keys"]
    container = _container(_render_jobs(own)["job"])
    assert container["envFrom"] == [{"secretRef": {"name": "data-keys"}}]


def test_https_data_gets_no_s3_settings() -> None:
    container = _container(
        _render_jobs(
            [
                "mlflow.artifacts.destination=s3://artifacts/mlflow",
                "mlflow.artifacts.s3.existingSecret=minio-keys",
                "training.data.source=https://data.example.com/churn.csv.gz",
                "training.target=churned",
            ]
        )["job"]
    )
    assert "envFrom" not in container
    assert "MLFLOW_S3_ENDPOINT_URL" not in _env(container)


def test_data_on_a_claim_is_mounted_read_only_and_named_by_its_path() -> None:
    set_values = [
        "training.data.existingClaim=datasets",
        "training.data.path=churn/2026-11.parquet",
        "training.target=churned",
    ]
    for where, job in _render_jobs(set_values).items():
        container = _container(job)
        assert _env(container)["MLSTACK_DATA"] == "/data/churn/2026-11.parquet", where
        assert {"name": "data", "mountPath": "/data", "readOnly": True} in container[
            "volumeMounts"
        ], where
        volumes = job["spec"]["template"]["spec"]["volumes"]
        assert {
            "name": "data",
            "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True},
        } in volumes, where


def test_the_round_gets_its_cores_and_its_time_budget() -> None:
    env = _env(_container(_render_jobs(["training.nJobs=3"])["job"]))
    assert env["MLSTACK_N_JOBS"] == "3"
    assert env["MLSTACK_TIME_BUDGET_SECONDS"] == "2700"
    assert "MLSTACK_N_JOBS" not in _env(_container(_render_jobs([])["job"]))


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (
            ["training.dataset=file"],
            "training.dataset is file: set training.data.source (s3://, https:// or a path)",
        ),
        (
            ["training.data.source=s3://b/k.csv"],
            "training.data names a file to train on: set training.target",
        ),
        (
            [
                "training.data.source=s3://b/k.csv",
                "training.data.existingClaim=c",
                "training.data.path=k.csv",
                "training.target=y",
            ],
            "training.data.source and training.data.existingClaim are both set",
        ),
        (
            ["training.data.existingClaim=c", "training.target=y"],
            "training.data.existingClaim is set: set training.data.path",
        ),
        (
            ["training.data.path=k.csv", "training.target=y"],
            "training.data.path is set without training.data.existingClaim",
        ),
        (
            ["training.data.source=http://data.example.com/k.csv", "training.target=y"],
            "training.data.source is http://data.example.com/k.csv: use s3://bucket/key",
        ),
        (
            ["training.timeBudgetSeconds=3600"],
            "training.timeBudgetSeconds (3600) is not under training.activeDeadlineSeconds (3600)",
        ),
    ],
)
def test_incoherent_data_values_fail_naming_them(set_values: list[str], message: str) -> None:
    with pytest.raises(HelmError, match="invalid values") as failure:
        render(set_values=set_values)
    assert message in str(failure.value)


def test_a_parallel_round_is_an_indexed_job_whose_pods_share_the_jobs_uid() -> None:
    for where, job in _render_jobs(["training.parallelism=3"]).items():
        spec = job["spec"]
        assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
            "Indexed",
            3,
            3,
        ), where
        env = _env(_container(job))
        assert env["MLSTACK_SHARDS"] == "3", where
        assert env["MLSTACK_ROUND_ID"] == {
            "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}
        }, where
    single = _render_jobs([])["job"]
    assert "completionMode" not in single["spec"]
    assert "MLSTACK_SHARDS" not in _env(_container(single))


def test_parallelism_is_bounded_by_the_schema() -> None:
    with pytest.raises(HelmError, match="values don't meet the specifications") as failure:
        render(set_values=["training.parallelism=0"])
    assert "/training/parallelism" in str(failure.value)
