"""Candidate families and their small search spaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


@dataclass(frozen=True)
class Candidate:
    family: str
    estimator: ClassifierMixin | Pipeline
    # A grid, or a list of grids (a shard's share of the points: one single-value grid each).
    grid: dict[str, list[Any]] | list[dict[str, list[Any]]]


# The most rows one tree of the random forest is grown on (its bootstrap sample): past it,
# each tree sees that many rows drawn from the training rows, so the forest's fit time and
# size stop growing with the data while its trees together still see all of it.
FOREST_MAX_SAMPLES = 20_000


def build(family: str, seed: int, rows: int | None = None) -> Candidate:
    """A fresh, unfitted estimator of `family` with its search space (seeded), sized for
    `rows` training rows when given (see FOREST_MAX_SAMPLES)."""
    if family == "logreg":
        return Candidate(
            family,
            Pipeline(
                [
                    ("scale", StandardScaler()),
                    ("model", LogisticRegression(max_iter=2000, random_state=seed)),
                ]
            ),
            {"model__C": [0.1, 1.0, 10.0]},
        )
    if family == "random_forest":
        return Candidate(
            family,
            RandomForestClassifier(
                n_estimators=100,
                random_state=seed,
                n_jobs=1,
                # A share of the rows, so that a search's subsets keep the same proportion.
                max_samples=(
                    FOREST_MAX_SAMPLES / rows
                    if rows is not None and rows > FOREST_MAX_SAMPLES
                    else None
                ),
            ),
            {"max_depth": [None, 8], "min_samples_leaf": [1, 3]},
        )
    if family == "svm":
        return Candidate(
            family,
            Pipeline(
                [
                    ("scale", StandardScaler()),
                    # Platt-scaled probabilities (what SVC(probability=True) did before 1.9).
                    ("model", CalibratedClassifierCV(SVC(random_state=seed), ensemble=False, cv=3)),
                ]
            ),
            {"model__estimator__C": [1.0, 10.0]},
        )
    if family == "gradient_boosting":
        return Candidate(
            family,
            GradientBoostingClassifier(random_state=seed, n_estimators=50, max_depth=2),
            {"learning_rate": [0.1, 0.3]},
        )
    if family == "hist_gradient_boosting":
        # Histogram-binned boosting: linear in the rows, and on large data it stops early on
        # an internal validation split (scikit-learn's "auto" from 10,000 rows).
        return Candidate(
            family,
            HistGradientBoostingClassifier(random_state=seed, max_iter=200),
            {"learning_rate": [0.1, 0.3], "max_leaf_nodes": [15, 31]},
        )
    if family == "baseline":
        # Predicts class frequencies: the floor any real model must beat.
        return Candidate(family, DummyClassifier(strategy="prior"), {})
    raise ValueError(f"unknown candidate family {family!r}")
