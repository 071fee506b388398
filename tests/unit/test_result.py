"""The round's result is written as JSON where the control plane reads it back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from training import contract
from training.contract import ManifestError, TrainingResult
from training.result import write_result

RESULT = TrainingResult(
    model_name=contract.DEFAULT_MODEL_NAME,
    version="7",
    run_id="0123abcd",
    decision=contract.ALIAS_CHALLENGER,
    reason="does not beat champion v6",
    onnx=True,
)


def test_the_result_is_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_result(RESULT, path)
    assert TrainingResult.from_json(path.read_text()) == RESULT
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_result_replaces_the_old_one_whole_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "result.json"
    path.write_text("an older, longer content that must not survive in part " * 10)
    write_result(RESULT, path)
    assert TrainingResult.from_json(path.read_bytes()) == RESULT
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_no_path_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_result(RESULT, None)
    assert list(tmp_path.iterdir()) == []


def test_what_cannot_be_renamed_over_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "termination-log"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_result(RESULT, fifo)
        assert TrainingResult.from_json(os.read(reader, 4096)) == RESULT
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_missing_folder_is_an_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_result(RESULT, tmp_path / "nowhere" / "result.json")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Traceback (most recent call last):\n  File ...\nDatasetError: column 'y' missing",
        '["a list"]',
        '{"model_name": "m", "version": "1"}',
    ],
    ids=["empty", "log lines", "not an object", "missing keys"],
)
def test_what_is_not_a_result_is_refused(text: str) -> None:
    with pytest.raises(ManifestError, match="training result is malformed"):
        TrainingResult.from_json(text)
