"""Training Jobs on demand: a copy of the chart's own training Job, followed to its end.

The chart renders the training Job; a new one is that Job's pod template under a new name,
with extra training flags appended. The command and the chart therefore never diverge.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COMPONENT_SELECTOR = "app.kubernetes.io/component=training"
_DROP_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)


class JobError(Exception):
    """No template Job, or the new Job failed or timed out."""


@dataclass(frozen=True)
class Outcome:
    name: str
    succeeded: bool
    decision: str | None  # the gate's line from the round's summary, when printed
    seconds: float


def job_from_template(
    template: dict[str, Any], name: str, extra_args: list[str], requested_by: str
) -> dict[str, Any]:
    """A new Job manifest from an existing Job (as a dict from the API).

    Keeps the pod template and limits, drops what the API server generated (uid, selector,
    controller labels, status), appends `extra_args` to the training container's args.
    """
    spec = template.get("spec") or {}
    pod = copy.deepcopy(spec.get("template") or {})
    if not pod.get("spec", {}).get("containers"):
        raise JobError("the template Job has no containers")
    labels = {
        k: v
        for k, v in (pod.get("metadata", {}).get("labels") or {}).items()
        if k not in _DROP_LABELS
    }
    pod.setdefault("metadata", {})["labels"] = labels
    container = pod["spec"]["containers"][0]
    container["args"] = [*(container.get("args") or []), *extra_args]
    metadata = template.get("metadata") or {}
    job_labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k not in _DROP_LABELS}
    job_spec = {
        k: spec[k]
        for k in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished")
        if k in spec
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": metadata.get("namespace"),
            "labels": job_labels,
            "annotations": {"mlstack/requested-by": requested_by},
        },
        "spec": {**job_spec, "template": pod},
    }


def decision_line(log: str) -> str | None:
    """The gate's summary line of a training round's output."""
    for line in log.splitlines():
        if line.startswith("decision "):
            return line.removeprefix("decision").strip()
    return None


def follow(
    read_job: Callable[[], dict[str, Any]],
    read_log: Callable[[], str],
    name: str,
    timeout: float,
    say: Callable[[str], None],
    poll_seconds: float = 2.0,
) -> Outcome:
    """Poll the Job until it succeeds or fails (bounded by `timeout`), printing progress."""
    started = time.monotonic()
    last = ""
    printed = 0
    while True:
        status = read_job().get("status") or {}
        state = (
            "succeeded"
            if status.get("succeeded")
            else "failed"
            if _failed(status)
            else "running"
            if status.get("active")
            else "pending"
        )
        if state != last:
            say(f"job {name}: {state}")
            last = state
        log = _safe(read_log)
        lines = log.splitlines()
        for line in lines[printed:]:
            say(f"  | {line}")
        printed = len(lines)
        if state in ("succeeded", "failed"):
            return Outcome(
                name, state == "succeeded", decision_line(log), time.monotonic() - started
            )
        if time.monotonic() - started > timeout:
            raise JobError(f"job {name} did not finish within {timeout:g} s (state {state})")
        time.sleep(poll_seconds)


def _failed(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Failed" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _safe(read_log: Callable[[], str]) -> str:
    try:
        return read_log()
    except Exception:  # the pod may not exist yet, or be starting: no log is no progress
        return ""
