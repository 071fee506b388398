"""Invalid input and an unreachable MLflow: a non-zero exit, a clear message, nothing logged."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.processes import Process, free_port
from training.__main__ import EXIT_INVALID_INPUT, EXIT_MLFLOW_UNAVAILABLE, main

GOOD_HEADER = "a,b,label\n"
GOOD_ROWS = "".join(f"{i},{i % 7},{'x' if i % 2 else 'y'}\n" for i in range(40))

# (file name, file content or None for "does not exist", target, expected message part)
CASES = [
    ("missing.csv", None, "label", "does not exist"),
    ("no_target.csv", GOOD_HEADER + GOOD_ROWS, "class", "target column 'class' is not in"),
    ("text.csv", GOOD_HEADER + "1,red,x\n" + GOOD_ROWS, "label", "column 'b' is not numeric"),
    ("holes.csv", GOOD_HEADER + "1,,x\n2,3,\n" + GOOD_ROWS, "label", "column 'b' has 1 missing"),
    (
        "one_class.csv",
        GOOD_HEADER + "".join(f"{i},{i},x\n" for i in range(30)),
        "label",
        "at least 2 are needed",
    ),
    ("tiny_class.csv", GOOD_HEADER + GOOD_ROWS + "1,2,z\n", "label", "class 'z' has 1 rows"),
    ("dupes.csv", "a,a,label\n" + GOOD_ROWS, "label", "duplicate column names: 'a'"),
    ("empty.csv", "", "label", "has no header row"),
    ("header_only.csv", GOOD_HEADER, "label", "no data rows"),
    ("only_target.csv", "label\n" + "x\ny\n" * 20, "label", "no feature columns"),
    ("infinite.csv", GOOD_HEADER + "inf,1,x\n" + GOOD_ROWS, "label", "column 'a' has infinite"),
]


@pytest.mark.parametrize(
    ("filename", "content", "target", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_invalid_csv_exits_non_zero_and_registers_nothing(
    filename: str,
    content: str | None,
    target: str,
    message: str,
    tmp_path: Path,
    mlflow_server: Process,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    name = f"invalid-{uuid.uuid4().hex[:8]}"
    path = tmp_path / filename
    if content is not None:
        path.write_text(content)
    code = main(
        ["--csv", str(path), "--target", target, "--model-name", name, "--experiment", name]
    )
    assert code == EXIT_INVALID_INPUT
    assert message in capsys.readouterr().err
    client = MlflowClient(mlflow_server.url)
    assert client.search_model_versions(f"name = '{name}'") == []
    assert client.get_experiment_by_name(name) is None  # not even an experiment was made


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candidates", "logreg,perceptron"], "unknown families ['perceptron']"),
        (["--metric", "auc"], "unknown metric 'auc'"),
        (["--dataset", "csv"], "needs both --data PATH_OR_URL and --target COLUMN"),
        (["--test-size", "1.5"], "test_size"),
    ],
)
def test_invalid_flags_exit_non_zero_naming_the_option(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == EXIT_INVALID_INPUT
    assert message in capsys.readouterr().err


def test_unreachable_mlflow_fails_after_bounded_retries(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "training", "--mlflow-timeout-seconds", "2"],
        env={"MLFLOW_TRACKING_URI": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_MLFLOW_UNAVAILABLE
    assert f"MLflow at {url} is unreachable after 2 s" in result.stderr
