"""`python -m training`: one training round from the command line.

Exit status: 0 for a finished round whatever the gate decided, 2 for invalid input,
3 when MLflow cannot be reached, 1 for any other failure (the result file not written
included). The summary printed at the end is for people; programs read the result file
(`--result-file`, a TrainingResult as JSON).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from training.contract import TrainingResult
from training.data import DatasetError
from training.registry import MlflowUnavailable
from training.result import write_result
from training.settings import TrainingSettings
from training.shards import ShardError

if TYPE_CHECKING:
    from training.round import RoundResult

EXIT_INVALID_INPUT = 2
EXIT_MLFLOW_UNAVAILABLE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train candidate classifiers, track them in MLflow, register the best "
        "one and give it the champion or challenger alias through the quality gate. "
        "MLflow is found through MLFLOW_TRACKING_URI. Every option is also an environment "
        "variable MLSTACK_<OPTION> (e.g. MLSTACK_MODEL_NAME).",
    )
    for name, info in TrainingSettings.model_fields.items():
        if info.validation_alias:  # MLflow's own variable, not a flag
            continue
        flag = "--" + name.replace("_", "-")
        default = info.default
        if isinstance(default, tuple):
            default = ",".join(default)
        help_text = f"{info.description} (default: {default})"
        if info.annotation is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text, metavar=name.upper())
    return parser


def flag_overrides(argv: list[str] | None) -> dict[str, Any]:
    """The settings the flags give, by field name. argparse exits 2 naming a bad flag."""
    args = vars(_parser().parse_args(argv))
    return {k: v for k, v in args.items() if v is not None}


def parse_settings(argv: list[str] | None) -> TrainingSettings:
    return TrainingSettings(**flag_overrides(argv))


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"error: {where}: {error['msg']}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    tracking_uri = settings.tracking_uri

    from training.round import ShardResult, run_round

    try:
        result = run_round(settings, tracking_uri)
    except DatasetError as exc:
        print(f"error: invalid dataset: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except MlflowUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MLFLOW_UNAVAILABLE
    except ShardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if isinstance(result, ShardResult):
        # Pod 0 registers the round's version and writes the Job's result.
        print(f"\nshard {settings.shard_index} of {settings.shards}: {len(result.candidates)} "
              f"candidate runs under run {result.run_id}, {result.seconds:.1f} s")  # fmt: skip
        return 0
    _summary(result, settings, tracking_uri)
    try:
        write_result(_result(result, settings), settings.result_file)
    except OSError as exc:
        print(f"error: cannot write the result file {settings.result_file}: {exc}", file=sys.stderr)
        return 1
    return 0


def _result(result: RoundResult, settings: TrainingSettings) -> TrainingResult:
    return TrainingResult(
        model_name=settings.model_name,
        version=result.version,
        run_id=result.run_id,
        decision=result.decision.alias,
        reason=result.decision.reason,
        onnx=result.onnx.path is not None,
    )


def _summary(result: Any, settings: TrainingSettings, tracking_uri: str) -> None:
    winner = result.winner
    print()
    print(f"winner     {winner.family} {winner.best_params}")
    for name, value in sorted(winner.metrics.items()):
        print(f"  {name:<16} {value:.4f}")
    print(f"registered {settings.model_name} v{result.version}")
    print(f"decision   {result.decision.alias}: {result.decision.reason}")
    print(f"onnx       {'yes' if result.onnx.path else 'no'} ({result.onnx.reason})")
    print(f"took       {result.seconds:.1f} s")
    if tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri.rstrip("/")
        print(f"mlflow ui  {base}/#/experiments/{result.experiment_id}/runs/{result.run_id}")


if __name__ == "__main__":
    sys.exit(main())
