"""Bundled datasets and the class-count rule (CSV cases run end to end in integration)."""

from __future__ import annotations

import pandas as pd
import pytest

from training.data import DatasetError, check_class_counts, load_dataset


def test_iris_has_clean_feature_names_and_string_labels() -> None:
    data = load_dataset("iris")
    assert data.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert sorted(data.labels.unique()) == ["setosa", "versicolor", "virginica"]
    assert data.sha256 == load_dataset("iris").sha256


def test_digits_has_ten_classes() -> None:
    data = load_dataset("digits")
    assert data.labels.nunique() == 10 and len(data.feature_names) == 64


def test_a_class_too_small_for_the_split_is_named() -> None:
    labels = pd.Series(["a"] * 30 + ["b"] * 3)
    with pytest.raises(DatasetError, match="class 'b' has 3 rows; at least 8"):
        check_class_counts(labels, 0.25, 5)
