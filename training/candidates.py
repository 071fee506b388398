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


def build(family: str, seed: int) -> Candidate:
    """A fresh, unfitted estimator of `family` with its search space (seeded)."""
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
            RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
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
