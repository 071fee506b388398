"""Training Jobs on demand: a copy of the chart's own training Job, followed to its end.

The chart renders the training Job; a new one is that Job's pod template under a new name,
with extra training flags appended. The command and the chart therefore never diverge. What a
finished round decided is its TrainingResult, which the training container leaves as its
termination message; nothing here reads printed lines.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from training.contract import ManifestError, TrainingResult
from training.settings import TrainingSettings

COMPONENT_SELECTOR = "app.kubernetes.io/component=training"
INSTANCE_LABEL = "app.kubernetes.io/instance"
REQUESTED_BY = "mlstack/requested-by"
TRAINING_ARGS = "mlstack/training-args"
# Nanoseconds since the epoch when the Job was asked for: Kubernetes keeps creation times to the
# second, and two requests within one second must still list newest first.
REQUESTED_AT = "mlstack/requested-at-ns"
# The key of the chart's training Job template ConfigMap.
TEMPLATE_KEY = "job.yaml"
# What the template's training container runs, as the chart annotates the Job: `python -m
# training` (ENTRYPOINT_ROUND, also when the annotation is absent) or the user's own command
# (ENTRYPOINT_CUSTOM), whose arguments mlstack does not know.
ENTRYPOINT = "mlstack.io/training-entrypoint"
ENTRYPOINT_ROUND = "round"
ENTRYPOINT_CUSTOM = "custom"
CUSTOM_TAKES_NO_PARAMETERS = (
    f"the training Job template runs a custom command ({ENTRYPOINT}: {ENTRYPOINT_CUSTOM}), "
    "not `python -m training`: it takes no training parameters, only its own arguments "
    "verbatim (`mlstack train -- ARGS`); start it with an empty body to run it as it is"
)
# Training settings a request may set; the rest belong to the Job (MLflow's address, the code
# version baked into the image, how long to wait for MLflow, where the result goes).
_NOT_PARAMETERS = frozenset(
    {
        "tracking_uri",
        "code_version",
        "mlflow_timeout_seconds",
        "result_file",
        "s3_endpoint_url",
        # A spread round is the Job's shape (an Indexed Job), not a flag of one pod.
        "shards",
        "shard_index",
        "round_id",
        "shard_wait_seconds",
    }
)
# A request's parameter that is the Job's shape, not a flag: the pods the round is spread over.
PARALLELISM = "parallelism"
MAX_PARALLELISM = 64
# What an Indexed Job's pods carry: their index, and the Job's uid (the round id they share).
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
UID_LABEL = "batch.kubernetes.io/controller-uid"
_SHARD_ENV = ("MLSTACK_SHARDS", "MLSTACK_ROUND_ID")
_DROP_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)


class JobError(Exception):
    """No template Job, or the new Job failed or timed out."""


class ParameterError(ValueError):
    """Training parameters that `python -m training` would refuse; `problems` names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ReportedResult:
    """What a training Job's pod reported: the round's result, or why there is none."""

    result: TrainingResult | None
    missing: str | None = None  # why `result` is None

    def describe(self) -> str:
        """One line for people: the gate's decision and the version, or why there is none."""
        if self.result is None:
            return f"no training result ({self.missing})"
        r = self.result
        return f"{r.decision}: {r.reason} ({r.model_name} v{r.version}, run {r.run_id})"


@dataclass(frozen=True)
class Outcome:
    name: str
    succeeded: bool
    reported: ReportedResult
    seconds: float


class _RequestedTraining(TrainingSettings):
    """The round's settings from a request only: the control plane's own environment must
    not fill in what the request did not give."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def training_parameters() -> dict[str, Any]:
    """The training settings a request may set, by name, with their pydantic field info."""
    return {
        name: info
        for name, info in TrainingSettings.model_fields.items()
        if name not in _NOT_PARAMETERS
    }


def training_flags(parameters: dict[str, Any]) -> list[str]:
    """`python -m training` flags for `parameters` ({"min_score": 0.8} → --min-score 0.8),
    validated exactly as the round validates them, before any Job exists.

    Raises ParameterError naming every unknown or invalid parameter."""
    allowed = training_parameters()
    problems = [
        f"{name}: not a training parameter (allowed: {', '.join(allowed)})"
        for name in sorted(set(parameters) - set(allowed))
    ]
    try:
        settings = _RequestedTraining(**{k: v for k, v in parameters.items() if k in allowed})
    except ValidationError as exc:
        problems += [
            f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}"
            for e in exc.errors()
        ]
    if problems:
        raise ParameterError(problems)
    flags: list[str] = []
    for name in parameters:
        flag = "--" + name.replace("_", "-")
        value = getattr(settings, name)
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, tuple):
            flags += [flag, ",".join(str(v) for v in value)]
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def check_training_args(argv: list[str]) -> None:
    """Validate `python -m training` flags the way the round will, before any Job exists: an
    unknown flag exits 2 (argparse names it); a bad value raises ParameterError naming it."""
    from training.__main__ import flag_overrides

    overrides = flag_overrides(argv)
    try:
        _RequestedTraining(**overrides)
    except ValidationError as exc:
        raise ParameterError(
            [f"{'.'.join(str(p) for p in e['loc']) or 'flags'}: {e['msg']}" for e in exc.errors()]
        ) from None


def entrypoint(template: dict[str, Any]) -> str:
    """ENTRYPOINT_ROUND or ENTRYPOINT_CUSTOM: the template Job's ENTRYPOINT annotation, else its
    pod template's, ENTRYPOINT_ROUND without either. Raises JobError for another value."""
    pod_metadata = ((template.get("spec") or {}).get("template") or {}).get("metadata")
    for metadata in (template.get("metadata"), pod_metadata):
        value = ((metadata or {}).get("annotations") or {}).get(ENTRYPOINT)
        if value is None:
            continue
        if value not in (ENTRYPOINT_ROUND, ENTRYPOINT_CUSTOM):
            raise JobError(
                f"the training Job template's annotation {ENTRYPOINT} is {value!r}: expected "
                f"{ENTRYPOINT_ROUND!r} or {ENTRYPOINT_CUSTOM!r}"
            )
        return str(value)
    return ENTRYPOINT_ROUND


def check_arguments(template: dict[str, Any], argv: list[str]) -> None:
    """Check `argv` as `python -m training` flags (see check_training_args) when the template
    runs the round; a custom command's arguments are its own and pass verbatim.

    Raises ParameterError (or exits 2, see check_training_args), JobError for a template
    whose ENTRYPOINT annotation is neither value."""
    if entrypoint(template) == ENTRYPOINT_ROUND:
        check_training_args(argv)


def pick_template(jobs: list[Any]) -> Any:
    """The Job to copy: the newest one the chart (or its CronJob) created, else the newest."""
    if not jobs:
        raise JobError("no training Job to copy")
    own = [j for j in jobs if REQUESTED_BY not in (j.metadata.annotations or {})]
    return max(own or jobs, key=lambda j: j.metadata.creation_timestamp)


def template_from_configmap(name: str, data: dict[str, str] | None) -> dict[str, Any]:
    """The Job manifest the chart publishes in ConfigMap `name` (key TEMPLATE_KEY).

    Raises JobError naming the ConfigMap and what is wrong with it."""
    text = (data or {}).get(TEMPLATE_KEY)
    if text is None:
        raise JobError(f"ConfigMap {name!r} has no key {TEMPLATE_KEY!r}")
    try:
        template = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobError(f"ConfigMap {name!r} {TEMPLATE_KEY}: {exc}") from None
    if not isinstance(template, dict) or template.get("kind") != "Job":
        raise JobError(f"ConfigMap {name!r} {TEMPLATE_KEY} is not a Job manifest")
    return template


def choose_template(
    named: tuple[str, Any] | None, published: list[Any], jobs: list[Any], api: Any, where: str
) -> tuple[dict[str, Any], str]:
    """The Job to copy and where it came from, in this order: the ConfigMap named by
    MLSTACK_CONTROL_TRAINING_TEMPLATE_CONFIGMAP (`named`: its name and data), the newest of the
    chart's labelled ConfigMaps (`published`), the newest training Job (`jobs`). The callers do
    the reading: what they may read differs (the service's Role reads one ConfigMap by name).

    Raises JobError naming what is missing or wrong (`where`: the selector and namespace)."""
    if named is not None:
        name, data = named
        return template_from_configmap(name, data), f"ConfigMap {name}"
    with_template = [c for c in published if TEMPLATE_KEY in (c.data or {})]
    if with_template:
        newest = max(with_template, key=lambda c: c.metadata.creation_timestamp)
        name = newest.metadata.name
        return template_from_configmap(name, newest.data), f"ConfigMap {name}"
    if not jobs:
        raise JobError(f"no training Job template ({where}): install the chart first")
    job = pick_template(jobs)
    return dict(api.sanitize_for_serialization(job)), f"Job {job.metadata.name}"


def job_name(release: str, kind: str) -> str:
    """`<release>-train-<kind>-<UTC time>-<4 hex>`: unique, sortable, at most 63 characters."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{release[:30]}-train-{kind}-{stamp}-{secrets.token_hex(2)}"


def newest_pod(pods: list[Any]) -> Any | None:
    """The newest of a Job's pods (as the API client gives them), None when it has none. Of an
    Indexed Job, the newest of index 0: the pod that gathers the round and reports its result."""
    gatherers = [p for p in pods if completion_index(p) == 0]
    pods = gatherers or pods
    return max(pods, key=lambda p: p.metadata.creation_timestamp) if pods else None


def newest_per_index(pods: list[Any]) -> list[tuple[int | None, Any]]:
    """The newest pod of each index of an Indexed Job, by index; of another Job, its newest."""
    by_index: dict[int | None, Any] = {}
    for pod in pods:
        index = completion_index(pod)
        held = by_index.get(index)
        if held is None or pod.metadata.creation_timestamp > held.metadata.creation_timestamp:
            by_index[index] = pod
    return sorted(by_index.items(), key=lambda item: -1 if item[0] is None else item[0])


def reported_result(pod: dict[str, Any] | None) -> ReportedResult:
    """The TrainingResult in the termination message of a Job pod's training container (its
    first, the one job_from_template gives the flags), from the pod as a dict from the API.

    None, and why, when there is no pod, the container has not finished, it left no message,
    or the message is not a result: with FallbackToLogsOnError a failed container's message
    is the end of its log."""
    if pod is None:
        return ReportedResult(None, "the Job has no pod")
    pod_name = (pod.get("metadata") or {}).get("name")
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    container = containers[0].get("name")
    where = f"container {container!r} of pod {pod_name}"
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    own: dict[str, Any] = next((s for s in statuses if s.get("name") == container), {})
    terminated = (own.get("state") or {}).get("terminated")
    if terminated is None:
        return ReportedResult(None, f"{where} has not finished")
    code = terminated.get("exitCode")
    message = terminated.get("message") or ""
    if not message.strip():
        return ReportedResult(
            None,
            f"{where} exited with code {code} and left no termination message: "
            "no result was written to MLSTACK_RESULT_FILE",
        )
    try:
        return ReportedResult(TrainingResult.from_json(message))
    except ManifestError:
        why = "" if code == 0 else "; a failed container's message is the end of its log"
        return ReportedResult(
            None,
            f"the termination message of {where} is not a training result (exit code {code}{why})",
        )


def parallelism_of(parameters: dict[str, Any]) -> int | None:
    """The `parallelism` a request gives (the pods a round is spread over), taken out of
    `parameters`; None when it gives none. Raises ParameterError when it is not 1 to 64."""
    if PARALLELISM not in parameters:
        return None
    value = parameters.pop(PARALLELISM)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLELISM:
        raise ParameterError(
            [f"{PARALLELISM}: {value!r} is not an integer from 1 to {MAX_PARALLELISM}"]
        )
    return value


def job_from_template(
    template: dict[str, Any],
    name: str,
    extra_args: list[str],
    requested_by: str,
    parallelism: int | None = None,
) -> dict[str, Any]:
    """A new Job manifest from an existing Job (as a dict from the API).

    Keeps the pod template, the limits and an Indexed Job's shape, drops what the API server
    generated (uid, selector, controller labels, status), appends `extra_args` to the training
    container's args. `parallelism` (None: the template's) spreads the round over that many
    pods of an Indexed Job, or makes it one pod again with 1.
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
    annotations = {
        REQUESTED_BY: requested_by,
        REQUESTED_AT: str(time.time_ns()),
        TRAINING_ARGS: json.dumps(extra_args),
    }
    # Kept, so that a copy chosen as the template of a later copy still says what it runs.
    if ENTRYPOINT in (metadata.get("annotations") or {}):
        annotations[ENTRYPOINT] = metadata["annotations"][ENTRYPOINT]
    job_labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k not in _DROP_LABELS}
    job_spec = {
        k: spec[k]
        for k in (
            "backoffLimit",
            "activeDeadlineSeconds",
            "ttlSecondsAfterFinished",
            "completionMode",
            "completions",
            "parallelism",
        )
        if k in spec
    }
    if parallelism is not None:
        _spread(job_spec, container, parallelism)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": metadata.get("namespace"),
            "labels": job_labels,
            "annotations": annotations,
        },
        "spec": {**job_spec, "template": pod},
    }


def _spread(job_spec: dict[str, Any], container: dict[str, Any], pods: int) -> None:
    """Make `job_spec` an Indexed Job of `pods` pods with the round's shard settings on its
    training `container` (the chart's `training.parallelism`), or a single pod with 1."""
    for key in ("completionMode", "completions", "parallelism"):
        job_spec.pop(key, None)
    env = [e for e in container.get("env") or [] if e.get("name") not in _SHARD_ENV]
    if pods > 1:
        job_spec.update(completionMode="Indexed", completions=pods, parallelism=pods)
        env += [
            {"name": "MLSTACK_SHARDS", "value": str(pods)},
            {
                "name": "MLSTACK_ROUND_ID",
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{UID_LABEL}']"}},
            },
        ]
    container["env"] = env


def completion_index(pod: Any) -> int | None:
    """An Indexed Job pod's index (as the API client gives pods), None for another Job's."""
    value = (pod.metadata.annotations or {}).get(INDEX_ANNOTATION)
    return int(value) if value is not None and value.isdigit() else None


def newest_first_key(created: str | None, annotations: dict[str, str] | None) -> tuple[str, int]:
    """Sort key of a Job, newest last: its creation time (to the second), then REQUESTED_AT."""
    try:
        requested = int((annotations or {}).get(REQUESTED_AT, "0"))
    except ValueError:
        requested = 0
    return created or "", requested


def follow(
    read_job: Callable[[], dict[str, Any]],
    read_logs: Callable[[], dict[str, str]],
    read_result: Callable[[], ReportedResult],
    name: str,
    timeout: float,
    say: Callable[[str], None],
    poll_seconds: float = 2.0,
) -> Outcome:
    """Poll the Job until it succeeds or fails (bounded by `timeout`), printing progress and
    each pod's new log lines (`read_logs`: log by pod label, "" for a single pod, "pod 1" for
    an Indexed Job's); then read what its pod reported (`read_result`)."""
    started = time.monotonic()
    last = ""
    printed: dict[str, int] = {}
    while True:
        state = job_state(read_job().get("status") or {})
        if state != last:
            say(f"job {name}: {state}")
            last = state
        for label, log in _safe(read_logs).items():
            lines = log.splitlines()
            prefix = f"  {label} | " if label else "  | "
            for line in lines[printed.get(label, 0) :]:
                say(f"{prefix}{line}")
            printed[label] = len(lines)
        if state in ("succeeded", "failed"):
            return Outcome(
                name, state == "succeeded", _reported(read_result), time.monotonic() - started
            )
        if time.monotonic() - started > timeout:
            raise JobError(f"job {name} did not finish within {timeout:g} s (state {state})")
        time.sleep(poll_seconds)


def job_state(status: dict[str, Any]) -> str:
    """pending, running, succeeded or failed, from a Job's status (as a dict from the API).

    Succeeded is the Job's Complete condition, or succeeded pods with none still active: an
    Indexed Job counts each index that succeeds while the others (pod 0 gathering a spread
    round) still run."""
    complete = any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if complete or (status.get("succeeded") and not status.get("active") and not _failed(status)):
        return "succeeded"
    if _failed(status):
        return "failed"
    return "running" if status.get("active") else "pending"


def _failed(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Failed" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _safe(read_log: Callable[[], dict[str, str]]) -> dict[str, str]:
    try:
        return read_log()
    except Exception:  # the pod may not exist yet, or be starting: no log is no progress
        return {}


def _reported(read_result: Callable[[], ReportedResult]) -> ReportedResult:
    try:
        return read_result()
    except Exception as exc:  # the Job's end is still reported, with why its result is not
        first = str(exc).splitlines()[0] if str(exc) else ""
        return ReportedResult(None, f"its pod could not be read: {type(exc).__name__}: {first}")
