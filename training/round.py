"""One training round: search every candidate, log it, register the winner, apply the gate."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from training import contract
from training import search as searching
from training.candidates import build
from training.cores import available_cores
from training.data import load_dataset, split
from training.evaluate import held_out_metrics, write_confusion
from training.gate import Decision
from training.onnx_export import OnnxResult
from training.publish import proba_in_order, publish
from training.registry import wait_for_mlflow
from training.settings import TrainingSettings


@dataclass(frozen=True)
class CandidateResult:
    family: str
    run_id: str
    best_params: dict[str, Any]
    cv_mean: float
    cv_std: float
    fit_seconds: float
    metrics: dict[str, float]
    model: Any = field(repr=False)


@dataclass(frozen=True)
class RoundResult:
    run_id: str
    experiment_id: str
    winner: CandidateResult
    version: str
    decision: Decision
    onnx: OnnxResult
    candidates: list[CandidateResult]
    seconds: float
    skipped: dict[str, str] = field(default_factory=dict)  # family → why it did not run


def code_version(settings: TrainingSettings) -> str:
    if settings.code_version:
        return settings.code_version
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        try:
            return f"mlstack-{package_version('mlstack')}"
        except PackageNotFoundError:
            return "unknown"


def run_round(
    settings: TrainingSettings, tracking_uri: str, out: TextIO = sys.stdout
) -> RoundResult:
    """Run one round. Raises DatasetError before any MLflow run exists, MlflowUnavailable
    when the server cannot be reached; no alias moves unless every step before it succeeded.
    """
    started = time.monotonic()
    dataset = load_dataset(
        settings.dataset,
        settings.data,
        settings.target,
        settings.test_size,
        settings.cv_folds,
        settings.s3_endpoint_url,
    )
    _say(
        out,
        f"dataset {dataset.name}: {len(dataset.labels)} rows, "
        f"{len(dataset.feature_names)} features, {dataset.labels.nunique()} classes",
    )
    wait_for_mlflow(tracking_uri, settings.mlflow_timeout_seconds)

    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = mlflow.set_experiment(settings.experiment)
    data = split(dataset, settings.test_size, settings.seed)
    classes = sorted(str(c) for c in np.unique(data.y_train))
    version_tag = code_version(settings)
    common_tags = {
        contract.TAG_DATASET_NAME: dataset.name,
        contract.TAG_DATASET_HASH: dataset.sha256,
        contract.TAG_CODE_VERSION: version_tag,
    }

    with (
        tempfile.TemporaryDirectory() as tmp,
        mlflow.start_run(
            run_name=f"round-{dataset.name}",
            tags={**common_tags, contract.TAG_ROUND_ROLE: contract.ROLE_ROUND},
        ) as parent,
    ):
        workdir = Path(tmp)
        mlflow.log_params(
            {
                "dataset": dataset.name,
                "candidates": ",".join(settings.candidates),
                "test_size": settings.test_size,
                "cv_folds": settings.cv_folds,
                "seed": settings.seed,
                "gate_metric": settings.metric,
                "gate_margin": settings.margin,
                "gate_floor": settings.min_score,
            }
        )
        from mlflow.data.pandas_dataset import from_pandas

        mlflow.log_input(
            from_pandas(dataset.frame(), name=dataset.name, targets=dataset.target),
            context="training",
        )
        plan = searching.plan(
            settings.candidates,
            len(data.y_train),
            svm_max_rows=settings.svm_max_rows,
            halving_min_rows=settings.halving_min_rows,
            cores=available_cores(settings.n_jobs),
        )
        mlflow.log_params({"cores": plan.cores, "search": "halving" if plan.halving else "grid"})
        _say(
            out,
            f"search {'successive halving' if plan.halving else 'grid'} on {plan.cores} "
            f"core{'s' if plan.cores > 1 else ''}, {settings.cv_folds}-fold CV, "
            f"{len(data.y_train)} training rows",
        )
        skipped = dict(plan.skipped)
        for family, reason in plan.skipped.items():
            _say(out, f"skipped {family}: {reason}")
        results = []
        for index, family in enumerate(plan.families, start=1):
            spent = time.monotonic() - started
            # The first family always runs: a round without a candidate registers nothing.
            if index > 1 and spent >= settings.time_budget_seconds:
                for rest in plan.families[index - 1 :]:
                    skipped[rest] = (
                        f"the time budget of {settings.time_budget_seconds:g} s was spent "
                        f"({spent:.1f} s) before it could start (MLSTACK_TIME_BUDGET_SECONDS)"
                    )
                    _say(out, f"skipped {rest}: {skipped[rest]}")
                break
            result = _search(
                family,
                settings,
                plan,
                data,
                classes,
                common_tags,
                workdir,
                out,
                f"[{index}/{len(plan.families)}]",
            )
            results.append(result)
            _say(
                out,
                f"[{index}/{len(plan.families)}] {family:<22} "
                f"cv {settings.metric} {result.cv_mean:.4f} ± {result.cv_std:.4f}  "
                f"held-out {settings.metric} {result.metrics[settings.metric]:.4f}  "
                f"({result.fit_seconds:.1f} s)",
            )
        truncated = [f for f in plan.families if f in skipped]
        mlflow.set_tags(
            {
                f"{contract.TAG_SKIPPED_PREFIX}{family}": why[:5000]
                for family, why in skipped.items()
            }
        )
        if truncated:
            mlflow.set_tag(contract.TAG_TRUNCATED, ",".join(truncated))
        # Select on cross-validation (training data only); the held-out split stays unbiased
        # for the gate. The first family listed wins a tie.
        sign = 1.0 if contract.METRICS[settings.metric].higher_is_better else -1.0
        winner = max(results, key=lambda r: sign * r.cv_mean)
        mlflow.set_tag(contract.TAG_CANDIDATE, winner.family)
        mlflow.log_metrics(
            {f"{contract.TEST_METRIC_PREFIX}{k}": v for k, v in winner.metrics.items()}
        )
        mlflow.log_metrics(
            {
                contract.CV_MEAN_METRIC: winner.cv_mean,
                contract.CV_STD_METRIC: winner.cv_std,
                contract.FIT_SECONDS_METRIC: winner.fit_seconds,
            }
        )

        published = publish(
            client,
            winner.model,
            model_name=settings.model_name,
            classes=classes,
            x_train=data.x_train,
            x_test=data.x_test,
            y_test=data.y_test,
            metrics=winner.metrics,
            dataset_name=dataset.name,
            dataset_sha256=dataset.sha256,
            tags={**common_tags, contract.TAG_CANDIDATE: winner.family},
            metric=settings.metric,
            margin=settings.margin,
            min_score=settings.min_score,
            force=settings.force,
            onnx=settings.onnx,
            onnx_tolerance=settings.onnx_tolerance,
            workdir=workdir,
            say=lambda line: _say(out, line),
        )

    return RoundResult(
        parent.info.run_id,
        experiment.experiment_id,
        winner,
        published.version,
        published.decision,
        published.onnx,
        results,
        time.monotonic() - started,
        skipped,
    )


def _search(
    family: str,
    settings: TrainingSettings,
    plan: searching.Plan,
    data: Any,
    classes: list[str],
    tags: dict[str, str],
    workdir: Path,
    out: TextIO,
    step: str,
) -> CandidateResult:
    import mlflow
    from threadpoolctl import threadpool_limits

    candidate = build(family, settings.seed)
    rows = len(data.y_train)
    fits, work = searching.planned_work(
        candidate, rows, settings.cv_folds, len(classes), plan.halving
    )
    with mlflow.start_run(
        run_name=family,
        nested=True,
        tags={
            **tags,
            contract.TAG_ROUND_ROLE: contract.ROLE_CANDIDATE,
            contract.TAG_CANDIDATE: family,
        },
    ) as run:
        progress = searching.Progress(
            family, fits, work, lambda line: _say(out, line), settings.progress_seconds
        )
        search = searching.make_search(
            candidate,
            scoring=searching.CountingScorer(searching.scorer_for(settings.metric), progress.path),
            folds=settings.cv_folds,
            seed=settings.seed,
            cores=plan.cores,
            halving=plan.halving,
        )
        kind = "successive halving" if searching.halves(candidate, plan.halving) else "grid"
        _say(out, f"{step} {family:<22} started: {kind}, {fits} fits")
        started = time.perf_counter()
        # The refit runs in this process: its OpenMP and BLAS threads get the cores too, not
        # the host's count.
        with progress, threadpool_limits(limits=plan.cores):
            search.fit(data.x_train.to_numpy(), data.y_train)
        fit_seconds = time.perf_counter() - started
        index = search.best_index_
        sign = 1.0 if contract.METRICS[settings.metric].higher_is_better else -1.0
        cv_mean = sign * float(search.cv_results_["mean_test_score"][index])
        cv_std = float(search.cv_results_["std_test_score"][index])
        model = search.best_estimator_
        proba = proba_in_order(model, data.x_test.to_numpy(), classes)
        metrics = held_out_metrics(data.y_test, proba, classes)
        mlflow.log_params(
            {
                "family": family,
                "search": "halving" if kind != "grid" else "grid",
                **{k: str(v) for k, v in search.best_params_.items()},
            }
        )
        if kind != "grid":
            # What halving did: the rows of each iteration, and the candidates it kept.
            mlflow.log_params(
                {
                    "halving_rows": ",".join(map(str, search.n_resources_)),
                    "halving_candidates": ",".join(map(str, search.n_candidates_)),
                }
            )
        mlflow.log_metrics({f"{contract.TEST_METRIC_PREFIX}{k}": v for k, v in metrics.items()})
        mlflow.log_metrics(
            {
                contract.CV_MEAN_METRIC: cv_mean,
                contract.CV_STD_METRIC: cv_std,
                contract.FIT_SECONDS_METRIC: fit_seconds,
            }
        )
        directory = workdir / family
        directory.mkdir()
        for path in write_confusion(data.y_test, proba, classes, directory):
            mlflow.log_artifact(str(path))
        return CandidateResult(
            family,
            run.info.run_id,
            dict(search.best_params_),
            cv_mean,
            cv_std,
            fit_seconds,
            metrics,
            model,
        )


def _say(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)
