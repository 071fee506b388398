"""Datasets: the bundled iris and digits, and validated CSV and Parquet files.

Features are held as float32, what the service feeds its models: a million rows of 20
features is 80 MB, not the 160 MB of float64 or the gigabytes of a frame of strings.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import lzma
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import train_test_split

# A compressed CSV is read through these; pandas infers the same from the suffix.
_OPENERS: dict[str, Callable[..., IO[str]]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}


class DatasetError(Exception):
    """The dataset cannot be trained on; the message names the column, row or count."""


@dataclass(frozen=True)
class Dataset:
    name: str
    features: pd.DataFrame  # float32 columns, named, in training order
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
    features = bunch.data.astype(np.float32)
    features.columns = [_clean_name(str(c)) for c in features.columns]
    names = [str(n) for n in bunch.target_names]
    labels = pd.Series([names[i] for i in bunch.target], name="target")
    return Dataset(name, features, labels, "target", content_hash(features, labels))


def load_dataset(
    name: str,
    source: str | Path | None = None,
    target: str | None = None,
    test_size: float = 0.25,
    cv_folds: int = 5,
    s3_endpoint_url: str | None = None,
) -> Dataset:
    """Load a bundled dataset, or validate and load a CSV or Parquet file (`source`: a path,
    an `s3://` or an `https://` URL).

    Raises DatasetError naming the first problem found; nothing is trained before this passes.
    """
    if name in ("iris", "digits"):
        dataset = _bundled(name)
    elif name in ("file", "csv") and source is not None and target:
        dataset = _load_file(str(source), target, s3_endpoint_url)
    else:
        raise DatasetError(f"unknown dataset {name!r}: choose iris, digits or a file with --data")
    check_class_counts(dataset.labels, test_size, cv_folds)
    return dataset


def _load_file(source: str, target: str, s3_endpoint_url: str | None) -> Dataset:
    from training import sources

    kind = sources.file_format(source)
    with sources.local_copy(source, s3_endpoint_url=s3_endpoint_url) as path:
        if kind == "parquet":
            features, labels = _load_parquet(path, source, target)
        else:
            features, labels = _load_csv(path, target)
    return Dataset(
        sources.dataset_name(source), features, labels, target, content_hash(features, labels)
    )


def _load_csv(path: Path, target: str) -> tuple[pd.DataFrame, pd.Series]:
    names = _header(path)
    if target not in names:
        raise DatasetError(
            f"target column {target!r} is not in the CSV (columns: {', '.join(names)})"
        )
    feature_names = [n for n in names if n != target]
    if not feature_names:
        raise DatasetError("the CSV file has no feature columns besides the target")
    fast = _read_typed(path, names, feature_names, target)
    if fast is not None:
        return fast
    # Something is wrong with the file: read it again as text to say what, and where.
    frame, names = _read_frame(path)
    features = _numeric(frame, feature_names)
    labels = frame[target].str.strip().rename(target)
    return features, labels


def _read_typed(
    path: Path, names: list[str], feature_names: list[str], target: str
) -> tuple[pd.DataFrame, pd.Series] | None:
    """The CSV read with explicit dtypes (float32 features, text labels) in one pass, or None
    when any value is missing, not numeric or not finite in float32: the slow path then
    finds and names it."""
    try:
        frame = pd.read_csv(
            path,
            header=0,
            names=names,
            dtype={**{n: np.float32 for n in feature_names}, target: str},
            keep_default_na=False,
            na_values={n: [""] for n in feature_names},
            skipinitialspace=True,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, OverflowError):
        return None
    if len(frame) == 0:
        return None
    features = frame[feature_names]
    labels = frame[target].str.strip()
    if not np.isfinite(features.to_numpy()).all() or (labels == "").any():
        return None
    return features, labels.rename(target)


def _load_parquet(path: Path, source: str, target: str) -> tuple[pd.DataFrame, pd.Series]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"Parquet file {source!r} cannot be read: {exc}") from exc
    names = list(schema.names)
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DatasetError(f"duplicate column names: {', '.join(map(repr, duplicates))}")
    if target not in names:
        raise DatasetError(
            f"target column {target!r} is not in the Parquet file (columns: {', '.join(names)})"
        )
    feature_names = [n for n in names if n != target]
    if not feature_names:
        raise DatasetError("the Parquet file has no feature columns besides the target")
    for name in feature_names:
        kind = schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise DatasetError(f"column {name!r} is not numeric: its Parquet type is {kind}")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"Parquet file {source!r} cannot be read: {exc}") from exc
    if table.num_rows == 0:
        raise DatasetError("the Parquet file has no rows")
    for name in names:
        nulls = table.column(name).null_count
        if nulls:
            first = table.column(name).is_null().to_numpy(zero_copy_only=False).argmax()
            raise DatasetError(
                f"column {name!r} has {nulls} missing values (row {int(first) + 1} first)"
            )
    columns = {}
    for name in feature_names:
        values = table.column(name).to_numpy().astype(np.float64)
        _check_finite(name, values)
        columns[name] = values.astype(np.float32)
    features = pd.DataFrame(columns)
    labels = pd.Series([str(v).strip() for v in table.column(target).to_pylist()], name=target)
    empty = labels.index[labels == ""].tolist()
    if empty:
        raise DatasetError(
            f"column {target!r} has {len(empty)} empty labels (row {empty[0] + 1} first)"
        )
    return features, labels


def _check_finite(column: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise DatasetError(f"column {column!r} has infinite or NaN values")
    big = np.abs(values) > np.finfo(np.float32).max
    if big.any():
        at = int(np.argmax(big))
        raise DatasetError(
            f"column {column!r} holds {values[at]:g} (row {at + 1}), beyond float32's range "
            f"(±{np.finfo(np.float32).max:.3g}): rescale the column"
        )


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


def _header(path: Path) -> list[str]:
    """The CSV's column names, checked: present, named and unique."""
    if not path.is_file():
        raise DatasetError(f"CSV file {str(path)!r} does not exist")
    opener: Callable[..., IO[str]] = _OPENERS.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, EOFError, lzma.LZMAError) as exc:
        raise DatasetError(f"CSV file {str(path)!r} cannot be read: {exc}") from exc
    if not header or all(not h.strip() for h in header):
        raise DatasetError(f"CSV file {str(path)!r} has no header row")
    names = [h.strip() for h in header]
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DatasetError(f"duplicate column names: {', '.join(map(repr, duplicates))}")
    if any(not n for n in names):
        raise DatasetError(f"column {names.index('') + 1} has an empty name")
    return names


def _read_frame(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The CSV as strings, every column named and without missing values."""
    names = _header(path)
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
        _check_finite(column, values.to_numpy(dtype=np.float64))
        features[column] = values.astype(np.float32)
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
