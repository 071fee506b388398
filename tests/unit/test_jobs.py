"""A manual training Job is the chart's Job under a new name, with extra flags."""

from __future__ import annotations

from typing import Any

import pytest

from control.jobs import JobError, decision_line, follow, job_from_template

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


def test_template_without_containers_is_refused() -> None:
    with pytest.raises(JobError, match="no containers"):
        job_from_template({"spec": {"template": {"spec": {}}}}, "x", [], "me")


def test_follow_reports_the_gate_decision_of_a_finished_job() -> None:
    states = iter([{}, {"status": {"active": 1}}, {"status": {"succeeded": 1}}])
    said: list[str] = []
    log = "winner logreg\ndecision   champion: no champion yet\n"
    outcome = follow(lambda: next(states), lambda: log, "j", 60, said.append, 0.0)
    assert outcome.succeeded and outcome.decision == "champion: no champion yet"
    assert said[0] == "job j: pending" and "job j: succeeded" in said


def test_decision_line_is_none_without_a_summary() -> None:
    assert decision_line("error: invalid dataset") is None
