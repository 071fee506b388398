"""`mlstack`: train, look at the registry, promote and roll back, read the prediction log, and
run the control plane (`mlstack serve`).

Every option that is also a setting overrides its environment variable MLSTACK_CONTROL_<NAME>
(e.g. `--url` ↔ MLSTACK_CONTROL_URL); MLflow is found through MLFLOW_TRACKING_URI.
Exit status: 0 done, 1 refused or failed, 2 invalid input, 3 MLflow or the control plane
unreachable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pydantic import ValidationError

from control import commands
from control.settings import ENV_PREFIX, ControlSettings
from training import contract
from training.settings import TrainingSettings

_FLAGS: dict[str, str] = {}


def _parallelism(text: str) -> int:
    from control.jobs import MAX_PARALLELISM

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLELISM:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer from 1 to {MAX_PARALLELISM}")
    return value


def _settings_flag(parser: argparse.ArgumentParser, *flags: str, field: str, **kw: object) -> None:
    """A flag that overrides the setting `field` when given (its default stays the setting's)."""
    _FLAGS[field] = flags[0]
    info = ControlSettings.model_fields[field]
    default = info.default if info.default is not None else "unset"
    parser.add_argument(
        *flags,
        dest=field,
        default=None,
        help=f"{info.description} ({ENV_PREFIX}{field.upper()}, default {default})",
        **kw,  # type: ignore[arg-type]
    )


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 to 1 (e.g. 0.95)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlstack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, run: Callable[..., int], help_text: str, **kw: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=kw.get("description", help_text))
        p.set_defaults(run=run)
        return p

    p = command(
        "train",
        commands.train,
        "start a training Job in the cluster and follow it (--local: run the round here)",
        description="Copies the chart's training Job under a new name and follows it; with "
        "--local, runs the round in this process against MLFLOW_TRACKING_URI. Flags after `--` "
        "are passed to the round (`python -m training --help`).",
    )
    p.add_argument("--local", action="store_true", help="run the round in this process")
    _settings_flag(p, "--namespace", "-n", field="namespace")
    _settings_flag(p, "--release", field="release")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait")
    p.add_argument("--no-wait", action="store_true", help="create the Job and return")
    p.add_argument(
        "--parallelism",
        type=_parallelism,
        default=None,
        help="spread the round over this many pods, an Indexed Job (default: the template's)",
    )
    p.add_argument("training_args", nargs=argparse.REMAINDER, help="training flags, after --")

    p = command("models", commands.models, "registered models and their versions")
    p.add_argument("name", nargs="?", help="one model (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("experiments", commands.experiments, "experiments and their best runs")
    _settings_flag(p, "--metric", field="main_metric")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command(
        "promote",
        commands.promote,
        "point an alias at a version (refused on a signature change unless --force)",
    )
    p.add_argument("name", help="registered model")
    p.add_argument("version", help="version number")
    p.add_argument("--alias", default=contract.ALIAS_CHAMPION, help="alias to move")
    p.add_argument("--force", action="store_true", help="move even when the signature differs")
    p.add_argument(
        "--min-agreement",
        type=_share,
        help="refuse unless the version, shadowed beside the alias's current version, agreed "
        "with it on at least this share of rows (0 to 1; read from the control plane's log)",
    )
    p.add_argument(
        "--min-rows",
        type=_positive,
        default=100,
        help="shadowed rows --min-agreement needs (default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command(
        "webhook",
        commands.webhook,
        "register (or bring in line) the MLflow webhook that pushes alias moves",
        description="Creates the webhook named --name for model_version_alias.created and "
        ".deleted, or updates it to this URL, secret and events: running it again changes "
        "nothing else. Needs an MLflow account allowed to manage webhooks.",
    )
    p.add_argument("--url", required=True, help="where MLflow delivers (the control plane's)")
    p.add_argument("--secret-file", required=True, help="file holding the signing secret")
    p.add_argument("--name", default="mlstack", help="the webhook's name (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command(
        "adopt",
        commands.adopt,
        "give a version mlstack did not train its extras: ONNX on parity, drift baseline",
        description="Adds to an existing version, from sample rows: an ONNX export (kept only "
        "when parity holds on them), the baseline statistics drift needs, and the manifest. "
        "Idempotent; the version's model files never change; the service uses the extras from "
        "its next poll.",
    )
    p.add_argument("name", help="registered model")
    p.add_argument("version", help="version number")
    p.add_argument("--data", required=True, help="CSV of sample rows with the feature columns")
    p.add_argument("--target", help="label column of the CSV (for metrics); others refused")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command(
        "gate",
        commands.gate,
        "run the quality gate for a version on held-out data and move its alias",
        description="Scores the version and the current champion on the same held-out rows "
        "and gives the version `champion` or `challenger` by the training round's rules, with "
        "the same tags.",
    )
    p.add_argument("name", help="registered model")
    p.add_argument("version", help="version number")
    p.add_argument("--data", required=True, help="held-out CSV: feature columns and the target")
    p.add_argument("--target", required=True, help="label column of the CSV")
    # The round's own defaults: the same gate whichever way a version arrives.
    round_default = {k: f.default for k, f in TrainingSettings.model_fields.items()}
    p.add_argument(
        "--metric",
        default=round_default["metric"],
        choices=list(contract.METRICS),
        help="metric the gate compares (default %(default)s)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=round_default["margin"],
        help="improvement needed over the champion (default %(default)s)",
    )
    p.add_argument(
        "--min-score",
        type=float,
        default=round_default["min_score"],
        help="floor the score must clear (default %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="promote past an incomparable champion")
    p.add_argument("--result-file", help="write the decision as JSON here")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("rollback", commands.rollback, "move an alias back to the version it held before")
    p.add_argument("name", nargs="?", help="registered model (default: MLSTACK_CONTROL_MODEL_NAME)")
    p.add_argument("--alias", default=contract.ALIAS_CHAMPION, help="alias to move back")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("predictions", commands.predictions, "the prediction log, newest first")
    p.add_argument("--status", help="success or error")
    p.add_argument("--source", help="error source: validation, auth, limit or model")
    p.add_argument("--since", help="from this time (ISO 8601 or epoch seconds)")
    p.add_argument("--until", help="before this time (ISO 8601 or epoch seconds)")
    p.add_argument("--model-version", dest="model_version", help="one model version")
    p.add_argument("--limit", help="records per page (default 50, at most 1000)")
    p.add_argument("--offset", help="records to skip (default 0)")
    _settings_flag(p, "--url", field="url")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command(
        "status",
        commands.status,
        "MLflow, champion and challenger, the control plane, the cluster (when reachable)",
    )
    _settings_flag(p, "--url", field="url")
    _settings_flag(p, "--model-name", field="model_name")
    _settings_flag(p, "--namespace", "-n", field="namespace")
    _settings_flag(p, "--release", field="release")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("serve", commands.serve, "run the control plane (one uvicorn worker)")
    _settings_flag(p, "--host", field="host")
    _settings_flag(p, "--port", field="port")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "training_args", None) and args.training_args[:1] == ["--"]:
        args.training_args = args.training_args[1:]
    overrides = {
        field: value
        for field in ControlSettings.model_fields
        if (value := getattr(args, field, None)) is not None
    }
    try:
        settings = ControlSettings(**overrides)
        settings.resolved_api_key()  # an unreadable key file is found before any work
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            if field in overrides:
                where = _FLAGS[field]
            elif field:
                alias = ControlSettings.model_fields[field].validation_alias
                where = str(alias) if alias else f"{ENV_PREFIX}{field.upper()}"
            else:
                where = "settings"
            print(f"error: {where}: {error['msg']}", file=sys.stderr)
        return commands.EXIT_INVALID
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return commands.EXIT_INVALID
    from control import log
    from control.client import ControlPlaneError
    from control.errors import ControlError, InvalidInput, RegistryUnavailable
    from training.registry import MlflowUnavailable

    if args.command != "serve":
        # Audit events (alias.moved) go to stderr; tables and JSON stay alone on stdout.
        log.configure(settings.log_level, sys.stderr.buffer)
    try:
        status: int = args.run(settings, args)
    except (MlflowUnavailable, RegistryUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return commands.EXIT_UNREACHABLE
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.status is None:
            return commands.EXIT_UNREACHABLE
        return commands.EXIT_INVALID if exc.status in (400, 422) else commands.EXIT_FAILED
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return commands.EXIT_INVALID if isinstance(exc, InvalidInput) else commands.EXIT_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
