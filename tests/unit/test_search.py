"""The round's search plan, its successive-halving schedule and its progress count."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import ParameterGrid

from training import search
from training.candidates import build


def test_the_svm_is_skipped_above_its_threshold_with_the_setting_named() -> None:
    plan = search.plan(
        ("logreg", "svm"), 30_000, svm_max_rows=20_000, halving_min_rows=50_000, cores=2
    )
    assert plan.families == ("logreg",)
    assert "30000 training rows is over MLSTACK_SVM_MAX_ROWS=20000" in plan.skipped["svm"]
    assert not plan.halving


def test_the_svm_alone_still_runs_since_a_round_needs_a_candidate() -> None:
    plan = search.plan(("svm",), 30_000, svm_max_rows=20_000, halving_min_rows=0, cores=1)
    assert plan.families == ("svm",) and plan.skipped == {}
    assert plan.halving


@pytest.mark.parametrize("threshold", [100, 101])
def test_halving_starts_at_its_row_threshold(threshold: int) -> None:
    plan = search.plan(("logreg",), 100, svm_max_rows=0, halving_min_rows=threshold, cores=1)
    assert plan.halving is (threshold <= 100)


@pytest.mark.parametrize(("family", "rows"), [("hist_gradient_boosting", 3000), ("logreg", 900)])
def test_the_planned_schedule_is_the_one_scikit_learn_runs(family: str, rows: int) -> None:
    x, y = make_classification(rows, 6, n_informative=4, n_classes=3, random_state=0)
    candidate = build(family, 0)
    fitted = search.make_search(
        candidate, scoring="accuracy", folds=3, seed=0, cores=1, halving=True
    ).fit(x.astype(np.float32), y)
    planned = search.halving_schedule(len(ParameterGrid(candidate.grid)), rows, 3, 3)
    assert [n for n, _ in planned] == list(fitted.n_candidates_)
    assert [r for _, r in planned] == list(fitted.n_resources_)


def test_the_progress_counts_every_fit_the_search_makes() -> None:
    x, y = make_classification(600, 5, n_informative=3, n_classes=3, random_state=1)
    candidate = build("logreg", 0)
    fits, work = search.planned_work(candidate, len(y), 4, 3, halving=False)
    lines: list[str] = []
    progress = search.Progress("logreg", fits, work, lines.append, every=60)
    with progress:
        scorer = search.CountingScorer(search.scorer_for("accuracy"), progress.path)
        search.make_search(candidate, scoring=scorer, folds=4, seed=0, cores=2, halving=False).fit(
            x, y
        )
        done, left = progress.status()
    assert fits == 3 * 4 and done == fits
    assert left == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("rows", "share"), [(None, None), (20_000, None), (80_000, 0.25)])
def test_the_forest_grows_each_tree_on_at_most_its_sample_cap(
    rows: int | None, share: float | None
) -> None:
    forest = build("random_forest", 0, rows).estimator
    assert forest.get_params()["max_samples"] == share
