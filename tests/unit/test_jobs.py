"""A manual training Job is the chart's Job under a new name, with extra flags; what its round
decided is the result its pod left as the training container's termination message."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from control.jobs import (
    ENTRYPOINT,
    JobError,
    ParameterError,
    ReportedResult,
    check_arguments,
    entrypoint,
    follow,
    job_from_template,
    job_state,
    parallelism_of,
    reported_result,
)
from training import contract
from training.contract import TrainingResult

TEMPLATE: dict[str, Any] = {
    "metadata": {
        "name": "rel-mlstack-train-1a2b3c4d",
        "namespace": "ml",
        "uid": "u-1",
        "labels": {"app.kubernetes.io/component": "training", "controller-uid": "u-1"},
    },
    "spec": {
        "backoffLimit": 1,
        "activeDeadlineSeconds": 900,
        "selector": {"matchLabels": {"controller-uid": "u-1"}},
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/component": "training",
                    "job-name": "rel-mlstack-train-1a2b3c4d",
                    "controller-uid": "u-1",
                }
            },
            "spec": {
                "containers": [
                    {
                        "name": "training",
                        "command": ["python", "-m", "training"],
                        "args": ["--seed", "1"],
                    }
                ]
            },
        },
    },
    "status": {"succeeded": 1},
}


def test_new_job_keeps_the_pod_template_and_drops_generated_fields() -> None:
    job = job_from_template(TEMPLATE, "rel-train-manual-1", ["--force"], "me")
    assert job["metadata"]["name"] == "rel-train-manual-1"
    assert job["metadata"]["namespace"] == "ml"
    assert "uid" not in job["metadata"] and "status" not in job
    assert "selector" not in job["spec"]
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 900
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/component": "training"}
    assert pod["spec"]["containers"][0]["args"] == ["--seed", "1", "--force"]
    assert TEMPLATE["spec"]["template"]["spec"]["containers"][0]["args"] == ["--seed", "1"]


def test_a_spread_round_is_an_indexed_job_whose_pods_share_the_jobs_uid() -> None:
    job = job_from_template(TEMPLATE, "x", [], "me", parallelism=3)
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 3)
    assert job["spec"]["parallelism"] == 3
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MLSTACK_SHARDS", "value": "3"} in env
    uid = "metadata.labels['batch.kubernetes.io/controller-uid']"
    assert {"name": "MLSTACK_ROUND_ID", "valueFrom": {"fieldRef": {"fieldPath": uid}}} in env
    # A copy of it keeps the shape; parallelism 1 makes it one pod again.
    again = job_from_template(job, "y", [], "me")
    assert again["spec"]["completions"] == 3
    single = job_from_template(job, "z", [], "me", parallelism=1)
    assert "completionMode" not in single["spec"] and "parallelism" not in single["spec"]
    names = [e["name"] for e in single["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert "MLSTACK_SHARDS" not in names and "MLSTACK_ROUND_ID" not in names


@pytest.mark.parametrize("value", [0, 65, "2", True, 1.5])
def test_a_bad_parallelism_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(ParameterError) as refused:
        parallelism_of({"parallelism": value, "seed": 1})
    assert refused.value.problems == [f"parallelism: {value!r} is not an integer from 1 to 64"]


def test_follow_prints_each_pods_new_lines_under_its_label() -> None:
    logs = iter(
        [
            {"pod 0": "a\n", "pod 1": "x\n"},
            {"pod 0": "a\nb\n", "pod 1": "x\n"},
        ]
    )
    states = iter([{"status": {"active": 2}}, {"status": {"succeeded": 1}}])
    said: list[str] = []
    follow(lambda: next(states), lambda: next(logs), lambda: ReportedResult(RESULT), "j", 60,
           said.append, 0)  # fmt: skip
    assert [line for line in said if "|" in line] == ["  pod 0 | a", "  pod 1 | x", "  pod 0 | b"]


def test_template_without_containers_is_refused() -> None:
    with pytest.raises(JobError, match="no containers"):
        job_from_template({"spec": {"template": {"spec": {}}}}, "x", [], "me")


RESULT = TrainingResult(
    model_name="mlstack-classifier",
    version="7",
    run_id="0123abcd",
    decision=contract.ALIAS_CHAMPION,
    reason="no champion yet",
    onnx=True,
)


def test_follow_reports_what_the_pod_of_a_finished_job_reported() -> None:
    states = iter([{}, {"status": {"active": 1}}, {"status": {"succeeded": 1}}])
    said: list[str] = []
    log = "winner logreg\ndecision   challenger: printed lines are not read\n"
    outcome = follow(
        lambda: next(states),
        lambda: {"": log},
        lambda: ReportedResult(RESULT),
        "j",
        60,
        said.append,
        0,
    )
    assert outcome.succeeded and outcome.reported.result == RESULT
    assert outcome.reported.describe() == (
        "champion: no champion yet (mlstack-classifier v7, run 0123abcd)"
    )
    assert said[0] == "job j: pending" and "job j: succeeded" in said
    assert "  | decision   challenger: printed lines are not read" in said


def test_follow_says_why_when_the_pod_cannot_be_read() -> None:
    def unreadable() -> ReportedResult:
        raise OSError("connection refused")

    outcome = follow(lambda: {"status": {"succeeded": 1}}, dict, unreadable, "j", 60, print, 0)
    assert outcome.reported.result is None
    assert outcome.reported.describe() == (
        "no training result (its pod could not be read: OSError: connection refused)"
    )


def _pod(terminated: dict[str, Any] | None, container: str = "training") -> dict[str, Any]:
    state = {"running": {}} if terminated is None else {"terminated": terminated}
    return {
        "metadata": {"name": "j-x1"},
        "spec": {"containers": [{"name": "training"}, {"name": "sidecar"}]},
        "status": {"containerStatuses": [{"name": container, "state": state}]},
    }


def test_the_result_is_the_training_containers_termination_message() -> None:
    pod = _pod({"exitCode": 0, "message": RESULT.to_json() + "\n"})
    assert reported_result(pod) == ReportedResult(RESULT)


@pytest.mark.parametrize(
    ("pod", "missing"),
    [
        (None, "the Job has no pod"),
        (_pod(None), "container 'training' of pod j-x1 has not finished"),
        (
            _pod({"exitCode": 0, "message": RESULT.to_json()}, container="sidecar"),
            "container 'training' of pod j-x1 has not finished",
        ),
        (
            _pod({"exitCode": 0}),
            "container 'training' of pod j-x1 exited with code 0 and left no termination "
            "message: no result was written to MLSTACK_RESULT_FILE",
        ),
        (
            _pod({"exitCode": 2, "message": "error: invalid dataset: column 'y' is missing\n"}),
            "the termination message of container 'training' of pod j-x1 is not a training "
            "result (exit code 2; a failed container's message is the end of its log)",
        ),
        (
            _pod({"exitCode": 0, "message": "registered mlstack-classifier v7\n"}),
            "the termination message of container 'training' of pod j-x1 is not a training "
            "result (exit code 0)",
        ),
    ],
    ids=["no pod", "running", "other container", "no message", "log lines", "printed summary"],
)
def test_without_a_result_the_reason_is_named(pod: dict[str, Any] | None, missing: str) -> None:
    assert reported_result(pod) == ReportedResult(None, missing)


def _annotated(job: dict[str, str] | None = None, pod: dict[str, str] | None = None) -> Any:
    template = copy.deepcopy(TEMPLATE)
    if job is not None:
        template["metadata"]["annotations"] = job
    if pod is not None:
        template["spec"]["template"]["metadata"]["annotations"] = pod
    return template


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (TEMPLATE, "round"),
        (_annotated(job={ENTRYPOINT: "round"}), "round"),
        (_annotated(job={ENTRYPOINT: "custom"}), "custom"),
        (_annotated(pod={ENTRYPOINT: "custom"}), "custom"),
        (_annotated(job={ENTRYPOINT: "round"}, pod={ENTRYPOINT: "custom"}), "round"),
    ],
    ids=["no annotation", "round", "custom", "on the pod template", "the Job's first"],
)
def test_the_template_says_what_it_runs(template: dict[str, Any], expected: str) -> None:
    assert entrypoint(template) == expected


def test_an_unknown_entrypoint_is_named() -> None:
    with pytest.raises(JobError) as refused:
        entrypoint(_annotated(job={ENTRYPOINT: "shell"}))
    assert str(refused.value) == (
        "the training Job template's annotation mlstack.io/training-entrypoint is 'shell': "
        "expected 'round' or 'custom'"
    )


def test_a_custom_commands_arguments_pass_verbatim_and_the_rounds_are_checked() -> None:
    check_arguments(_annotated(job={ENTRYPOINT: "custom"}), ["--epochs", "3", "--lr=0.1"])
    with pytest.raises(SystemExit) as refused:  # argparse, naming the flag on stderr
        check_arguments(TEMPLATE, ["--epochs", "3"])
    assert refused.value.code == 2


def test_a_copy_of_a_custom_template_stays_custom() -> None:
    job = job_from_template(_annotated(job={ENTRYPOINT: "custom"}), "x", ["--epochs", "3"], "me")
    assert job["metadata"]["annotations"][ENTRYPOINT] == "custom"
    assert entrypoint(job) == "custom"
    assert ENTRYPOINT not in job_from_template(TEMPLATE, "y", [], "me")["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ({"active": 1, "succeeded": 1}, "running"),  # index 1 done, pod 0 still gathering
        ({"active": 0, "succeeded": 2}, "succeeded"),
        ({"succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}]}, "succeeded"),
        ({"active": 1}, "running"),
        ({}, "pending"),
        ({"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}, "failed"),
    ],
)
def test_an_indexed_job_succeeds_only_when_every_index_has(
    status: dict[str, Any], state: str
) -> None:
    assert job_state(status) == state
