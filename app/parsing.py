"""Request bodies of /predict → a float32 array in the model's feature order.

No pandas and no per-request pydantic model: a loop over the known feature names, with a
message naming the row and field for every way a body can be wrong.
"""

from __future__ import annotations

import json
import math
from itertools import chain
from typing import Any

import numpy as np
import orjson

from app.errors import BatchTooLarge, InvalidInput, MalformedJson, UnsupportedMediaType

NUMBER = (int, float)
NUMBER_TYPES = frozenset(NUMBER)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def require_json(content_type: bytes) -> None:
    """Raise UnsupportedMediaType unless the content type is application/json."""
    if not content_type.lower().startswith(b"application/json"):
        raise UnsupportedMediaType(
            f"content type must be application/json, got {content_type.decode('latin-1')!r}"
        )


def decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses NaN and Infinity; the standard parser accepts them, so a body that
        # only fails on those gets a message naming the field instead of a column number.
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedJson(f"body is not valid JSON: {exc}") from None


RECORD, INSTANCES, SPLIT = "record", "instances", "split"


def to_rows(payload: Any, features: tuple[str, ...], max_rows: int) -> tuple[np.ndarray, str]:
    """Validate `payload` and return the rows (float32, in `features` order) and its form:
    RECORD (one object of features), INSTANCES ({"instances": [records]}) or SPLIT
    ({"columns": [names], "data": [[values]]}, the compact batch form).
    Raises InvalidInput naming the row and field."""
    if not isinstance(payload, dict):
        raise InvalidInput(
            f'body must be a JSON object (one record, {{"instances": [...]}} or '
            f'{{"columns": [...], "data": [...]}}), got {type_name(payload)}'
        )
    if "instances" in payload:
        instances = batch_list(payload, "instances", ("instances",), max_rows)
        return _batch(instances, features), INSTANCES
    if "columns" in payload and "data" in payload:
        data = batch_list(payload, "data", ("columns", "data"), max_rows)
        return _split(payload["columns"], data, features), SPLIT
    return np.array([record_row(payload, features, "")], dtype=np.float32), RECORD


def batch_list(
    payload: dict[str, Any], key: str, allowed: tuple[str, ...], max_rows: int
) -> list[Any]:
    extra = sorted(k for k in payload if k not in allowed)
    if extra:
        raise InvalidInput(f"unknown top-level field(s) besides {list(allowed)}: {extra}")
    return rows_list(payload[key], key, max_rows)


def rows_list(rows: Any, key: str, max_rows: int) -> list[Any]:
    """`rows` if it is a list of 1 to `max_rows` rows; else InvalidInput or BatchTooLarge
    naming `key` and the limit."""
    if not isinstance(rows, list):
        raise InvalidInput(f"'{key}' must be a list, got {type_name(rows)}")
    if not rows:
        raise InvalidInput(f"'{key}' is empty: send at least one row")
    if len(rows) > max_rows:
        raise BatchTooLarge(
            f"'{key}' has {len(rows)} rows, over the limit of {max_rows} (MLSTACK_MAX_BATCH_ROWS)"
        )
    return rows


def numeric_rows(rows: list[Any], width: int) -> np.ndarray | None:
    """`rows` as float32 in C-level passes when each is a list of `width` plain numbers, all
    finite within float32 range; else None, for the caller's slow path to name the row and
    field at fault."""
    try:
        if not all(type(row) is list and len(row) == width for row in rows):
            return None
        if not set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES:
            return None
        with np.errstate(over="ignore"):
            array = np.array(rows, dtype=np.float32)
    except (TypeError, OverflowError):
        return None
    return array if np.isfinite(array).all() else None


def _split(columns: Any, data: list[Any], features: tuple[str, ...]) -> np.ndarray:
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput("'columns' must be a list of feature names")
    if len(set(columns)) != len(columns):
        raise InvalidInput(f"'columns' repeats a name: {sorted(columns)}")
    missing = [name for name in features if name not in columns]
    unknown = sorted(c for c in columns if c not in features)
    if missing or unknown:
        parts = [f"missing feature(s) {missing}"] if missing else []
        parts += [f"unknown feature(s) {unknown}"] if unknown else []
        raise InvalidInput(f"columns: {'; '.join(parts)}")
    width = len(columns)
    rows = numeric_rows(data, width)
    if rows is not None:
        order = [columns.index(name) for name in features]
        return rows if order == list(range(width)) else rows[:, order]
    # Slow path: name the first bad row and field.
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidInput(f"data[{i}] must be a list of {width} numbers (one per column)")
        record_row(dict(zip(columns, row, strict=True)), features, f"data[{i}]")
    raise InvalidInput("data holds values that are not finite float32 numbers")


def _batch(instances: list[Any], features: tuple[str, ...]) -> np.ndarray:
    """Rows of a batch: checked in bulk first (C-level passes), record by record only to
    name the problem when the bulk check fails."""
    width = len(features)
    try:
        values = [[record[name] for name in features] for record in instances]
    except (KeyError, TypeError):
        values = None
    if values is not None and all(len(record) == width for record in instances):
        rows = numeric_rows(values, width)
        if rows is not None:
            return rows
    # Slow path: the first bad record raises InvalidInput naming its index and field.
    checked = [
        record_row(record, features, f"instances[{i}]") for i, record in enumerate(instances)
    ]
    return np.array(checked, dtype=np.float32)


def record_row(record: Any, features: tuple[str, ...], where: str) -> list[float]:
    if not isinstance(record, dict):
        raise InvalidInput(
            f"{where or 'body'} must be an object of features, got {type_name(record)}"
        )
    prefix = f"{where}: " if where else ""
    try:
        values = [record[name] for name in features]
    except KeyError:
        missing = [name for name in features if name not in record]
        unknown = sorted(k for k in record if k not in features)
        also = f"; unknown feature(s) {unknown}" if unknown else ""
        raise InvalidInput(f"{prefix}missing feature(s) {missing}{also}") from None
    if len(record) != len(features):
        unknown = sorted(k for k in record if k not in features)
        raise InvalidInput(f"{prefix}unknown feature(s) {unknown}; expected {list(features)}")
    for name, value in zip(features, values, strict=True):
        # bool is an int subclass: refuse it explicitly rather than read True as 1.0.
        if type(value) not in NUMBER:
            raise InvalidInput(f"{prefix}feature {name!r} must be a number, got {type_name(value)}")
        if abs(value) > FLOAT32_MAX or not math.isfinite(value):
            raise InvalidInput(
                f"{prefix}feature {name!r} must be a finite number within float32 range, "
                f"got {value!r}"
            )
    return values


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )
