"""Datasets: the bundled iris and digits, and validated CSV files."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import train_test_split


class DatasetError(Exception):
    """The dataset cannot be trained on; the message names the column, row or count."""


@dataclass(frozen=True)
class Dataset:
    name: str
    features: pd.DataFrame  # float64 columns, named, in training order
    labels: pd.Series  # class labels as strings
    target: str
    sha256: str

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.features.columns]

    def frame(self) -> pd.DataFrame:
        """Features and target in one frame (what MLflow records as the run's input)."""
        return self.features.assign(**{self.target: self.labels.to_numpy()})


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray


def _clean_name(name: str) -> str:
    """`sepal length (cm)` → `sepal_length`: feature names must be plain JSON keys."""
    name = re.sub(r"\(.*?\)", "", name).strip().lower()
    return re.sub(r"[^0-9a-z]+", "_", name).strip("_")


def content_hash(features: pd.DataFrame, labels: pd.Series | None = None) -> str:
    """SHA-256 of the feature names, their float64 values and the labels (when given)."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, features.columns)).encode())
    digest.update(np.ascontiguousarray(features.to_numpy(dtype=np.float64)).tobytes())
    if labels is not None:
        digest.update("\n".join(labels.astype(str)).encode())
    return digest.hexdigest()


def _bundled(name: str) -> Dataset:
    bunch = load_iris(as_frame=True) if name == "iris" else load_digits(as_frame=True)
    features = bunch.data.astype(np.float64)
    features.columns = [_clean_name(str(c)) for c in features.columns]
    names = [str(n) for n in bunch.target_names]
    labels = pd.Series([names[i] for i in bunch.target], name="target")
    return Dataset(name, features, labels, "target", content_hash(features, labels))


def load_dataset(
    name: str,
    csv_path: Path | None = None,
    target: str | None = None,
    test_size: float = 0.25,
    cv_folds: int = 5,
) -> Dataset:
    """Load a bundled dataset or validate and load a CSV file.

    Raises DatasetError naming the first problem found; nothing is trained before this passes.
    """
    if name in ("iris", "digits"):
        dataset = _bundled(name)
    elif name == "csv" and csv_path is not None and target:
        dataset = _load_csv(csv_path, target)
    else:
        raise DatasetError(f"unknown dataset {name!r}: choose iris, digits or csv with --csv")
    check_class_counts(dataset.labels, test_size, cv_folds)
    return dataset


def _load_csv(path: Path, target: str) -> Dataset:
    frame, names = _read_frame(path)
    if target not in names:
        raise DatasetError(
            f"target column {target!r} is not in the CSV (columns: {', '.join(names)})"
        )
    feature_names = [n for n in names if n != target]
    if not feature_names:
        raise DatasetError("the CSV file has no feature columns besides the target")
    features = _numeric(frame, feature_names)
    labels = frame[target].str.strip().rename(target)
    return Dataset(path.stem, features, labels, target, content_hash(features, labels))


def load_sample(
    path: Path, features: tuple[str, ...], target: str | None
) -> tuple[pd.DataFrame, pd.Series | None, str]:
    """A CSV of rows for an existing model: its `features` (any column order) and, when
    `target` is given, that label column. Returns the features in `features` order, the
    labels (or None) and the content hash. Raises DatasetError naming the column or line."""
    frame, names = _read_frame(path)
    if target is not None and target not in names:
        raise DatasetError(
            f"target column {target!r} is not in the CSV (columns: {', '.join(names)})"
        )
    missing = [f for f in features if f not in names]
    if missing:
        raise DatasetError(
            f"the CSV lacks the model's feature columns {', '.join(map(repr, missing))} "
            f"(the signature names {', '.join(map(repr, features))})"
        )
    extra = [n for n in names if n not in features and n != target]
    if extra:
        hint = "" if target is not None else "; if one is the label column, pass --target NAME"
        raise DatasetError(
            f"the CSV has columns the model does not take: {', '.join(map(repr, extra))}{hint}"
        )
    x = _numeric(frame, list(features))
    labels = frame[target].str.strip().rename(target) if target is not None else None
    digest = content_hash(x, labels)
    return x, labels, digest


def _read_frame(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The CSV as strings, every column named and without missing values."""
    if not path.is_file():
        raise DatasetError(f"CSV file {str(path)!r} does not exist")
    try:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"CSV file {str(path)!r} cannot be read: {exc}") from exc
    if not header or all(not h.strip() for h in header):
        raise DatasetError(f"CSV file {str(path)!r} has no header row")
    names = [h.strip() for h in header]
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DatasetError(f"duplicate column names: {', '.join(map(repr, duplicates))}")
    if any(not n for n in names):
        raise DatasetError(f"column {names.index('') + 1} has an empty name")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"CSV file {str(path)!r} cannot be parsed: {exc}") from exc
    frame.columns = names
    if len(frame) == 0:
        raise DatasetError("the CSV file has a header but no data rows")
    for column in names:
        missing = frame.index[frame[column].str.strip() == ""].tolist()
        if missing:
            rows = ", ".join(str(i + 2) for i in missing[:5])  # +2: 1-based and the header
            more = "" if len(missing) <= 5 else ", …"
            raise DatasetError(
                f"column {column!r} has {len(missing)} missing values (lines {rows}{more})"
            )
    return frame, names


def _numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    features = pd.DataFrame(index=frame.index)
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[values.isna()].tolist()
        if bad:
            sample = frame[column].iloc[bad[0]]
            raise DatasetError(
                f"column {column!r} is not numeric: {len(bad)} values such as {sample!r} "
                f"(line {bad[0] + 2})"
            )
        if not np.isfinite(values.to_numpy()).all():
            raise DatasetError(f"column {column!r} has infinite values")
        features[column] = values.astype(np.float64)
    return features


def check_class_counts(labels: pd.Series, test_size: float, cv_folds: int) -> None:
    """Every class needs enough rows for a stratified split and stratified CV folds."""
    counts = labels.value_counts()
    if len(counts) < 2:
        only = f" (only {counts.index[0]!r})" if len(counts) == 1 else ""
        raise DatasetError(f"the target has {len(counts)} class{only}; at least 2 are needed")
    # A stratified split puts at least one row of each class in test; the rest must fill the
    # CV folds of the training split.
    needed = max(int(np.ceil(cv_folds / (1 - test_size))) + 1, int(np.ceil(1 / test_size)), 2)
    small = counts[counts < needed]
    if len(small):
        cls, count = str(small.index[0]), int(small.iloc[0])
        raise DatasetError(
            f"class {cls!r} has {count} rows; at least {needed} are needed for a held-out "
            f"split of {test_size:g} and {cv_folds}-fold stratified CV"
        )


def split(dataset: Dataset, test_size: float, seed: int) -> Split:
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.labels.to_numpy(),
        test_size=test_size,
        random_state=seed,
        stratify=dataset.labels.to_numpy(),
    )
    return Split(x_train, x_test, np.asarray(y_train), np.asarray(y_test))
