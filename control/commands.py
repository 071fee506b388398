"""What each `mlstack` subcommand does. Every function takes the settings and the parsed
arguments and returns the exit status: 0 done, 1 refused or failed, 2 invalid input,
3 MLflow or the control plane unreachable.

Registry commands talk to MLflow directly (through `control.registry`, the same functions the
service's routes call, so the same checks apply); `predictions` asks the control plane.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from pydantic import BaseModel, ValidationError

from control.client import ControlClient, ControlPlaneError, Reply, get_json
from control.jobs import (
    COMPONENT_SELECTOR,
    INSTANCE_LABEL,
    JobError,
    ParameterError,
    check_arguments,
    choose_template,
    follow,
    job_from_template,
    job_name,
    newest_per_index,
)
from control.render import epoch_to_iso, short, table
from control.settings import ControlSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_UNREACHABLE = 3


def _json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    print(json.dumps(value, indent=2))


def _mlflow(settings: ControlSettings) -> Any:
    """A client of a reachable MLflow. One quick probe first: the client itself retries an
    unreachable server for minutes. Raises MlflowUnavailable."""
    from mlflow import MlflowClient

    from training.registry import wait_for_mlflow

    wait_for_mlflow(settings.tracking_uri, 0)
    return MlflowClient(settings.tracking_uri)


def _control(settings: ControlSettings) -> ControlClient:
    return ControlClient(
        settings.url,
        settings.resolved_api_key(),
        settings.api_key_header,
        settings.request_timeout_seconds,
    )


def serve(settings: ControlSettings, _: argparse.Namespace) -> int:
    import uvicorn

    from control.service import create_app

    application = create_app(settings)
    # One worker: SQLite has one writer, and prometheus-client stays single-process.
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        workers=1,
        access_log=False,  # the service logs one JSON line per request itself
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )
    return EXIT_OK


def models(settings: ControlSettings, args: argparse.Namespace) -> int:
    from control import registry

    client = _mlflow(settings)
    names = [args.name] if args.name else [m.name for m in registry.list_models(client)]
    details = [registry.model_detail(client, name) for name in names]
    if args.json:
        _json(details)
        return EXIT_OK
    rows = [
        (
            d.name,
            v.version,
            ",".join(v.aliases) or None,
            v.metric,
            None if v.score is None else f"{v.score:.4f}",
            v.decision,
            v.created,
        )
        for d in details
        for v in d.versions
    ]
    print(table(("NAME", "VERSION", "ALIASES", "METRIC", "SCORE", "DECISION", "CREATED"), rows))
    return EXIT_OK


def experiments(settings: ControlSettings, args: argparse.Namespace) -> int:
    from control import registry

    views = registry.list_experiments(_mlflow(settings), settings.main_metric)
    if args.json:
        _json(views)
        return EXIT_OK
    rows = []
    for e in views:
        best = e.best_run
        rows.append(
            (
                e.experiment_id,
                e.name,
                best and best.run_id,
                best and best.candidate,
                best and best.metric,
                best and f"{best.value:.4f}",
                best and best.dataset,
                best and best.started,
            )
        )
    headers = ("ID", "EXPERIMENT", "BEST RUN", "CANDIDATE", "METRIC", "VALUE", "DATASET", "STARTED")
    print(table(headers, rows))
    return EXIT_OK


def _say_change(change: Any, verb: str) -> None:
    if not change.changed:
        print(f"{change.alias} of {change.model} already points to v{change.version}: unchanged")
        return
    before = f"v{change.previous}" if change.previous else "nothing"
    forced = " (forced)" if change.forced else ""
    print(f"{change.alias} of {change.model}: {before} -> v{change.version} {verb}{forced}")


def _agreement_source(settings: ControlSettings) -> Any:
    """(version, live version) → their Agreement, read from the control plane's log."""
    from control.schemas import Agreement

    control = _control(settings)

    def source(version: str, live: str) -> Agreement:
        params = {"model_version": version, "live_version": live}
        return Agreement.model_validate(control.get("/v1/predictions/agreement", params))

    return source


def promote(settings: ControlSettings, args: argparse.Namespace) -> int:
    from control import registry

    bar = None
    if args.min_agreement is not None:
        bar = registry.AgreementBar(args.min_agreement, args.min_rows, _agreement_source(settings))
    change = registry.move_alias(
        _mlflow(settings), args.name, args.alias, args.version, args.force, f"cli:{_user()}", bar
    )
    if args.json:
        _json(change)
    else:
        _say_change(change, "promoted")
    return EXIT_OK


def webhook(settings: ControlSettings, args: argparse.Namespace) -> int:
    """Create or update the alias webhook (idempotent: found by name)."""
    from pathlib import Path

    from control.errors import InvalidInput
    from control.registry import ensure_webhook

    try:
        secret = Path(args.secret_file).read_text().strip()
    except OSError as exc:
        raise InvalidInput(f"--secret-file {args.secret_file}: {exc.strerror}") from None
    if not secret:
        raise InvalidInput(f"--secret-file {args.secret_file} is empty")
    result = ensure_webhook(_mlflow(settings), args.name, args.url, secret)
    if args.json:
        _json(result)
    else:
        print(f"webhook {result['name']} ({result['id']}) {result['outcome']}: {result['url']}")
    return EXIT_OK


def adopt(settings: ControlSettings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from control import registry

    done = registry.adopt(_mlflow(settings), args.name, args.version, Path(args.data), args.target)
    if args.json:
        _json(done)
        return EXIT_OK
    if not done.changed:
        print(f"{done.model} v{done.version}: {done.reason}")
        return EXIT_OK
    onnx = "yes" if done.onnx else "no"
    print(f"{done.model} v{done.version} adopted: drift baseline of {done.baseline_features} "
          f"features, onnx {onnx} ({done.onnx_reason})")  # fmt: skip
    for name, value in sorted(done.metrics.items()):
        print(f"  {name:<16} {value:.4f}")
    print(f"extras     {done.extras_uri}")
    print("the service serves the extras from its next poll")
    return EXIT_OK


def gate(settings: ControlSettings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from control.errors import InvalidInput
    from training import contract
    from training.data import DatasetError
    from training.registry import gate_version
    from training.result import write_result

    client = _mlflow(settings)
    try:
        contract.known_metric(args.metric)
        decision, score, champion = gate_version(
            client,
            args.name,
            args.version,
            Path(args.data),
            args.target,
            args.metric,
            args.margin,
            args.min_score,
            args.force,
        )
    except (DatasetError, contract.ManifestError, ValueError) as exc:
        raise InvalidInput(str(exc)) from exc
    gated = client.get_model_version(args.name, args.version)
    result = contract.TrainingResult(
        model_name=args.name,
        version=str(args.version),
        run_id=str(gated.run_id or ""),
        decision=decision.alias,
        reason=decision.reason,
        onnx=(gated.tags or {}).get(contract.TAG_ONNX) == "true",
    )
    write_result(result, Path(args.result_file) if args.result_file else None)
    if args.json:
        print(result.to_json())
    else:
        print(f"{args.metric} {score:.4f} on {Path(args.data).name}")
        if champion is not None:
            shown = "-" if champion.score is None else f"{champion.score:.4f}"
            print(f"champion   v{champion.version} {shown}")
        print(f"decision   {decision.alias}: {decision.reason}")
    return EXIT_OK


def rollback(settings: ControlSettings, args: argparse.Namespace) -> int:
    from control import registry

    name = args.name or settings.model_name
    change = registry.rollback(_mlflow(settings), name, args.alias, f"cli:{_user()}")
    if args.json:
        _json(change)
    else:
        _say_change(change, "rolled back")
    return EXIT_OK


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (e.g. an arbitrary uid in a container)
        return "unknown"


_QUERY_FLAGS = {"status": "--status", "source": "--source", "model_version": "--model-version"}


def predictions(settings: ControlSettings, args: argparse.Namespace) -> int:
    from control.schemas import PredictionQuery

    fields = ("status", "source", "since", "until", "model_version", "limit", "offset")
    given = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    try:
        query = PredictionQuery(**given)
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "query"
            flag = _QUERY_FLAGS.get(where, f"--{where}")
            print(f"error: {flag}: {error['msg']}", file=sys.stderr)
        return EXIT_INVALID
    params = query.model_dump(exclude_none=True)
    page = _control(settings).get("/v1/predictions", params)
    if args.json:
        _json(page)
        return EXIT_OK
    rows = [
        (
            epoch_to_iso(r["time"]),
            r["request_id"],
            r["model_version"],
            r["status"],
            r["outcome"],
            r["error_source"],
            f"{r['latency_ms']:.2f}",
            r["rows"],
            short(r["labels"]),
        )
        for r in page["items"]
    ]
    headers = (
        "TIME",
        "REQUEST ID",
        "VERSION",
        "STATUS",
        "OUTCOME",
        "SOURCE",
        "LATENCY MS",
        "ROWS",
        "LABELS",
    )
    print(table(headers, rows))
    shown = len(page["items"])
    first = query.offset + 1 if shown else query.offset
    print(f"{first}-{query.offset + shown} of {page['total']}")
    return EXIT_OK


def status(settings: ControlSettings, args: argparse.Namespace) -> int:
    """MLflow, the model's aliases, the control plane and its log, the drift the inference
    service at MLSTACK_CONTROL_INFERENCE_URL reports, and — when a cluster is reachable — the
    last training Job and the version and drift of each inference pod."""
    from control import registry
    from control.errors import ControlError
    from training import contract
    from training.registry import MlflowUnavailable

    report: dict[str, Any] = {"mlflow": {"url": settings.tracking_uri}}
    try:
        client = _mlflow(settings)
        report["mlflow"]["reachable"] = True
        detail = registry.model_detail(client, settings.model_name)
        versions = {v.version: v for v in detail.versions}
        report["model"] = {
            "name": detail.name,
            "aliases": {
                alias: versions[version].model_dump(mode="json")
                for alias, version in sorted(detail.aliases.items())
                if version in versions
            },
        }
    except MlflowUnavailable as exc:
        report["mlflow"].update(reachable=False, error=str(exc))
    except ControlError as exc:
        report["model"] = {"name": settings.model_name, "error": str(exc)}

    control = _control(settings)
    report["control_plane"] = {"url": control.url}
    try:
        now = time.time()
        recent = {"since": now - 3600, "limit": 1}
        report["control_plane"]["predictions"] = {
            "total": control.get("/v1/predictions", {"limit": 1})["total"],
            "last_hour": control.get("/v1/predictions", recent)["total"],
            "last_hour_errors": control.get("/v1/predictions", {**recent, "status": "error"})[
                "total"
            ],
        }
        aliases = report.get("model", {}).get("aliases", {})
        champion = aliases.get(contract.ALIAS_CHAMPION)
        challenger = aliases.get(contract.ALIAS_CHALLENGER)
        if champion and challenger and champion["version"] != challenger["version"]:
            params = {"model_version": challenger["version"], "live_version": champion["version"]}
            report["model"]["challenger_agreement"] = control.get(
                "/v1/predictions/agreement", params
            )
    except ControlPlaneError as exc:
        report["control_plane"]["error"] = str(exc)

    drift: list[tuple[str, Reply]] = []
    if settings.inference_url is not None:
        url = settings.inference_url.rstrip("/")
        drift.append((url, get_json(f"{url}/drift", settings.request_timeout_seconds)))
    report["cluster"], pods_drift = _cluster_status(settings)
    drift += pods_drift
    report["drift"] = [{"endpoint": endpoint, **_drift_summary(reply)} for endpoint, reply in drift]

    if args.json:
        _json(report)
    else:
        _print_status(report, contract.ALIAS_CHAMPION, contract.ALIAS_CHALLENGER)
    return EXIT_OK if report["mlflow"].get("reachable") else EXIT_UNREACHABLE


def _cluster_status(settings: ControlSettings) -> tuple[dict[str, Any], list[tuple[str, Reply]]]:
    """The cluster's part of the report, and each inference pod's answer to GET /drift."""
    from control import cluster

    out: dict[str, Any] = {"namespace": settings.namespace}
    try:
        batch, core = cluster.clients()
        job = cluster.last_training_job(batch, settings.namespace, settings.release)
        pods = cluster.inference_pods(core, settings.namespace, settings.release)
    except Exception as exc:  # no kube config, no cluster, no permission: say so and go on
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return out, []
    out["last_training_job"] = None if job is None else vars(job)
    out["inference_pods"] = [
        {"name": p.name, "ready": p.ready, "model_version": p.model_version} for p in pods
    ]
    return out, [(f"pod/{p.name}", p.drift) for p in pods]


class _FeatureDrift(BaseModel):
    statistic: float | None
    drifted: bool
    out_of_range: int | None = None  # None: no training range (or a service without ranges)


class _DriftReport(BaseModel):
    """The inference service's GET /drift answer (app/routes/drift.py)."""

    statistic: str
    threshold: float
    window_rows: int
    window_size: int
    min_rows: int
    baseline_version: str
    ranges_known: bool = False  # absent from services that predate training ranges
    features: dict[str, _FeatureDrift]


def _drift_summary(reply: Reply) -> dict[str, Any]:
    """What `status` says about one endpoint's drift; `state` is `drifted`, `stable`,
    `warming_up` (fewer rows than the service's MLSTACK_DRIFT_MIN_ROWS), `no_baseline` (the
    served version has none: `mlstack adopt` adds one), `unreachable` (no answer) or `error`
    (an error answer, or one that is not a drift report). `out_of_range` holds the features
    with values seen outside their training range and how many (None: the ranges are
    unknown)."""
    if reply.status == 409:  # the served version has no baseline (app/routes/drift.py)
        return {"state": "no_baseline", "error": reply.error}
    if reply.error is not None:
        return {"state": "unreachable" if not reply.reached else "error", "error": reply.error}
    try:
        drift = _DriftReport.model_validate(reply.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        return {"state": "error", "error": f"not a drift report: {where}: {first['msg']}"}
    over = sorted(
        (
            (name, f.statistic)
            for name, f in drift.features.items()
            if f.drifted and f.statistic is not None
        ),
        key=lambda item: -item[1],
    )
    if drift.window_rows < drift.min_rows:
        state = "warming_up"
    elif over:
        state = "drifted"
    else:
        state = "stable"
    return {
        "state": state,
        "statistic": drift.statistic,
        "threshold": drift.threshold,
        "window_rows": drift.window_rows,
        "window_size": drift.window_size,
        "min_rows": drift.min_rows,
        "baseline_version": drift.baseline_version,
        "features": len(drift.features),
        "over_threshold": {name: statistic for name, statistic in over},
        "out_of_range": {
            name: f.out_of_range for name, f in drift.features.items() if f.out_of_range
        }
        if drift.ranges_known
        else None,
    }


def _drift_line(summary: dict[str, Any]) -> str:
    state = summary["state"]
    if state in ("unreachable", "error"):
        return f"{state} ({summary['error']})"
    if state == "no_baseline":
        return f"no baseline ({summary['error']})"
    baseline = f"baseline v{summary['baseline_version']}{_ranges_note(summary['out_of_range'])}"
    if state == "warming_up":
        return (
            f"not enough data yet ({summary['window_rows']} of {summary['min_rows']} rows), "
            f"{baseline}"
        )
    window = f"window {summary['window_rows']}"
    over = summary["over_threshold"]
    if not over:
        return f"none of {summary['features']} features over threshold ({window}), {baseline}"
    stat, threshold = summary["statistic"], summary["threshold"]
    named = ", ".join(f"{name} {stat} {value:.2f} > {threshold:g}" for name, value in over.items())
    count = f"{len(over)} of {summary['features']} features"
    return f"{count} over threshold ({named}), {window}, {baseline}"


def _ranges_note(outside: dict[str, int] | None) -> str:
    if outside is None:
        return ", training ranges unknown"
    if not outside:
        return ""
    named = ", ".join(f"{name} {count}" for name, count in outside.items())
    return f", values out of training range ({named})"


def _print_status(report: dict[str, Any], *main_aliases: str) -> None:
    mlflow = report["mlflow"]
    state = "reachable" if mlflow.get("reachable") else f"UNREACHABLE ({mlflow.get('error')})"
    lines = [("mlflow", f"{mlflow['url']} {state}")]
    model = report.get("model")
    if model is not None:
        lines.append(
            ("model", model["name"] + (f" ({model['error']})" if "error" in model else ""))
        )
        aliases = model.get("aliases", {})
        order = {alias: i for i, alias in enumerate(main_aliases)}
        for alias in sorted(aliases, key=lambda a: (order.get(a, len(order)), a)):
            v = aliases[alias]
            score = f"{v['metric']} {v['score']:.4f}" if v["score"] is not None else "no score"
            lines.append((f"  {alias}", f"v{v['version']} ({score}) created {v['created']}"))
        for alias in main_aliases:
            if "error" not in model and alias not in aliases:
                lines.append((f"  {alias}", "-"))
        agreement = model.get("challenger_agreement")
        if agreement is not None:
            share = agreement["agreement"]
            lines.append(
                (
                    "  agreement",
                    f"challenger v{agreement['model_version']} with champion "
                    f"v{agreement['live_version']}: "
                    + (
                        f"{share:.4f} over {agreement['rows']} shadowed rows"
                        if share is not None
                        else "no shadowed rows yet"
                    ),
                )
            )
    control = report["control_plane"]
    if "error" in control:
        lines.append(("control plane", f"{control['url']} UNREACHABLE ({control['error']})"))
    else:
        p = control["predictions"]
        lines.append(("control plane", f"{control['url']} answering"))
        lines.append(
            (
                "  predictions",
                f"{p['total']} logged; last hour {p['last_hour']}, errors {p['last_hour_errors']}",
            )
        )
    k8s = report["cluster"]
    if "error" in k8s:
        lines.append(("cluster", f"not reachable ({k8s['error']})"))
    else:
        lines.append(("cluster", f"namespace {k8s['namespace']}"))
        job = k8s["last_training_job"]
        lines.append(
            (
                "  training job",
                "none"
                if job is None
                else f"{job['name']} {job['state']} (started {job['started']}, "
                f"finished {job['finished']})",
            )
        )
        pods = k8s["inference_pods"]
        lines.append(("  inference", f"{len(pods)} pod(s)"))
        for pod in pods:
            ready = "ready" if pod["ready"] else "not ready"
            lines.append((f"    {pod['name']}", f"{ready}, serving v{pod['model_version']}"))
    drift = report["drift"]
    if drift:
        lines.append(("drift", f"{len(drift)} inference endpoint(s)"))
        lines += [(f"  {entry['endpoint']}", _drift_line(entry)) for entry in drift]
    else:
        lines.append(("drift", "no inference endpoint to ask (set MLSTACK_CONTROL_INFERENCE_URL)"))
    width = max(len(k) for k, _ in lines) + 2
    for key, value in lines:
        print(f"{key.ljust(width)}{value}")


def train_local(_: ControlSettings, args: argparse.Namespace) -> int:
    """One round in this process (`python -m training` with the same flags and exit codes)."""
    from training.__main__ import main as training_main

    return training_main(args.training_args)


def _training_template(
    settings: ControlSettings, batch: Any, core: Any
) -> tuple[dict[str, Any], str]:
    """The Job to copy (see control.jobs.choose_template) with the user's own permissions:
    the named ConfigMap, else the chart's ConfigMaps found by their labels, else its Jobs."""
    from control.cluster import selector

    namespace = settings.namespace
    label_selector = selector(COMPONENT_SELECTOR, settings.release)
    name = settings.training_template_configmap
    if name:
        named = (name, core.read_namespaced_config_map(name, namespace).data)
        return choose_template(named, [], [], batch.api_client, "")
    published = core.list_namespaced_config_map(namespace, label_selector=label_selector).items
    jobs = batch.list_namespaced_job(namespace, label_selector=label_selector).items
    where = f"{label_selector} in namespace {namespace!r}"
    return choose_template(None, published, jobs, batch.api_client, where)


def train(settings: ControlSettings, args: argparse.Namespace) -> int:
    """Copy the chart's training Job under a new name and follow it."""
    if args.local:
        return train_local(settings, args)
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    from control.cluster import clients, job_result

    namespace = settings.namespace
    try:
        batch, core = clients()
        template, source = _training_template(settings, batch, core)
        check_arguments(template, args.training_args)
    except (ConfigException, HTTPError) as exc:
        # The template says whether the flags are the round's: no cluster, no check.
        print(f"error: Kubernetes is not reachable: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ParameterError as exc:
        print(f"error: invalid training flags: {exc}", file=sys.stderr)
        return EXIT_INVALID
    release = (template.get("metadata", {}).get("labels") or {}).get(INSTANCE_LABEL, "mlstack")
    name = job_name(release, "cli")
    manifest = job_from_template(template, name, args.training_args, _user(), args.parallelism)
    manifest["metadata"]["namespace"] = namespace
    batch.create_namespaced_job(namespace, manifest)
    print(
        f"created job {name} from {source} "
        f"(extra training flags: {' '.join(args.training_args) or 'none'})"
    )
    if args.no_wait:
        return EXIT_OK

    def read_logs() -> dict[str, str]:
        """The log of the newest pod of each index (one pod unless the round is spread)."""
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
        logs = {}
        for index, pod in newest_per_index(pods):
            label = "" if index is None else f"pod {index}"
            try:
                logs[label] = str(core.read_namespaced_pod_log(pod.metadata.name, namespace))
            except ApiException:
                continue  # still starting: no log yet
        return logs

    try:
        outcome = follow(
            lambda: batch.api_client.sanitize_for_serialization(
                batch.read_namespaced_job(name, namespace)
            ),
            read_logs,
            lambda: job_result(core, namespace, name),
            name,
            args.timeout,
            print,
        )
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"job {name} {'succeeded' if outcome.succeeded else 'failed'} after "
        f"{outcome.seconds:.0f} s; gate: {outcome.reported.describe()}"
    )
    return EXIT_OK if outcome.succeeded else EXIT_FAILED
