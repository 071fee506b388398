"""One training round: search every candidate, log it, register the winner, apply the gate."""

from __future__ import annotations

import json
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

from training import contract, shards
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
) -> RoundResult | ShardResult:
    """Run one round, or this pod's shard of a spread one (a ShardResult for a pod other than
    0). Raises DatasetError before any MLflow run exists, MlflowUnavailable when the server
    cannot be reached, ShardError when the shards cannot be gathered; no alias moves unless
    every step before it succeeded.
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

    parent_tags = {**common_tags, contract.TAG_ROUND_ROLE: contract.ROLE_ROUND}
    run_name = f"round-{dataset.name}"
    cores = available_cores(settings.n_jobs)
    parent_id = None
    if settings.shards > 1:
        assert settings.round_id is not None  # the settings require it
        parent_id = shards.parent_run(
            client,
            experiment.experiment_id,
            settings.round_id,
            create=settings.shard_index == 0,
            run_name=run_name,
            tags=parent_tags,
            timeout=settings.shard_wait_seconds,
        )
        _say(
            out,
            f"shard {settings.shard_index} of {settings.shards} in round {settings.round_id} "
            f"(run {parent_id})",
        )
    if parent_id is not None and settings.shard_index > 0:
        with tempfile.TemporaryDirectory() as tmp:
            results, _, _ = _search_all(
                settings, data, classes, common_tags, Path(tmp), out, started, cores, parent_id
            )
        shards.report_done(client, parent_id, settings.shard_index, len(results))
        _say(out, f"shard {settings.shard_index} done: {len(results)} candidate runs logged")
        return ShardResult(parent_id, experiment.experiment_id, results, time.monotonic() - started)

    with (
        tempfile.TemporaryDirectory() as tmp,
        (
            mlflow.start_run(run_id=parent_id)
            if parent_id is not None
            else mlflow.start_run(run_name=run_name, tags=parent_tags)
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
                "shards": settings.shards,
            }
        )
        from mlflow.data.pandas_dataset import from_pandas

        mlflow.log_input(
            from_pandas(dataset.frame(), name=dataset.name, targets=dataset.target),
            context="training",
        )
        results, planned, skipped = _search_all(
            settings, data, classes, common_tags, workdir, out, started, cores, parent_id
        )
        if parent_id is not None:
            shards.report_done(client, parent_id, 0, len(results))
            _say(out, f"waiting for the other {settings.shards - 1} shard(s)")
            shards.wait_for_shards(client, parent_id, settings.shards, settings.shard_wait_seconds)
            # Every shard tagged what it skipped on the round's run: the round's skips are theirs.
            skipped = {
                k[len(contract.TAG_SKIPPED_PREFIX) :]: v
                for k, v in client.get_run(parent_id).data.tags.items()
                if k.startswith(contract.TAG_SKIPPED_PREFIX)
            }
            results = _gathered(
                client, experiment.experiment_id, parent_id, dataset.sha256, results,
                settings, planned, data, classes, cores, out,
            )  # fmt: skip
        truncated = [f for f in planned if f in skipped and "time budget" in skipped[f]]
        if truncated:
            mlflow.set_tag(contract.TAG_TRUNCATED, ",".join(truncated))
        # Select on cross-validation (training data only); the held-out split stays unbiased
        # for the gate. The first family listed wins a tie.
        sign = 1.0 if contract.METRICS[settings.metric].higher_is_better else -1.0
        order = list(planned)
        winner = max(results, key=lambda r: (sign * r.cv_mean, -order.index(r.family)))
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


@dataclass(frozen=True)
class ShardResult:
    """What a pod other than 0 of a spread round did: its share, logged under the round's run."""

    run_id: str
    experiment_id: str
    candidates: list[CandidateResult]
    seconds: float


def _search_all(
    settings: TrainingSettings,
    data: Any,
    classes: list[str],
    tags: dict[str, str],
    workdir: Path,
    out: TextIO,
    started: float,
    cores: int,
    parent_id: str | None,
) -> tuple[list[CandidateResult], tuple[str, ...], dict[str, str]]:
    """Search this pod's candidates (all of them, or its shard's share) under the round's run,
    the active one or `parent_id`; tag that run with each family skipped and why. Returns the
    results, the families planned, in order, and the families skipped with why."""
    import mlflow
    from mlflow import MlflowClient

    plan = searching.plan(
        settings.candidates,
        len(data.y_train),
        svm_max_rows=settings.svm_max_rows,
        halving_min_rows=settings.halving_min_rows,
        cores=cores,
    )
    round_run = parent_id or mlflow.active_run().info.run_id  # type: ignore[union-attr]
    client = MlflowClient()
    if parent_id is None or settings.shard_index == 0:
        client.log_param(round_run, "cores", plan.cores)
        client.log_param(round_run, "search", "halving" if plan.halving else "grid")
    _say(
        out,
        f"search {'successive halving' if plan.halving else 'grid'} on {plan.cores} "
        f"core{'s' if plan.cores > 1 else ''}, {settings.cv_folds}-fold CV, "
        f"{len(data.y_train)} training rows",
    )
    skipped = dict(plan.skipped)
    for family, reason in plan.skipped.items():
        _say(out, f"skipped {family}: {reason}")
    rows = len(data.y_train)
    candidates = [build(family, settings.seed, rows) for family in plan.families]
    if settings.shards > 1:
        candidates = searching.share(candidates, settings.shards, settings.shard_index)
    results = []
    for index, candidate in enumerate(candidates, start=1):
        spent = time.monotonic() - started
        # The first family always runs: a round without a candidate registers nothing.
        if index > 1 and spent >= settings.time_budget_seconds:
            for rest in candidates[index - 1 :]:
                skipped[rest.family] = (
                    f"the time budget of {settings.time_budget_seconds:g} s was spent "
                    f"({spent:.1f} s) before it could start (MLSTACK_TIME_BUDGET_SECONDS)"
                )
                _say(out, f"skipped {rest.family}: {skipped[rest.family]}")
            break
        step = f"[{index}/{len(candidates)}]"
        result = _search(
            candidate, settings, plan, data, classes, tags, workdir, out, step, parent_id
        )
        results.append(result)
        _say(
            out,
            f"{step} {candidate.family:<22} "
            f"cv {settings.metric} {result.cv_mean:.4f} ± {result.cv_std:.4f}  "
            f"held-out {settings.metric} {result.metrics[settings.metric]:.4f}  "
            f"({result.fit_seconds:.1f} s)",
        )
    for family, why in skipped.items():
        client.set_tag(round_run, f"{contract.TAG_SKIPPED_PREFIX}{family}", why[:5000])
    return results, plan.families, skipped


def _gathered(
    client: Any,
    experiment_id: str,
    parent_id: str,
    dataset_sha256: str,
    own: list[CandidateResult],
    settings: TrainingSettings,
    planned: tuple[str, ...],
    data: Any,
    classes: list[str],
    cores: int,
    out: TextIO,
) -> list[CandidateResult]:
    """Every shard's candidates, each with its held-out metrics; the best on cross-validation
    carries a fitted model: this pod's own, or refitted here from its parameters."""
    from threadpoolctl import threadpool_limits

    found = shards.gather(client, experiment_id, parent_id, dataset_sha256)
    if not found:
        raise shards.ShardError("no shard logged a finished candidate run")
    sign = 1.0 if contract.METRICS[settings.metric].higher_is_better else -1.0
    order = list(planned)
    best = max(found, key=lambda g: (sign * g.cv_mean, -order.index(g.family)))
    _say(
        out,
        f"gathered {len(found)} candidate runs from {settings.shards} shards; best "
        f"{best.family} {best.params} from shard {best.shard}",
    )
    mine = {r.run_id: r for r in own}
    results = []
    for gathered in found:
        if gathered.run_id in mine:
            results.append(mine[gathered.run_id])
            continue
        metrics = client.get_run(gathered.run_id).data.metrics
        model = None
        if gathered is best:
            candidate = build(gathered.family, settings.seed, len(data.y_train))
            started = time.perf_counter()
            with threadpool_limits(limits=cores):
                model = candidate.estimator.set_params(**gathered.params).fit(
                    data.x_train.to_numpy(), data.y_train
                )
            _say(out, f"refitted {best.family} in {time.perf_counter() - started:.1f} s")
        results.append(
            CandidateResult(
                gathered.family,
                gathered.run_id,
                gathered.params,
                gathered.cv_mean,
                gathered.cv_std,
                gathered.fit_seconds,
                {
                    k[len(contract.TEST_METRIC_PREFIX) :]: v
                    for k, v in metrics.items()
                    if k.startswith(contract.TEST_METRIC_PREFIX)
                },
                model,
            )
        )
    return results


def _search(
    candidate: Any,
    settings: TrainingSettings,
    plan: searching.Plan,
    data: Any,
    classes: list[str],
    tags: dict[str, str],
    workdir: Path,
    out: TextIO,
    step: str,
    parent_id: str | None,
) -> CandidateResult:
    import mlflow
    from threadpoolctl import threadpool_limits

    family = candidate.family
    rows = len(data.y_train)
    fits, work = searching.planned_work(
        candidate, rows, settings.cv_folds, len(classes), plan.halving
    )
    with mlflow.start_run(
        run_name=family,
        nested=True,
        parent_run_id=parent_id,
        tags={
            **tags,
            contract.TAG_ROUND_ROLE: contract.ROLE_CANDIDATE,
            contract.TAG_CANDIDATE: family,
            contract.TAG_SHARD: str(settings.shard_index),
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
        mlflow.set_tag(contract.TAG_PARAMS, json.dumps(search.best_params_, default=str))
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
        directory = workdir / run.info.run_id
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
