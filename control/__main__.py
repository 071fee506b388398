"""`mlstack`: drive mlstack in a cluster. `mlstack train` starts a training Job and follows it."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from control.jobs import COMPONENT_SELECTOR, JobError, follow, job_from_template


def _clients() -> tuple[Any, Any]:
    from kubernetes import client, config

    try:
        config.load_kube_config()
    except config.ConfigException:
        config.load_incluster_config()
    return client.BatchV1Api(), client.CoreV1Api()


def train(args: argparse.Namespace) -> int:
    batch, core = _clients()
    selector = COMPONENT_SELECTOR
    if args.release:
        selector += f",app.kubernetes.io/instance={args.release}"
    jobs = batch.list_namespaced_job(args.namespace, label_selector=selector).items
    if not jobs:
        print(
            f"error: no training Job ({selector}) in namespace {args.namespace!r}: install "
            "the chart first (helm install) with training.enabled=true",
            file=sys.stderr,
        )
        return 2
    template = max(jobs, key=lambda j: j.metadata.creation_timestamp)
    api = batch.api_client
    base = template.metadata.labels.get("app.kubernetes.io/instance", "mlstack")
    name = f"{base[:40]}-train-manual-{time.strftime('%Y%m%d%H%M%S')}"
    manifest = job_from_template(
        api.sanitize_for_serialization(template), name, args.training_args, getpass.getuser()
    )
    batch.create_namespaced_job(args.namespace, manifest)
    print(
        f"created job {name} from {template.metadata.name} "
        f"(extra training flags: {' '.join(args.training_args) or 'none'})"
    )
    if args.no_wait:
        return 0

    def read_log() -> str:
        pods = core.list_namespaced_pod(args.namespace, label_selector=f"job-name={name}").items
        if not pods:
            return ""
        newest = max(pods, key=lambda p: p.metadata.creation_timestamp)
        return str(core.read_namespaced_pod_log(newest.metadata.name, args.namespace))

    try:
        outcome = follow(
            lambda: api.sanitize_for_serialization(batch.read_namespaced_job(name, args.namespace)),
            read_log,
            name,
            args.timeout,
            print,
        )
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"job {name} {'succeeded' if outcome.succeeded else 'failed'} after "
        f"{outcome.seconds:.0f} s; gate: {outcome.decision or 'no decision printed'}"
    )
    return 0 if outcome.succeeded else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser(
        "train",
        help="start a training Job in the cluster and follow it",
        description="Copies the chart's training Job under a new name; "
        "flags after `--` are passed to `python -m training`.",
    )
    p_train.add_argument("--namespace", "-n", default="default")
    p_train.add_argument("--release", help="Helm release (default: any)")
    p_train.add_argument("--timeout", type=float, default=900, help="seconds to wait")
    p_train.add_argument("--no-wait", action="store_true", help="create the Job and return")
    p_train.add_argument("training_args", nargs=argparse.REMAINDER, help="training flags, after --")
    args = parser.parse_args(argv)
    if args.training_args[:1] == ["--"]:
        args.training_args = args.training_args[1:]
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
