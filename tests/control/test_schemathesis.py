"""schemathesis against the real control plane: every operation of its OpenAPI document, with
the API key and without it, on each database backend, against a real MLflow (one trained
model) and a real kube-apiserver (the training-Job routes). No answer is a 5xx, and every
answer (status, content type, headers, body) is one the document declares.

Every route is fuzzed, the ones that move aliases, adopt versions and create Jobs included:
bad input must be refused with a 4xx there too. They act on this module's own MLflow and
namespace only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import fuzzing
from tests.control.conftest import BACKENDS, fresh_database
from tests.control.records import AUTH
from tests.control.test_training_jobs import CONTROL_USER, RELEASE, Cluster, _job
from tests.processes import (
    KUBE_BIN,
    Postgres,
    Process,
    start_control,
    start_kube_api,
    start_mlflow,
    train_model,
)

TEMPLATE = f"{RELEASE}-train-0f0f0f0f"  # the finished Job new ones copy
# All else needs the key. MLflow's webhook deliveries carry a signature instead (off here: 404).
OPEN = frozenset({"GET /livez", "GET /readyz", "GET /metrics", "POST /v1/webhooks/mlflow"})
Capture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """An MLflow of this module's own with one trained model, whose aliases the fuzzing moves."""
    mlflow = start_mlflow(tmp_path_factory.mktemp("fuzzed-mlflow"))
    try:
        train_model(mlflow.url, f"fuzzed-{uuid.uuid4().hex[:8]}", "--candidates", "logreg")
        yield mlflow
    finally:
        mlflow.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A kube-apiserver with a namespace per backend, each with the control plane's Role and a
    finished training Job to copy (as tests/control/test_training_jobs.py sets them up): one
    pass's Jobs must not hold the other's at the concurrency limit."""
    missing = [b for b in ("kube-apiserver", "etcd") if not (KUBE_BIN / b).is_file()]
    if missing:
        pytest.fail(f"{missing} not found in {KUBE_BIN}: run `make control-kube-bin`")
    directory = tmp_path_factory.mktemp("fuzzed-kube")
    api = start_kube_api(
        directory, {f"control-{ns}": CONTROL_USER.format(ns=ns) for ns in BACKENDS}
    )
    try:
        cluster = Cluster(api, directory)
        for namespace in BACKENDS:
            cluster.namespace(namespace)
            cluster.batch.create_namespaced_job(namespace, _job(TEMPLATE, ["--seed", "1"]))
            cluster.succeed(namespace, TEMPLATE)
        yield cluster
    finally:
        api.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def plane(
    request: pytest.FixtureRequest,
    registry: Process,
    cluster: Cluster,
    postgres: Postgres,
    key_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """A control plane on each backend, in the namespace of that name."""
    backend = namespace = request.param
    directory = tmp_path_factory.mktemp(f"fuzzed-control-{backend}")
    kubeconfig = cluster.api.kubeconfig(directory / "kubeconfig", f"control-{namespace}", namespace)
    env = {
        "MLSTACK_CONTROL_API_KEY_FILE": str(key_file),
        "KUBECONFIG": str(kubeconfig),
        "MLSTACK_CONTROL_NAMESPACE": namespace,
        "MLSTACK_CONTROL_RELEASE": RELEASE,
    }
    if backend == "postgresql":
        env["MLSTACK_CONTROL_DATABASE_URI"] = fresh_database(postgres)
    process = start_control(directory, registry.url, env)
    yield process
    process.stop()


def test_with_the_key_no_input_gets_a_5xx_or_an_undeclared_answer(
    plane: Process,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: Capture,
) -> None:
    report = fuzzing.fuzz(
        plane.url, tmp_path, AUTH, f"with the API key, {request.node.callspec.id}", capsys
    )
    # The key was taken and the fuzzing reached MLflow, the database and the cluster.
    for operation in ("GET /v1/models/{name}", "GET /v1/predictions", "POST /v1/training-jobs"):
        assert set(report.statuses(operation)) & {200, 201}, (operation, report.statuses(operation))


def test_without_the_key_every_protected_operation_answers_401(
    plane: Process,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: Capture,
) -> None:
    what = f"without the API key, {request.node.callspec.id}"
    report = fuzzing.fuzz(plane.url, tmp_path, None, what, capsys)
    assert report.documented > OPEN, sorted(OPEN - report.documented)
    for operation in sorted(report.documented - OPEN):
        statuses = report.statuses(operation)
        assert set(statuses) == {401}, (operation, dict(statuses))
