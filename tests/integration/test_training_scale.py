"""Rounds that adapt to the data: the family skip, the time budget, successive halving, and data
read from Parquet, a real S3-compatible server (moto in server mode) and a real HTTPS server.

Every round runs in a subprocess (`python -m training`) against the shared real MLflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from tests.processes import Process, free_port, http_status, start, wait_until
from training import contract
from training.search import progress_line


def _round(
    tracking_uri: str, name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", "--model-name", name, "--experiment", name, *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _runs(client: MlflowClient, name: str) -> tuple[object, list[object]]:
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    role = contract.TAG_ROUND_ROLE
    parents = [r for r in runs if r.data.tags[role] == contract.ROLE_ROUND]
    assert len(parents) == 1
    return parents[0], [r for r in runs if r.data.tags[role] == contract.ROLE_CANDIDATE]


@pytest.fixture
def name() -> str:
    return f"scale-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(mlflow_server: Process) -> MlflowClient:
    return MlflowClient(mlflow_server.url)


@pytest.fixture(scope="module")
def iris_frame() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    frame.columns = ["sl", "sw", "pl", "pw", "species"]
    frame["species"] = frame["species"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    return frame


def test_the_svm_is_skipped_above_its_row_threshold_and_the_round_says_why(
    mlflow_server: Process, client: MlflowClient, name: str
) -> None:
    done = _round(mlflow_server.url, name, "--candidates", "logreg,svm", "--svm-max-rows", "50")
    assert done.returncode == 0, done.stderr
    assert "skipped svm: 112 training rows is over MLSTACK_SVM_MAX_ROWS=50" in done.stdout
    parent, children = _runs(client, name)
    assert "MLSTACK_SVM_MAX_ROWS=50" in parent.data.tags[f"{contract.TAG_SKIPPED_PREFIX}svm"]
    assert contract.TAG_TRUNCATED not in parent.data.tags
    assert [c.data.tags[contract.TAG_CANDIDATE] for c in children] == ["logreg"]


def test_below_the_threshold_the_svm_runs(
    mlflow_server: Process, client: MlflowClient, name: str
) -> None:
    done = _round(mlflow_server.url, name, "--candidates", "logreg,svm", "--svm-max-rows", "112")
    assert done.returncode == 0, done.stderr
    parent, children = _runs(client, name)
    assert not any(t.startswith(contract.TAG_SKIPPED_PREFIX) for t in parent.data.tags)
    assert len(children) == 2


def test_a_spent_time_budget_registers_the_best_so_far_through_the_gate_and_records_the_cut(
    mlflow_server: Process, client: MlflowClient, name: str
) -> None:
    done = _round(
        mlflow_server.url,
        name,
        *("--candidates", "logreg,random_forest,hist_gradient_boosting"),
        *("--time-budget-seconds", "0.001"),
    )
    assert done.returncode == 0, done.stderr
    parent, children = _runs(client, name)
    assert [c.data.tags[contract.TAG_CANDIDATE] for c in children] == ["logreg"]
    assert parent.data.tags[contract.TAG_TRUNCATED] == "random_forest,hist_gradient_boosting"
    reason = parent.data.tags[f"{contract.TAG_SKIPPED_PREFIX}random_forest"]
    assert "time budget of 0.001 s was spent" in reason
    assert "skipped hist_gradient_boosting: the time budget" in done.stdout
    version = client.get_model_version(name, "1")
    assert version.tags[contract.TAG_CANDIDATE] == "logreg"
    assert version.tags[contract.TAG_GATE_DECISION] == contract.ALIAS_CHAMPION


def test_above_the_threshold_the_search_is_successive_halving_on_growing_subsets(
    mlflow_server: Process, client: MlflowClient, name: str
) -> None:
    done = _round(
        mlflow_server.url,
        name,
        *("--candidates", "hist_gradient_boosting,baseline"),
        *("--halving-min-rows", "100", "--progress-seconds", "0.2"),
    )
    assert done.returncode == 0, done.stderr
    assert "hist_gradient_boosting started: successive halving" in done.stdout
    # What the control plane's training-job view shows as `progress`: the round's own lines.
    progress = [line for line in done.stdout.splitlines() if progress_line(line)]
    assert progress[0].startswith("search successive halving on ")
    assert any("hist_gradient_boosting" in line and " fits, about " in line for line in progress)
    assert progress[-1].startswith("[2/2] baseline") and " cv f1_macro " in progress[-1]
    assert not any(line.startswith(("winner", "registered")) for line in progress)
    parent, children = _runs(client, name)
    assert parent.data.params["search"] == "halving"
    by_family = {c.data.tags[contract.TAG_CANDIDATE]: c for c in children}
    boosting = by_family["hist_gradient_boosting"].data.params
    assert boosting["search"] == "halving"
    rows = [int(r) for r in boosting["halving_rows"].split(",")]
    kept = [int(n) for n in boosting["halving_candidates"].split(",")]
    assert len(rows) >= 2 and rows == sorted(rows) and rows[-1] <= 112
    assert kept[0] == 4 and kept == sorted(kept, reverse=True)
    # A one-point grid has nothing to halve.
    assert by_family["baseline"].data.params["search"] == "grid"


def test_below_the_threshold_the_search_is_the_exhaustive_grid(
    mlflow_server: Process, client: MlflowClient, name: str
) -> None:
    done = _round(mlflow_server.url, name, "--candidates", "logreg", "--halving-min-rows", "113")
    assert done.returncode == 0, done.stderr
    parent, children = _runs(client, name)
    assert parent.data.params["search"] == "grid"
    assert "halving_rows" not in children[0].data.params
    assert int(parent.data.params["cores"]) >= 1


def test_a_parquet_file_trains_like_the_same_csv(
    mlflow_server: Process, client: MlflowClient, iris_frame: pd.DataFrame, tmp_path: Path
) -> None:
    iris_frame.to_parquet(tmp_path / "flowers.parquet")
    iris_frame.to_csv(tmp_path / "flowers.csv", index=False)
    hashes = []
    for file in ("flowers.parquet", "flowers.csv"):
        name = f"scale-{uuid.uuid4().hex[:8]}"
        args = ("--data", str(tmp_path / file), "--target", "species", "--candidates", "logreg")
        done = _round(mlflow_server.url, name, *args)
        assert done.returncode == 0, done.stderr
        version = client.get_model_version(name, "1")
        assert version.tags[contract.TAG_DATASET_NAME] == "flowers"
        hashes.append(version.tags[contract.TAG_DATASET_HASH])
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("text-feature", "column 'sl' is not numeric: its Parquet type is string"),
        ("null-feature", "column 'pw' has 1 missing values (row 3 first)"),
        ("no-target", "target column 'species' is not in the Parquet file"),
        ("huge", "beyond float32's range"),
    ],
)
def test_a_bad_parquet_file_is_refused_naming_the_column_and_nothing_is_logged(
    mlflow_server: Process,
    client: MlflowClient,
    iris_frame: pd.DataFrame,
    tmp_path: Path,
    name: str,
    change: str,
    message: str,
) -> None:
    frame = iris_frame.copy()
    if change == "text-feature":
        frame["sl"] = frame["sl"].astype(str)
    elif change == "null-feature":
        frame.loc[2, "pw"] = None
    elif change == "no-target":
        frame = frame.drop(columns="species")
    elif change == "huge":
        frame.loc[5, "sw"] = 1e300
    frame.to_parquet(tmp_path / "bad.parquet")
    done = _round(
        mlflow_server.url, name, "--data", str(tmp_path / "bad.parquet"), "--target", "species"
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert client.get_experiment_by_name(name) is None


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server: moto in server mode, on loopback."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    process = start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log, url
    )
    try:
        wait_until(lambda: http_status(url) is not None, 60, "moto's S3 server")
        yield url
    finally:
        process.stop()


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "mlstack-test",
    "AWS_SECRET_ACCESS_KEY": "mlstack-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def test_an_s3_url_is_read_through_the_endpoint_mlflow_uses(
    mlflow_server: Process, client: MlflowClient, s3: str, iris_frame: pd.DataFrame, name: str
) -> None:
    bucket = boto3.client("s3", endpoint_url=s3, **_boto(S3_ENV))
    bucket.create_bucket(Bucket="training-data")
    bucket.put_object(
        Bucket="training-data", Key="flowers/v1/flowers.csv", Body=iris_frame.to_csv(index=False)
    )
    env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3}
    url = "s3://training-data/flowers/v1/flowers.csv"
    done = _round(
        mlflow_server.url,
        name,
        "--data",
        url,
        "--target",
        "species",
        "--candidates",
        "logreg",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    version = client.get_model_version(name, "1")
    assert version.tags[contract.TAG_DATASET_NAME] == "flowers"

    missing = _round(
        mlflow_server.url,
        f"{name}-missing",
        *("--data", "s3://training-data/flowers/v2/flowers.csv", "--target", "species"),
        env=env,
    )
    assert missing.returncode == 2
    assert "cannot read s3://training-data/flowers/v2/flowers.csv: NoSuchKey" in missing.stderr
    assert client.get_experiment_by_name(f"{name}-missing") is None


def _boto(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


_HTTPS_SERVER = """
import http.server, ssl, sys
port, directory, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=directory)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def https(
    tmp_path_factory: pytest.TempPathFactory, iris_frame: pd.DataFrame
) -> Iterator[tuple[str, Path]]:
    """A real HTTPS server with a certificate of its own, serving a folder of data files.
    Yields its URL and the certificate a client must trust (SSL_CERT_FILE)."""
    directory = tmp_path_factory.mktemp("https")
    served = directory / "files"
    served.mkdir()
    iris_frame.to_csv(served / "flowers.csv.gz", index=False, compression="gzip")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    process = start(
        [sys.executable, "-c", _HTTPS_SERVER, str(port), str(served), str(cert), str(key)],
        directory / "server.log",
        url,
    )
    try:
        import ssl
        import urllib.request

        context = ssl.create_default_context(cafile=str(cert))

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/flowers.csv.gz", context=context, timeout=2):
                    return True
            except OSError:
                return False

        wait_until(answers, 30, "the HTTPS file server")
        yield url, cert
    finally:
        process.stop()


def test_an_https_url_is_read_and_a_failing_one_names_the_url_and_the_status(
    mlflow_server: Process, client: MlflowClient, https: tuple[str, Path], name: str
) -> None:
    url, cert = https
    env = {"SSL_CERT_FILE": str(cert)}
    done = _round(
        mlflow_server.url,
        name,
        *("--data", f"{url}/flowers.csv.gz", "--target", "species", "--candidates", "logreg"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert client.get_model_version(name, "1").tags[contract.TAG_DATASET_NAME] == "flowers"

    for path, reason in (
        ("/nothing.csv", "the server answered 404"),
        ("/flowers.csv.gz", "CERTIFICATE_VERIFY_FAILED"),
    ):
        refused = _round(
            mlflow_server.url,
            f"{name}-refused",
            *("--data", f"{url}{path}", "--target", "species"),
            env=env if "404" in reason else {},
        )
        assert refused.returncode == 2
        assert f"cannot read {url}{path}" in refused.stderr and reason in refused.stderr
    assert client.get_experiment_by_name(f"{name}-refused") is None


def test_plain_http_is_refused_naming_the_schemes_allowed(
    mlflow_server: Process, name: str
) -> None:
    refused = _round(
        mlflow_server.url, name, "--data", "http://example.invalid/x.csv", "--target", "y"
    )
    assert refused.returncode == 2
    assert "unsupported scheme 'http'; use a path, s3:// or https://" in refused.stderr


def _shard(tracking_uri: str, name: str, index: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "training", "--model-name", name, "--experiment", name),
            *("--shards", "2", "--round-id", f"job-{name}", *args),
        ],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "JOB_COMPLETION_INDEX": str(index)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_round_spread_over_two_pods_searches_each_share_once_and_pod_0_registers_the_best(
    mlflow_server: Process, client: MlflowClient, name: str
) -> None:
    # Shard 1 starts first: it waits for the round's run pod 0 creates.
    args = ("--candidates", "logreg,random_forest,baseline")
    second = _shard(mlflow_server.url, name, 1, *args)
    first = _shard(mlflow_server.url, name, 0, *args)
    out0, err0 = first.communicate(timeout=600)
    out1, err1 = second.communicate(timeout=600)
    assert first.returncode == 0, err0
    assert second.returncode == 0, err1
    assert "shard 1 of 2: " in out1 and "registered" not in out1

    parent, children = _runs(client, name)
    assert parent.data.tags[contract.TAG_ROUND_ID] == f"job-{name}"
    assert {parent.data.tags[f"{contract.TAG_SHARD_PREFIX}{i}"] for i in (0, 1)} == {
        f"done {sum(c.data.tags[contract.TAG_SHARD] == str(i) for c in children)}" for i in (0, 1)
    }
    # The 3 logreg + 4 random_forest + 1 baseline points, dealt round-robin: each searched once.
    searched = sorted(
        (c.data.tags[contract.TAG_CANDIDATE], c.data.tags[contract.TAG_SHARD]) for c in children
    )
    assert searched == [
        ("baseline", "1"),
        ("logreg", "0"),
        ("logreg", "1"),
        ("random_forest", "0"),
        ("random_forest", "1"),
    ]
    best = max(children, key=lambda c: c.data.metrics[contract.CV_MEAN_METRIC])
    version = client.get_model_version(name, "1")
    assert version.tags[contract.TAG_CANDIDATE] == best.data.tags[contract.TAG_CANDIDATE]
    assert version.tags[contract.TAG_GATE_DECISION] == contract.ALIAS_CHAMPION
    assert f"best {best.data.tags[contract.TAG_CANDIDATE]}" in out0


def test_pod_0_of_a_spread_round_fails_naming_the_shard_that_never_finished(
    mlflow_server: Process, client: MlflowClient, name: str
) -> None:
    alone = _shard(
        mlflow_server.url, name, 0, "--candidates", "logreg", "--shard-wait-seconds", "3"
    )
    _, err = alone.communicate(timeout=600)
    assert alone.returncode == 1
    assert "shards 1 of 2 did not finish within 3 s (MLSTACK_SHARD_WAIT_SECONDS)" in err
    assert client.search_model_versions(f"name = '{name}'") == []
