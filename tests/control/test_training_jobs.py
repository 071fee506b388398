"""Training Jobs on demand against a real kube-apiserver and etcd (no kubelet, no Job
controller: the test moves each Job's status the way the Job controller would), with the
control plane running as an identity that holds only the namespaced Role the chart gives it."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from control.jobs import ENTRYPOINT, job_state
from tests.control.records import AUTH
from tests.processes import KUBE_BIN, KubeApi, Process, start_control, start_kube_api
from training import contract
from training.contract import TrainingResult

RELEASE = "rel"
CONTROL_USER = "system:serviceaccount:{ns}:mlstack-control"
TEMPLATE_CONFIGMAP = f"{RELEASE}-mlstack-training-job"
TRAINING = {"app.kubernetes.io/component": "training", "app.kubernetes.io/instance": RELEASE}
# Exactly what the control plane uses: the chart's Role must allow this and nothing more.
ROLE_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "create"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get"],
        "resourceNames": [TEMPLATE_CONFIGMAP],
    },
]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


RESULT = TrainingResult(
    model_name=contract.DEFAULT_MODEL_NAME,
    version="7",
    run_id="0123abcd",
    decision=contract.ALIAS_CHALLENGER,
    reason="does not beat champion v6",
    onnx=True,
)


def _job(
    name: str,
    args: list[str],
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    command: tuple[str, ...] = ("python", "-m", "training"),
) -> dict[str, Any]:
    pod_labels = labels if labels is not None else TRAINING
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": pod_labels, "annotations": annotations or {}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 900,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "training",
                            "image": "mlstack-platform:test",
                            "command": list(command),
                            "args": args,
                        }
                    ],
                },
            },
        },
    }


class Cluster:
    """The admin's view, to set things up and to play the Job controller."""

    def __init__(self, api: KubeApi, directory: Path) -> None:
        from kubernetes import client, config

        self.api = api
        self.directory = directory
        admin = config.new_client_from_config(str(api.kubeconfig(directory / "admin", "admin")))
        self.core = client.CoreV1Api(admin)
        self.batch = client.BatchV1Api(admin)
        self.rbac = client.RbacAuthorizationV1Api(admin)

    def namespace(self, name: str) -> None:
        """A namespace with a default ServiceAccount and the control plane's Role."""
        self.core.create_namespace({"metadata": {"name": name}})
        self.core.create_namespaced_service_account(name, {"metadata": {"name": "default"}})
        self.rbac.create_namespaced_role(
            name, {"metadata": {"name": "mlstack-control"}, "rules": ROLE_RULES}
        )
        self.rbac.create_namespaced_role_binding(
            name,
            {
                "metadata": {"name": "mlstack-control"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "mlstack-control",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": CONTROL_USER.format(ns=name),
                    }
                ],
            },
        )

    def control_plane(self, namespace: str, **env: str) -> Process:
        kubeconfig = self.api.kubeconfig(
            self.directory / f"control-{namespace}", f"control-{namespace}", namespace
        )
        return start_control(
            self.directory / f"plane-{namespace}",
            "http://127.0.0.1:9",
            {
                "KUBECONFIG": str(kubeconfig),
                "MLSTACK_CONTROL_API_KEY": AUTH["x-api-key"],
                "MLSTACK_CONTROL_NAMESPACE": namespace,
                "MLSTACK_CONTROL_RELEASE": RELEASE,
                "MLSTACK_CONTROL_MAX_TRAINING_JOBS": "1",
                **env,
            },
        )

    def run(self, namespace: str, name: str) -> None:
        self.batch.patch_namespaced_job_status(
            name, namespace, {"status": {"active": 1, "ready": 0, "startTime": _now()}}
        )

    def succeed(self, namespace: str, name: str) -> None:
        now = _now()
        conditions = [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now},
        ]
        status = {"active": 0, "succeeded": 1, "completionTime": now, "conditions": conditions}
        if self.batch.read_namespaced_job(name, namespace).status.start_time is None:
            status["startTime"] = now
        self.batch.patch_namespaced_job_status(name, namespace, {"status": status})

    def pod(self, namespace: str, job: str) -> str:
        """A pod of Job `job`, as the Job controller would make it (no kubelet runs it)."""
        pod = f"{job}-x1"
        self.core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": pod, "labels": {"job-name": job}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "training", "image": "mlstack-platform:test"}],
                },
            },
        )
        return pod

    def terminate(self, namespace: str, pod: str, exit_code: int, message: str) -> None:
        """The pod's status as the kubelet reports it once the training container exited,
        with `message` as its termination message."""
        now = _now()
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "message": message,
            "startedAt": now,
            "finishedAt": now,
        }
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": "training",
                    "image": "mlstack-platform:test",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
        self.core.patch_namespaced_pod_status(pod, namespace, {"status": status})

    def fail(self, namespace: str, name: str) -> None:
        now = _now()
        conditions = [
            {"type": "FailureTarget", "status": "True", "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "lastTransitionTime": now},
        ]
        status = {"active": 0, "failed": 1, "conditions": conditions}
        if self.batch.read_namespaced_job(name, namespace).status.start_time is None:
            status["startTime"] = now
        self.batch.patch_namespaced_job_status(name, namespace, {"status": status})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    missing = [b for b in ("kube-apiserver", "etcd") if not (KUBE_BIN / b).is_file()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found in {KUBE_BIN}: run `make control-test` (it builds"
            " them first) or `make control-kube-bin` (hack/offline/tools.sh kube-apiserver etcd)",
            pytrace=False,
        )
    directory = tmp_path_factory.mktemp("kube")
    identities = {f"control-{ns}": CONTROL_USER.format(ns=ns) for ns in ("ml", "cm", "cu")}
    api = start_kube_api(directory, identities)
    try:
        yield Cluster(api, directory)
    finally:
        api.stop()


@pytest.fixture(scope="module")
def plane(cluster: Cluster) -> Iterator[Process]:
    """A control plane in namespace `ml`, where the chart's training Job already finished."""
    cluster.namespace("ml")
    cluster.batch.create_namespaced_job("ml", _job(f"{RELEASE}-train-1a2b3c4d", ["--seed", "1"]))
    cluster.succeed("ml", f"{RELEASE}-train-1a2b3c4d")
    process = cluster.control_plane("ml")
    yield process
    process.stop()


def _post(plane: Process, body: Any) -> httpx.Response:
    return httpx.post(f"{plane.url}/v1/training-jobs", json=body, headers=AUTH, timeout=30)


def _get(plane: Process, job_id: str = "") -> httpx.Response:
    path = f"/v1/training-jobs/{job_id}" if job_id else "/v1/training-jobs"
    return httpx.get(f"{plane.url}{path}", headers=AUTH, timeout=30)


BAD_PARAMETERS = [
    ({"candidates": ["nope"]}, "candidates: Value error, unknown families ['nope']"),
    ({"test_size": 1.5}, "test_size: Input should be less than 1"),
    ({"cv_folds": "many"}, "cv_folds: Input should be a valid integer"),
    ({"metric": "speed"}, "metric: Value error, unknown metric 'speed'"),
    ({"csv": "/data/x.csv"}, "a file dataset needs both --data PATH_OR_URL and --target COLUMN"),
    ({"force": "maybe"}, "force: Input should be a valid boolean"),
    ({"tracking_uri": "http://evil"}, "tracking_uri: not a training parameter"),
    ({"colour": "red"}, "colour: not a training parameter (allowed: dataset, data, csv, target"),
    (["--force"], "body: Input should be a valid dictionary"),
    ({"parallelism": 0}, "parallelism: 0 is not an integer from 1 to 64"),
    ({"parallelism": "2"}, "parallelism: '2' is not an integer from 1 to 64"),
]


@pytest.mark.parametrize(
    ("body", "message"), BAD_PARAMETERS, ids=[str(b[0]) for b in BAD_PARAMETERS]
)
def test_parameters_are_checked_before_any_job_exists(
    plane: Process, cluster: Cluster, body: Any, message: str
) -> None:
    before = len(cluster.batch.list_namespaced_job("ml").items)
    response = _post(plane, body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert len(cluster.batch.list_namespaced_job("ml").items) == before


def test_a_training_job_copies_the_template_with_the_flags_and_follows_its_status(
    plane: Process, cluster: Cluster
) -> None:
    created = _post(plane, {"candidates": ["logreg"], "min_score": 0.8, "force": True})
    assert created.status_code == 201, created.text
    view = created.json()
    name = view["id"]
    assert created.headers["location"] == f"/v1/training-jobs/{name}"
    assert name.startswith(f"{RELEASE}-train-api-") and len(name) <= 63
    assert view["state"] == "pending" and view["started"] is None
    assert view["parameters"] == ["--candidates", "logreg", "--min-score", "0.8", "--force"]
    assert view["requested_by"].startswith("api:127.0.0.1")

    job = cluster.batch.read_namespaced_job(name, "ml")
    container = job.spec.template.spec.containers[0]
    assert container.args == [
        "--seed",
        "1",
        "--candidates",
        "logreg",
        "--min-score",
        "0.8",
        "--force",
    ]
    assert container.command == ["python", "-m", "training"]
    assert job.metadata.labels == TRAINING and job.spec.backoff_limit == 0

    busy = _post(plane, {})
    assert busy.status_code == 409
    assert f"1 training Job(s) pending or running ({name})" in busy.json()["detail"]
    assert "MLSTACK_CONTROL_MAX_TRAINING_JOBS" in busy.json()["detail"]

    cluster.run("ml", name)
    running = _get(plane, name).json()
    assert running["state"] == "running" and running["started"].endswith("Z")
    assert running["finished"] is None and running["log_tail"] == []
    assert running["result_missing"] == "the Job has no pod"

    pod = cluster.pod("ml", name)
    started = _get(plane, name).json()
    assert started["registered_version"] is None and started["decision"] is None
    assert started["result_missing"] == f"container 'training' of pod {pod} has not finished"

    cluster.terminate("ml", pod, 0, RESULT.to_json() + "\n")
    cluster.succeed("ml", name)
    done = _get(plane, name).json()
    assert done["state"] == "succeeded" and done["finished"] is not None
    assert (done["mlflow_run_id"], done["registered_version"]) == ("0123abcd", "7")
    assert (done["decision"], done["reason"]) == ("challenger", "does not beat champion v6")
    assert done["result_missing"] is None

    again = _post(plane, {"seed": 7})
    assert again.status_code == 201, again.text
    failed_pod = cluster.pod("ml", again.json()["id"])
    # FallbackToLogsOnError: a failed container's termination message is the end of its log.
    log_end = "registered mlstack-classifier v8\ndecision   champion: no champion yet\n"
    cluster.terminate("ml", failed_pod, 2, log_end)
    cluster.fail("ml", again.json()["id"])
    failed = _get(plane, again.json()["id"]).json()
    assert failed["state"] == "failed" and failed["finished"] is not None
    # Printed lines are not read: no result, and the answer says why.
    assert failed["registered_version"] is None and failed["decision"] is None
    assert failed["result_missing"] == (
        f"the termination message of container 'training' of pod {failed_pod} is not a "
        "training result (exit code 2; a failed container's message is the end of its log)"
    )

    listed = [j["id"] for j in _get(plane).json()]
    assert listed[:2] == [again.json()["id"], name]
    assert f"{RELEASE}-train-1a2b3c4d" in listed


def test_a_training_job_with_parallelism_is_an_indexed_job_spreading_the_round(
    plane: Process, cluster: Cluster
) -> None:
    created = _post(plane, {"parallelism": 2, "candidates": "logreg,random_forest"})
    assert created.status_code == 201, created.text
    name = created.json()["id"]
    job = cluster.batch.read_namespaced_job(name, "ml")
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == (
        "Indexed",
        2,
        2,
    )
    container = job.spec.template.spec.containers[0]
    env = {e.name: e for e in container.env}
    assert env["MLSTACK_SHARDS"].value == "2"
    assert env["MLSTACK_ROUND_ID"].value_from.field_ref.field_path == (
        "metadata.labels['batch.kubernetes.io/controller-uid']"
    )
    assert container.args[-2:] == ["--candidates", "logreg,random_forest"]
    cluster.run("ml", name)
    cluster.succeed("ml", name)


def test_jobs_that_are_not_training_jobs_are_not_found(plane: Process, cluster: Cluster) -> None:
    cluster.batch.create_namespaced_job("ml", _job("backup-1", [], labels={"app": "backup"}))
    for job_id in ("backup-1", "no-such-job"):
        response = _get(plane, job_id)
        assert response.status_code == 404
        assert f"training Job '{job_id}' does not exist" in response.json()["detail"]
    assert _get(plane, "Not_A_Name").status_code == 422


def test_the_role_denies_what_the_control_plane_does_not_use(cluster: Cluster) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    kubeconfig = cluster.api.kubeconfig(cluster.directory / "as-control", "control-ml", "ml")
    api = config.new_client_from_config(str(kubeconfig))
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    assert batch.list_namespaced_job("ml").items  # what it uses works
    denied = [
        lambda: batch.delete_namespaced_job(f"{RELEASE}-train-1a2b3c4d", "ml"),
        lambda: batch.patch_namespaced_job_status(f"{RELEASE}-train-1a2b3c4d", "ml", {}),
        lambda: batch.list_namespaced_job("default"),
        lambda: batch.create_namespaced_job("default", _job("x", [])),
        lambda: core.list_namespaced_secret("ml"),
        lambda: core.create_namespaced_pod(
            "ml",
            {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        ),
        lambda: core.read_namespaced_config_map("other-config", "ml"),
        lambda: core.list_namespace(),
    ]
    for call in denied:
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403


def test_the_template_can_come_from_the_charts_configmap(cluster: Cluster) -> None:
    cluster.namespace("cm")
    template = _job(f"{RELEASE}-train-template", ["--dataset", "digits"])
    cluster.core.create_namespaced_config_map(
        "cm",
        {
            "metadata": {"name": TEMPLATE_CONFIGMAP},
            "data": {"job.yaml": yaml.safe_dump(template)},
        },
    )
    plane = cluster.control_plane(
        "cm", MLSTACK_CONTROL_TRAINING_TEMPLATE_CONFIGMAP=TEMPLATE_CONFIGMAP
    )
    try:
        created = _post(plane, {"candidates": "logreg"})
        assert created.status_code == 201, created.text
        job = cluster.batch.read_namespaced_job(created.json()["id"], "cm")
        assert job.spec.template.spec.containers[0].args == [
            "--dataset",
            "digits",
            "--candidates",
            "logreg",
        ]
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def custom_plane(cluster: Cluster) -> Iterator[Process]:
    """A control plane in namespace `cu`, whose template runs the user's own command."""
    cluster.namespace("cu")
    template = _job(
        f"{RELEASE}-train-template",
        ["--epochs", "3"],
        annotations={ENTRYPOINT: "custom"},
        command=("python", "my_training.py"),
    )
    cluster.core.create_namespaced_config_map(
        "cu",
        {
            "metadata": {"name": TEMPLATE_CONFIGMAP},
            "data": {"job.yaml": yaml.safe_dump(template)},
        },
    )
    process = cluster.control_plane(
        "cu", MLSTACK_CONTROL_TRAINING_TEMPLATE_CONFIGMAP=TEMPLATE_CONFIGMAP
    )
    yield process
    process.stop()


@pytest.mark.parametrize(
    "body",
    [{"seed": 7}, {"candidates": ["nope"]}, {"epochs": 5}],
    ids=["a round parameter", "an invalid round parameter", "the command's own flag"],
)
def test_a_custom_command_template_refuses_round_parameters(
    custom_plane: Process, cluster: Cluster, body: dict[str, Any]
) -> None:
    response = _post(custom_plane, body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "template runs a custom command (mlstack.io/training-entrypoint: custom)" in detail
    assert "it takes no training parameters, only its own arguments verbatim" in detail
    assert cluster.batch.list_namespaced_job("cu").items == []


def test_a_custom_command_template_runs_as_it_is_without_parameters(
    custom_plane: Process, cluster: Cluster
) -> None:
    created = _post(custom_plane, {})
    assert created.status_code == 201, created.text
    job = cluster.batch.read_namespaced_job(created.json()["id"], "cu")
    container = job.spec.template.spec.containers[0]
    assert (container.command, container.args) == (["python", "my_training.py"], ["--epochs", "3"])
    assert job.metadata.annotations[ENTRYPOINT] == "custom"


def test_without_a_cluster_training_jobs_answer_503(key_file: Path, tmp_path: Path) -> None:
    plane = start_control(
        tmp_path,
        "http://127.0.0.1:9",
        {
            "MLSTACK_CONTROL_API_KEY": AUTH["x-api-key"],
            "KUBECONFIG": str(tmp_path / "none"),
            "KUBERNETES_SERVICE_HOST": "",
        },
    )
    try:
        response = _get(plane)
        assert response.status_code == 503
        assert "Kubernetes is not reachable" in response.json()["detail"]
        refused = _post(plane, {"candidates": ["nope"]})
        assert refused.status_code == 422  # checked before the cluster is asked
    finally:
        plane.stop()


def test_status_reports_the_last_training_job_and_the_inference_pods(
    plane: Process, cluster: Cluster
) -> None:
    import json
    import os
    import subprocess
    import sys

    pod = {
        "metadata": {
            "name": f"{RELEASE}-inference-1",
            "labels": {
                "app.kubernetes.io/component": "inference",
                "app.kubernetes.io/instance": RELEASE,
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "inference",
                    "image": "x",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ]
        },
    }
    cluster.core.create_namespaced_pod("ml", pod)
    newest = max(
        cluster.batch.list_namespaced_job(
            "ml", label_selector="app.kubernetes.io/component=training"
        ).items,
        key=lambda j: j.metadata.creation_timestamp,
    )
    kubeconfig = cluster.api.kubeconfig(cluster.directory / "as-admin", "admin", "ml")
    result = subprocess.run(
        [sys.executable, "-m", "control", "status", "--json", "-n", "ml", "--release", RELEASE],
        env={
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "MLSTACK_CONTROL_URL": plane.url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3  # MLflow is unreachable here; the rest is still reported
    k8s = json.loads(result.stdout)["cluster"]
    assert k8s["last_training_job"]["name"] == newest.metadata.name
    expected = job_state(cluster.batch.api_client.sanitize_for_serialization(newest.status))
    assert k8s["last_training_job"]["state"] == expected
    # Not scheduled (no kubelet): not ready, and no version to report.
    assert k8s["inference_pods"] == [
        {"name": f"{RELEASE}-inference-1", "ready": False, "model_version": None}
    ]


def _mlstack_train(cluster: Cluster, namespace: str, *flags: str) -> Any:
    import os
    import subprocess
    import sys

    kubeconfig = cluster.api.kubeconfig(cluster.directory / "as-admin", "admin", namespace)
    return subprocess.run(
        [sys.executable, "-m", "control", "train", "-n", namespace, "--no-wait", "--", *flags],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mlstack_train_copies_the_charts_configmap_found_by_its_labels(cluster: Cluster) -> None:
    cluster.namespace("cli")
    # A chart Job that ran at install, and the template the chart publishes: the template wins.
    cluster.batch.create_namespaced_job("cli", _job(f"{RELEASE}-train-1234abcd", ["--old"]))
    template = _job(f"{RELEASE}-train", ["--candidates=logreg"])
    cluster.core.create_namespaced_config_map(
        "cli",
        {
            "metadata": {"name": TEMPLATE_CONFIGMAP, "labels": TRAINING},
            "data": {"job.yaml": yaml.safe_dump(template)},
        },
    )
    result = _mlstack_train(cluster, "cli", "--min-score", "0.8")
    assert result.returncode == 0, result.stderr
    assert f"from ConfigMap {TEMPLATE_CONFIGMAP}" in result.stdout
    name = result.stdout.split("created job ", 1)[1].split()[0]
    job = cluster.batch.read_namespaced_job(name, "cli")
    assert job.spec.template.spec.containers[0].args == [
        "--candidates=logreg",
        "--min-score",
        "0.8",
    ]
    assert job.metadata.labels["app.kubernetes.io/instance"] == RELEASE


def _publish_template(cluster: Cluster, namespace: str, template: dict[str, Any]) -> None:
    """The template ConfigMap the chart publishes, found by its labels."""
    cluster.core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": TEMPLATE_CONFIGMAP, "labels": TRAINING},
            "data": {"job.yaml": yaml.safe_dump(template)},
        },
    )


@pytest.mark.parametrize(
    ("namespace", "annotations", "flags", "message"),
    [
        ("bad-value", {}, ["--min-score", "high"], "min_score"),
        ("bad-flag", {}, ["--no-such-flag"], "--no-such-flag"),
        ("bad-flag-round", {ENTRYPOINT: "round"}, ["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_mlstack_train_refuses_bad_flags_before_any_job_exists(
    cluster: Cluster, namespace: str, annotations: dict[str, str], flags: list[str], message: str
) -> None:
    cluster.namespace(namespace)
    _publish_template(cluster, namespace, _job(f"{RELEASE}-train", [], annotations=annotations))
    before = cluster.batch.list_namespaced_job(namespace).items
    result = _mlstack_train(cluster, namespace, *flags)
    assert result.returncode == 2
    assert message in result.stderr
    assert cluster.batch.list_namespaced_job(namespace).items == before


def test_mlstack_train_passes_a_custom_commands_arguments_verbatim(cluster: Cluster) -> None:
    cluster.namespace("cli-custom")
    template = _job(
        f"{RELEASE}-train", ["--epochs", "3"], annotations={ENTRYPOINT: "custom"}, command=("t",)
    )
    _publish_template(cluster, "cli-custom", template)
    result = _mlstack_train(cluster, "cli-custom", "--lr=0.1", "--no-such-flag", "x")
    assert result.returncode == 0, result.stderr
    name = result.stdout.split("created job ", 1)[1].split()[0]
    job = cluster.batch.read_namespaced_job(name, "cli-custom")
    assert job.spec.template.spec.containers[0].args == [
        "--epochs",
        "3",
        "--lr=0.1",
        "--no-such-flag",
        "x",
    ]


def test_mlstack_train_reports_the_gate_from_the_jobs_termination_message(
    cluster: Cluster,
) -> None:
    import os
    import subprocess
    import sys

    cluster.namespace("cli-follow")
    _publish_template(cluster, "cli-follow", _job(f"{RELEASE}-train", []))
    kubeconfig = cluster.api.kubeconfig(cluster.directory / "as-admin", "admin", "cli-follow")
    with subprocess.Popen(
        [sys.executable, "-m", "control", "train", "-n", "cli-follow", "--timeout", "60"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as train:
        assert train.stdout is not None
        first = train.stdout.readline()
        assert first.startswith("created job "), first + train.stderr.read()
        name = first.split()[2]
        pod = cluster.pod("cli-follow", name)
        cluster.terminate("cli-follow", pod, 0, RESULT.to_json())
        cluster.succeed("cli-follow", name)
        out, err = train.communicate(timeout=60)
    assert train.returncode == 0, err
    assert out.splitlines()[-1].endswith(
        "gate: challenger: does not beat champion v6 (mlstack-classifier v7, run 0123abcd)"
    )
