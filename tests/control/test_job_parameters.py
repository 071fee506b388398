"""Training parameters become `python -m training` flags; the Job's own settings are not
parameters."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from control.jobs import (
    REQUESTED_BY,
    JobError,
    ParameterError,
    job_name,
    pick_template,
    template_from_configmap,
    training_flags,
)


@pytest.mark.parametrize(
    ("parameters", "flags"),
    [
        ({}, []),
        ({"candidates": ["logreg", "svm"]}, ["--candidates", "logreg,svm"]),
        ({"candidates": "logreg, svm"}, ["--candidates", "logreg,svm"]),
        ({"min_score": 0.8, "seed": "3"}, ["--min-score", "0.8", "--seed", "3"]),
        ({"force": True, "onnx": False}, ["--force", "--no-onnx"]),
        ({"csv": "/data/x.csv", "target": "y"}, ["--csv", "/data/x.csv", "--target", "y"]),
    ],
)
def test_parameters_become_the_rounds_flags(parameters: dict[str, Any], flags: list[str]) -> None:
    assert training_flags(parameters) == flags


def test_the_control_planes_environment_does_not_leak_into_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLSTACK_CANDIDATES", "nope")  # would fail validation if it were read
    monkeypatch.setenv("MLSTACK_SEED", "99")
    assert training_flags({"force": True}) == ["--force"]


def test_every_problem_is_named() -> None:
    with pytest.raises(ParameterError) as refused:
        training_flags({"cv_folds": 1, "metric": "speed", "colour": "red"})
    problems = refused.value.problems
    assert problems[0].startswith("colour: not a training parameter")
    assert any(
        p.startswith("cv_folds: Input should be greater than or equal to 2") for p in problems
    )
    assert any(p.startswith("metric: Value error, unknown metric 'speed'") for p in problems)


@pytest.mark.parametrize(
    "name", ["tracking_uri", "code_version", "mlflow_timeout_seconds", "result_file"]
)
def test_what_belongs_to_the_job_is_not_a_parameter(name: str) -> None:
    with pytest.raises(ParameterError) as refused:
        training_flags({name: "/dev/termination-log"})
    assert refused.value.problems[0].startswith(f"{name}: not a training parameter")


def _job(name: str, created: int, requested: bool) -> Any:
    annotations = {REQUESTED_BY: "me"} if requested else {}
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, creation_timestamp=created, annotations=annotations)
    )


def test_the_template_is_the_newest_job_the_chart_made() -> None:
    jobs = [_job("chart-old", 1, False), _job("chart-new", 2, False), _job("copy", 3, True)]
    assert pick_template(jobs).metadata.name == "chart-new"
    assert pick_template([_job("copy", 3, True)]).metadata.name == "copy"


def test_job_names_are_unique_and_valid() -> None:
    names = {job_name("r" * 80, "api") for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


def test_the_chart_template_is_read_from_its_configmap() -> None:
    template = template_from_configmap("t", {"job.yaml": "kind: Job\nspec: {}\n"})
    assert template == {"kind": "Job", "spec": {}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "ConfigMap 't' has no key 'job.yaml'"),
        ({"other": "x"}, "ConfigMap 't' has no key 'job.yaml'"),
        ({"job.yaml": "kind: [unclosed"}, "ConfigMap 't' job.yaml: "),
        ({"job.yaml": "kind: Pod\n"}, "ConfigMap 't' job.yaml is not a Job manifest"),
        ({"job.yaml": "- a list\n"}, "ConfigMap 't' job.yaml is not a Job manifest"),
    ],
)
def test_a_broken_template_configmap_is_named(data: dict[str, str] | None, message: str) -> None:
    with pytest.raises(JobError) as failure:
        template_from_configmap("t", data)
    assert str(failure.value).startswith(message)
