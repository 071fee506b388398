"""Training Jobs on demand for the service: create (validated, within the concurrency limit),
read, list. Kubernetes runs them; nothing here schedules or queues.

Synchronous (the kubernetes client is): the routes call it from worker threads. The client is
made on first use, so a control plane without a cluster (a laptop) serves everything else.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import structlog

from control.cluster import selector
from control.errors import ClusterUnavailable, Conflict, InvalidInput, NotFound
from control.jobs import (
    COMPONENT_SELECTOR,
    CUSTOM_TAKES_NO_PARAMETERS,
    ENTRYPOINT_CUSTOM,
    INSTANCE_LABEL,
    REQUESTED_BY,
    TRAINING_ARGS,
    JobError,
    ParameterError,
    choose_template,
    entrypoint,
    job_from_template,
    job_name,
    job_state,
    newest_first_key,
    newest_pod,
    parallelism_of,
    reported_result,
    training_flags,
)
from control.schemas import TrainingJobView
from control.settings import ControlSettings
from training.search import progress_line

log = structlog.get_logger("control.training_jobs")


def _iso(moment: datetime | str | None) -> str | None:
    """A Kubernetes time (a datetime, or its serialized text) as ISO 8601 with `Z`."""
    if moment is None:
        return None
    text = moment if isinstance(moment, str) else moment.isoformat()
    return text.replace("+00:00", "Z")


class TrainingJobs:
    def __init__(self, settings: ControlSettings) -> None:
        self._settings = settings
        self._clients: tuple[Any, Any] | None = None
        # One replica: this lock makes "count, then create" atomic against concurrent requests.
        self._create_lock = threading.Lock()

    @contextlib.contextmanager
    def _kubernetes(self, what: str) -> Iterator[tuple[Any, Any]]:
        """(batch, core) clients; Kubernetes failures leave as our errors."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException
        from urllib3.exceptions import HTTPError

        try:
            if self._clients is None:
                from control.cluster import clients

                self._clients = clients()
            yield self._clients
        except ConfigException as exc:
            raise ClusterUnavailable(f"Kubernetes is not reachable: {exc}") from exc
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"{what} does not exist") from exc
            reason = f"{exc.status} {exc.reason}"
            raise ClusterUnavailable(f"the Kubernetes API refused {what}: {reason}") from exc
        except (HTTPError, OSError) as exc:
            raise ClusterUnavailable(f"Kubernetes is not reachable ({what}): {exc}") from exc

    def _selector(self) -> str:
        return selector(COMPONENT_SELECTOR, self._settings.release)

    def create(self, parameters: dict[str, Any], requested_by: str) -> TrainingJobView:
        """Validate `parameters`, then copy the training Job template with their flags.

        InvalidInput for parameters the round refuses, before any Job exists and even without
        a cluster, and for any parameter when the template runs a custom command (it takes
        none); Conflict at the concurrency limit or without a template."""
        parameters = dict(parameters)
        try:
            parallelism = parallelism_of(parameters)
            flags = training_flags(parameters)
        except ParameterError as exc:
            raise InvalidInput(self._refusal(exc)) from None
        namespace = self._settings.namespace
        with self._kubernetes(f"training Jobs in namespace {namespace!r}") as (batch, core):
            api = batch.api_client
            with self._create_lock:
                jobs = batch.list_namespaced_job(namespace, label_selector=self._selector()).items
                template = self._template(core, jobs, api)
                if parameters and self._entrypoint(template) == ENTRYPOINT_CUSTOM:
                    raise InvalidInput(CUSTOM_TAKES_NO_PARAMETERS)
                active = [
                    j.metadata.name
                    for j in jobs
                    if job_state(api.sanitize_for_serialization(j.status) or {})
                    in ("pending", "running")
                ]
                limit = self._settings.max_training_jobs
                if len(active) >= limit:
                    raise Conflict(
                        f"{len(active)} training Job(s) pending or running ({', '.join(active)}): "
                        f"the limit is {limit} (MLSTACK_CONTROL_MAX_TRAINING_JOBS)"
                    )
                release = (template.get("metadata", {}).get("labels") or {}).get(INSTANCE_LABEL)
                name = job_name(release or "mlstack", "api")
                manifest = job_from_template(template, name, flags, requested_by, parallelism)
                manifest["metadata"]["namespace"] = namespace
                created = batch.create_namespaced_job(namespace, manifest)
        log.info(
            "training_job.created",
            job=name,
            namespace=namespace,
            flags=flags,
            by=requested_by,
        )
        return self._view(created, api)

    def _refusal(self, problem: ParameterError) -> str:
        """What to answer for parameters the round refuses: that the template takes none when
        it runs a custom command, else the round's problems. Those stand when the template
        cannot be read: the request is refused either way."""
        namespace = self._settings.namespace
        try:
            with self._kubernetes(f"training Jobs in namespace {namespace!r}") as (batch, core):
                jobs = batch.list_namespaced_job(namespace, label_selector=self._selector()).items
                template = self._template(core, jobs, batch.api_client)
            custom = self._entrypoint(template) == ENTRYPOINT_CUSTOM
        except (ClusterUnavailable, Conflict, NotFound):
            return str(problem)
        return CUSTOM_TAKES_NO_PARAMETERS if custom else str(problem)

    @staticmethod
    def _entrypoint(template: dict[str, Any]) -> str:
        try:
            return entrypoint(template)
        except JobError as exc:
            raise Conflict(str(exc)) from None

    def _template(self, core: Any, jobs: list[Any], api: Any) -> dict[str, Any]:
        name = self._settings.training_template_configmap
        namespace = self._settings.namespace
        named = (name, core.read_namespaced_config_map(name, namespace).data) if name else None
        where = f"{self._selector()} in namespace {namespace!r}"
        try:
            return choose_template(named, [], jobs, api, where)[0]
        except JobError as exc:
            raise Conflict(str(exc)) from None

    def get(self, name: str) -> TrainingJobView:
        """One training Job with its round's result (the termination message of its newest
        pod's training container) and last log lines, or why there is no result."""
        namespace = self._settings.namespace
        with self._kubernetes(f"training Job {name!r}") as (batch, core):
            job = batch.read_namespaced_job(name, namespace)
            labels = job.metadata.labels or {}
            wanted = dict(part.split("=", 1) for part in self._selector().split(","))
            if any(labels.get(k) != v for k, v in wanted.items()):
                raise NotFound(f"training Job {name!r} does not exist")
            pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
            pod = newest_pod(pods)
            # The whole log: a round prints a few dozen lines.
            log_text = (
                "" if pod is None else core.read_namespaced_pod_log(pod.metadata.name, namespace)
            )
            reported = reported_result(
                None if pod is None else core.api_client.sanitize_for_serialization(pod)
            )
            view = self._view(job, batch.api_client)
        lines = str(log_text or "").splitlines()
        keep = self._settings.training_log_lines
        update: dict[str, Any] = {
            "result_missing": reported.missing,
            "log_tail": lines[-keep:] if keep else [],
            "progress": next(
                (line.strip() for line in reversed(lines) if progress_line(line)), None
            ),
        }
        if (result := reported.result) is not None:
            update |= {
                "mlflow_run_id": result.run_id,
                "registered_version": result.version,
                "decision": result.decision,
                "reason": result.reason,
            }
        return view.model_copy(update=update)

    def list(self) -> list[TrainingJobView]:
        """Every training Job of the release, newest first (no logs: one call per Job)."""
        namespace = self._settings.namespace
        with self._kubernetes(f"training Jobs in namespace {namespace!r}") as (batch, _):
            jobs = batch.list_namespaced_job(namespace, label_selector=self._selector()).items
            keyed = [
                (newest_first_key(view.created, j.metadata.annotations), view)
                for j in jobs
                for view in [self._view(j, batch.api_client)]
            ]
        return [view for _, view in sorted(keyed, key=lambda pair: pair[0], reverse=True)]

    @staticmethod
    def _view(job: Any, api: Any) -> TrainingJobView:
        status = api.sanitize_for_serialization(job.status) or {}
        annotations = job.metadata.annotations or {}
        try:
            parameters = json.loads(annotations.get(TRAINING_ARGS, "[]"))
        except ValueError:
            parameters = []
        return TrainingJobView(
            id=job.metadata.name,
            state=job_state(status),
            created=_iso(job.metadata.creation_timestamp),
            started=_iso(status.get("startTime")),
            finished=_iso(status.get("completionTime") or _failed_at(status)),
            requested_by=annotations.get(REQUESTED_BY),
            parameters=[str(p) for p in parameters],
        )


def _failed_at(status: dict[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return condition.get("lastTransitionTime")
    return None
