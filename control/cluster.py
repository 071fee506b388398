"""What the `mlstack` command reads from the cluster: for `status`, the last training Job, the
inference pods, the model version each reports (its /readyz) and its drift report (its /drift),
both through the API server's pod proxy; for `train`, what a training Job's pod reported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from control.client import Reply, error_answer
from control.jobs import (
    COMPONENT_SELECTOR,
    INSTANCE_LABEL,
    ReportedResult,
    job_state,
    newest_pod,
    reported_result,
)

INFERENCE_SELECTOR = "app.kubernetes.io/component=inference"


def clients() -> tuple[Any, Any]:
    """(BatchV1Api, CoreV1Api) from the kube config, or in-cluster. Raises ConfigException."""
    from kubernetes import client, config

    try:
        config.load_kube_config()
    except config.ConfigException as local:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise config.ConfigException(
                f"no usable kube config ({local}) and not running in a cluster"
            ) from None
    return client.BatchV1Api(), client.CoreV1Api()


@dataclass(frozen=True)
class JobView:
    name: str
    state: str  # pending, running, succeeded, failed
    started: str | None  # ISO 8601, as the API reports it
    finished: str | None


@dataclass(frozen=True)
class PodView:
    name: str
    ready: bool
    model_version: str | None  # what the pod's /readyz reports, None when it cannot say
    drift: Reply  # the pod's answer to GET /drift


def selector(component: str, release: str | None) -> str:
    return f"{component},{INSTANCE_LABEL}={release}" if release else component


def last_training_job(batch: Any, namespace: str, release: str | None) -> JobView | None:
    jobs = batch.list_namespaced_job(
        namespace, label_selector=selector(COMPONENT_SELECTOR, release)
    ).items
    if not jobs:
        return None
    job = max(jobs, key=lambda j: j.metadata.creation_timestamp)
    status = batch.api_client.sanitize_for_serialization(job.status) or {}
    return JobView(
        job.metadata.name,
        job_state(status),
        status.get("startTime"),
        status.get("completionTime"),
    )


def job_result(core: Any, namespace: str, job: str) -> ReportedResult:
    """The result the newest pod of training Job `job` left as its termination message, or why
    there is none (see control.jobs.reported_result). Raises ApiException."""
    pod = newest_pod(core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items)
    return reported_result(None if pod is None else core.api_client.sanitize_for_serialization(pod))


def inference_pods(core: Any, namespace: str, release: str | None) -> list[PodView]:
    pods = core.list_namespaced_pod(
        namespace, label_selector=selector(INFERENCE_SELECTOR, release)
    ).items
    out = []
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        port = http_port(pod)
        out.append(
            PodView(
                pod.metadata.name,
                ready,
                _reported_version(core, pod, namespace, port),
                _drift(core, pod, namespace, port),
            )
        )
    return out


def http_port(pod: Any) -> int | None:
    return next(
        (p.container_port for c in pod.spec.containers for p in c.ports or [] if p.name == "http"),
        None,
    )


def _get(core: Any, pod: Any, namespace: str, port: int, path: str) -> Any:
    """GET `path` of the pod's `port` through the pod proxy, decoded. Raises ApiException
    (the pod's own error status included), ValueError for a body that is not JSON."""
    # The undecoded answer: decoded, the client turns JSON into the str() of a dict.
    response = core.connect_get_namespaced_pod_proxy_with_path(
        f"{pod.metadata.name}:{port}", namespace, path, _preload_content=False
    )
    return json.loads(response.data)


def _reported_version(core: Any, pod: Any, namespace: str, port: int | None) -> str | None:
    if port is None:
        return None
    try:
        version = _get(core, pod, namespace, port, "readyz").get("model_version")
    except Exception:  # unready pods answer 503 through the proxy: no version to report
        return None
    return str(version) if version is not None else None


def _drift(core: Any, pod: Any, namespace: str, port: int | None) -> Reply:
    if port is None:
        return Reply(error="the pod declares no port named http")
    try:
        return Reply(body=_get(core, pod, namespace, port, "drift"))
    except Exception as exc:  # reported in the summary, never raised
        status = getattr(exc, "status", None)  # kubernetes' ApiException
        if status is not None:
            return Reply(error=error_answer(status, getattr(exc, "body", None)))
        text = str(exc).splitlines()[0] if str(exc) else ""
        return Reply(error=f"{type(exc).__name__}: {text}", reached=False)
