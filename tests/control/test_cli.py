"""The `mlstack` command against a real control plane and a real mlflow server:
`predictions`, `status` and `train --local`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from tests.control.records import AUTH, KEY, post, record
from tests.processes import Process, start_control
from training import contract

NOW = float(int(time.time()))


@pytest.fixture(scope="module")
def plane(
    mlflow_server: Process, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """A control plane holding 6 records: 4 successes of v1, 2 validation errors of v2."""
    process = start_control(
        tmp_path_factory.mktemp("control"),
        mlflow_server.url,
        {"MLSTACK_CONTROL_API_KEY_FILE": str(key_file)},
    )
    records = [record(f"ok-{i}", NOW - 100 + i) for i in range(4)]
    records += [record(f"bad-{i}", NOW - 50 + i, status=422, model_version="2") for i in range(2)]
    assert post(process.url, records).status_code == 202
    yield process
    process.stop()


def mlstack(
    *args: str, url: str = "http://127.0.0.1:9", key: str | None = KEY, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MLSTACK_CONTROL_URL": url, **env}
    environment.pop("MLSTACK_CONTROL_API_KEY", None)
    if key is not None:
        environment["MLSTACK_CONTROL_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "control", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_predictions_prints_the_filtered_page_as_a_table(plane: Process) -> None:
    result = mlstack("predictions", "--status", "success", "--limit", "3", url=plane.url)
    assert result.returncode == 0, result.stderr
    header, *rows, footer = result.stdout.splitlines()
    assert header.split()[:3] == ["TIME", "REQUEST", "ID"]
    assert [row.split()[1] for row in rows] == ["ok-3", "ok-2", "ok-1"]
    assert rows[0].split()[0].endswith("Z")
    assert footer == "1-3 of 4"


def test_predictions_json_is_the_api_answer(plane: Process) -> None:
    result = mlstack(
        "predictions", "--source", "validation", "--model-version", "2", "--json", url=plane.url
    )
    assert result.returncode == 0, result.stderr
    api = httpx.get(
        f"{plane.url}/v1/predictions",
        params={"source": "validation", "model_version": "2"},
        headers=AUTH,
    ).json()
    assert json.loads(result.stdout) == api
    assert [i["request_id"] for i in api["items"]] == ["bad-1", "bad-0"]


def test_predictions_since_takes_iso_8601(plane: Process) -> None:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 98))
    result = mlstack("predictions", "--since", since, "--json", url=plane.url)
    assert json.loads(result.stdout)["total"] == 4  # ok-2, ok-3, bad-0, bad-1


BAD_FLAGS = [
    (["--since", "yesterday"], "error: --since: Value error, 'yesterday' is neither ISO 8601"),
    (["--limit", "5000"], "error: --limit: Input should be less than or equal to 1000"),
    (["--status", "failed"], "error: --status: Input should be 'success' or 'error'"),
    (["--offset", "-3"], "error: --offset: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[" ".join(f[0]) for f in BAD_FLAGS])
def test_predictions_refuses_bad_flags_before_calling(flags: list[str], message: str) -> None:
    result = mlstack("predictions", *flags)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        (None, 1, "control plane answered 401: missing API key header 'x-api-key'"),
        ("guess", 1, "control plane answered 403: API key is not valid"),
    ],
)
def test_predictions_reports_auth_failures(
    plane: Process, key: str | None, status: int, message: str
) -> None:
    result = mlstack("predictions", url=plane.url, key=key)
    assert result.returncode == status
    assert message in result.stderr


def test_predictions_reports_an_unreachable_control_plane_with_status_3() -> None:
    result = mlstack("predictions")
    assert result.returncode == 3
    assert "control plane at http://127.0.0.1:9 is unreachable" in result.stderr


def test_status_summarises_mlflow_aliases_and_the_log_without_a_cluster(
    plane: Process, mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    result = mlstack(
        "status",
        "--model-name",
        champion_name,
        url=plane.url,
        MLFLOW_TRACKING_URI=mlflow_server.url,
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert lines["mlflow"] == f"{mlflow_server.url} reachable"
    assert lines["model"] == champion_name
    assert lines["champion"].startswith("v1 (f1_macro 0.")
    assert lines["challenger"] == "-"
    assert lines["predictions"] == "6 logged; last hour 6, errors 2"
    assert lines["cluster"].startswith("not reachable (")

    as_json = mlstack(
        "status",
        "--json",
        "--model-name",
        champion_name,
        url=plane.url,
        MLFLOW_TRACKING_URI=mlflow_server.url,
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    report = json.loads(as_json.stdout)
    assert report["model"]["aliases"][contract.ALIAS_CHAMPION]["version"] == "1"
    assert report["control_plane"]["predictions"]["total"] == 6
    assert "error" in report["cluster"]


def test_status_exits_3_when_mlflow_is_unreachable(tmp_path: Path) -> None:
    result = mlstack(
        "status", MLFLOW_TRACKING_URI="http://127.0.0.1:9", KUBECONFIG=str(tmp_path / "none")
    )
    assert result.returncode == 3
    assert "UNREACHABLE" in result.stdout.splitlines()[0]
    assert "control plane" in result.stdout and "cluster" in result.stdout


def test_train_local_runs_a_round_in_process_and_writes_its_result(
    mlflow_server: Process, tmp_path: Path
) -> None:
    name = f"local-{uuid.uuid4().hex[:8]}"
    result_file = tmp_path / "result.json"
    result = mlstack(
        "train",
        "--local",
        "--",
        "--model-name",
        name,
        "--experiment",
        name,
        "--candidates",
        "logreg",
        "--result-file",
        str(result_file),
        MLFLOW_TRACKING_URI=mlflow_server.url,
    )
    assert result.returncode == 0, result.stderr
    assert f"registered {name} v1" in result.stdout  # the summary stays, for people
    assert "decision   champion: no champion yet" in result.stdout
    champion = MlflowClient(mlflow_server.url).get_model_version_by_alias(
        name, contract.ALIAS_CHAMPION
    )
    assert str(champion.version) == "1"
    # What the registry says, as structured data (in the cluster: the termination message).
    assert contract.TrainingResult.from_json(result_file.read_text()) == contract.TrainingResult(
        model_name=name,
        version="1",
        run_id=champion.run_id,
        decision=contract.ALIAS_CHAMPION,
        reason=champion.tags[contract.TAG_GATE_REASON],
        onnx=champion.tags[contract.TAG_ONNX] == "true",
    )
    assert f"/runs/{champion.run_id}" in result.stdout


def test_train_local_passes_invalid_training_flags_through_with_status_2() -> None:
    result = mlstack("train", "--local", "--", "--candidates", "nope")
    assert result.returncode == 2
    assert "unknown families ['nope']" in result.stderr


def test_train_without_a_cluster_says_kubernetes_is_unreachable_with_status_3(
    tmp_path: Path,
) -> None:
    result = mlstack(
        "train", "--", "--seed", "3", KUBECONFIG=str(tmp_path / "none"), KUBERNETES_SERVICE_HOST=""
    )
    assert result.returncode == 3
    assert "Kubernetes is not reachable" in result.stderr
    assert "Traceback" not in result.stderr
