"""MLflow's scoring protocol, as `mlflow models serve` speaks it: `POST /invocations`.

A JSON body holds exactly one of `dataframe_split` (`{"columns", "data", "index"?}`),
`dataframe_records` (records), `instances` or `inputs` (records, `{column: [values]}` or one
record), and optionally `params`; a `text/csv` body is a header row of feature names, then
rows of numbers. The answer is `{"predictions": [...]}`, what the version's pyfunc flavour
answers: rows of class probabilities in class order (`predict_fn: predict_proba`) or the
labels as the model holds them, ints staying ints (`predict`). Errors take MLflow's form:
`{"error_code": "BAD_REQUEST", "message": ...}` with status 400 for bad input, plain text
with status 415 for a content type it does not take.

mlstack is stricter than MLflow, with messages naming the field, row and column: it refuses
unknown columns and top-level fields (MLflow ignores them), numbers sent as strings or
booleans (MLflow converts "5.1" and reads true as 1) and a fraction in an integer column
(MLflow truncates 2.7 to 2 in JSON and refuses it in CSV).
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np

from app.asgi import Response, json_response
from app.errors import (
    BatchTooLarge,
    InvalidInput,
    MalformedJson,
    NotServed,
    ServiceError,
    UnsupportedMediaType,
)
from app.model_store import LoadedModel, in_estimator_order
from app.parsing import FLOAT32_MAX, NUMBER, NUMBER_TYPES, decode, rows_list, type_name
from app.pipeline import Prediction, Protocol, Request
from app.settings import ProtocolSettings
from training.mlmodel import ONNX

INVOCATIONS = "/invocations"
PROBABILITIES, LABELS = "predict_proba", "predict"  # the pyfunc predict_fn values answered

_SPLIT, _RECORDS, _INSTANCES, _INPUTS = (
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
)
_FORMATS = (_SPLIT, _RECORDS, _INSTANCES, _INPUTS)
_PARAMS = "params"
_TOP_LEVEL = frozenset({*_FORMATS, _PARAMS})
_SPLIT_FIELDS = frozenset({"columns", "data", "index"})
_JSON, _CSV = "application/json", "text/csv"
_INTEGER = frozenset({"long", "integer"})
_BOOLEAN = "boolean"
_CSV_BOOLEANS = {"true": 1.0, "false": 0.0}
# MLflow's error codes (mlflow.exceptions), by the status mlstack answers.
_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "REQUEST_LIMIT_EXCEEDED",
    422: "INVALID_PARAMETER_VALUE",  # a value outside the training range (OutOfRange)
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
}


class MlflowScoring(Protocol[str]):
    """The parser's state is what the answer holds: PROBABILITIES or LABELS."""

    name = "mlflow"
    route_prefixes = ("/ping", "/health", "/version")

    def parse(self, request: Request) -> tuple[np.ndarray, str]:
        model = request.model
        answer = _answer(model)
        limit = request.limits.max_batch_rows
        if _media_type(request.content_type) == _CSV:
            return _csv_rows(request.body, model, limit), answer
        return _json_rows(decode(request.body), model, limit), answer

    def render(self, state: str, prediction: Prediction, model: LoadedModel) -> Response:
        if state == PROBABILITIES:
            return json_response(200, {"predictions": in_estimator_order(model, prediction.proba)})
        values = model.predictor.class_values
        return json_response(200, {"predictions": [values[i] for i in prediction.top]})

    def refuse(self, exc: ServiceError) -> Response:
        if isinstance(exc, UnsupportedMediaType):
            return Response(415, str(exc).encode(), b"text/plain; charset=utf-8")
        # MLflow answers 400 for every body it cannot score, a batch over a limit included.
        status = 400 if isinstance(exc, (InvalidInput, MalformedJson)) else exc.status
        code = _ERROR_CODES.get(status, "INTERNAL_ERROR")
        return json_response(status, {"error_code": code, "message": str(exc)})

    def example(self, model: LoadedModel, rows: np.ndarray) -> Any:
        return {_SPLIT: {"columns": list(model.features), "data": rows.tolist()}}


def routes(settings: ProtocolSettings) -> dict[str, Protocol[Any]]:
    """Route template → protocol instance for this protocol's POST prediction routes."""
    return {INVOCATIONS: MlflowScoring()}


def _answer(model: LoadedModel) -> str:
    """What `mlflow models serve` answers for this version. Raises NotServed when mlstack
    cannot give that answer."""
    files = model.files
    if files.flavor == ONNX:
        raise NotServed(
            f"v{model.version} is of the onnx flavour: MLflow's onnx pyfunc cannot put a "
            "classifier's probability matrix into its answer, so `mlflow models serve` answers "
            "no prediction for it either; use POST /predict, or log the model with "
            "mlflow.sklearn.log_model"
        )
    if files.predict_fn not in (PROBABILITIES, LABELS):
        raise NotServed(
            f"v{model.version}'s pyfunc predict_fn is {files.predict_fn!r}: /invocations answers "
            f"what {LABELS!r} (labels) or {PROBABILITIES!r} answers; use POST /predict, or log "
            "the model with pyfunc_predict_fn='predict' or 'predict_proba'"
        )
    return files.predict_fn


def _media_type(content_type: bytes) -> str:
    """_JSON or _CSV. Raises UnsupportedMediaType for any other type, a charset other than
    UTF-8 or another parameter (MLflow refuses those with 415 too)."""
    if content_type == b"application/json":  # the common case, without parsing
        return _JSON
    text = content_type.decode("latin-1")
    mime, *parameters = (part.strip() for part in text.split(";"))
    mime = mime.lower()
    if mime not in (_JSON, _CSV):
        hint = " (Parquet is not taken: send JSON or CSV)" if "parquet" in mime else ""
        raise UnsupportedMediaType(
            f"content type must be {_JSON} or {_CSV}, got {text!r}{hint}"
            if text
            else f"content type must be {_JSON} or {_CSV}, got none"
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        name = name.strip().lower()
        if name == "charset":
            if value.strip().strip('"').lower() != "utf-8":
                raise UnsupportedMediaType(f"charset {value.strip()!r} is not taken: only UTF-8")
        elif name:
            raise UnsupportedMediaType(
                f"content type parameter {name!r} is not taken: only charset=utf-8"
            )
    return mime


def _json_rows(payload: Any, model: LoadedModel, limit: int) -> np.ndarray:
    if not isinstance(payload, dict):
        raise InvalidInput(
            f"body must be a JSON object with one of the fields {list(_FORMATS)}, got "
            f"{type_name(payload)}"
        )
    unknown = [key for key in payload if key not in _TOP_LEVEL]
    if unknown:
        raise InvalidInput(
            f"unknown top-level field(s) {sorted(unknown)}: the body holds one of "
            f"{list(_FORMATS)} and optionally {_PARAMS!r}"
        )
    present = [key for key in _FORMATS if key in payload]
    if len(present) != 1:
        raise InvalidInput(
            f"the body must hold exactly one of {list(_FORMATS)}, got "
            f"{present if present else 'none'}"
        )
    params = payload.get(_PARAMS)
    if params is not None and not isinstance(params, dict):
        # MLflow refuses it too when the signature has params, and ignores it otherwise.
        raise InvalidInput(
            f"'{_PARAMS}' must be an object of parameter name → value, got {type_name(params)}"
        )
    key = present[0]
    data = payload[key]
    if key == _SPLIT:
        return _split(data, model, limit)
    if key == _RECORDS or isinstance(data, list):
        return _records(rows_list(data, key, limit), key, model)
    if isinstance(data, dict):
        return _columns(data, key, model, limit)
    raise InvalidInput(
        f"'{key}' must be an array of records or an object of column → values, got "
        f"{type_name(data)}"
    )


def _split(split: Any, model: LoadedModel, limit: int) -> np.ndarray:
    if not isinstance(split, dict):
        raise InvalidInput(
            f'\'{_SPLIT}\' must be an object {{"columns": [...], "data": [[...]]}}, got '
            f"{type_name(split)}"
        )
    extra = [key for key in split if key not in _SPLIT_FIELDS]
    if extra:
        raise InvalidInput(
            f"unknown field(s) {sorted(extra)} in '{_SPLIT}': it holds 'columns', 'data' and "
            "optionally 'index'"
        )
    for needed in ("columns", "data"):
        if needed not in split:
            raise InvalidInput(
                f"'{_SPLIT}' has no '{needed}': it holds 'columns' (the feature names) and "
                "'data' (rows of values in that order)"
            )
    data = rows_list(split["data"], f"{_SPLIT}.data", limit)
    columns = split["columns"]
    _check_names(columns, model.features, f"{_SPLIT}.columns")
    index = split.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        shown = f"{len(index)} entries" if isinstance(index, list) else type_name(index)
        raise InvalidInput(f"'{_SPLIT}.index' must list one entry per row: {shown} for {len(data)}")
    rows = _matrix(data, columns, model, f"{_SPLIT}.data[{{}}]")
    return _in_feature_order(rows, columns, model.features)


def _records(records: list[Any], key: str, model: LoadedModel) -> np.ndarray:
    features = model.features
    first = records[0]
    if not isinstance(first, dict):
        raise InvalidInput(
            f"'{key}' holds rows without column names ({key}[0] is {type_name(first)}): this "
            "model's signature names its columns, and MLflow's scoring server needs them named "
            f'too; send records [{{"{features[0]}": ...}}], columns {{"{features[0]}": [...]}} '
            f"or {_SPLIT}"
        )
    width = len(features)
    try:
        rows = [[record[name] for name in features] for record in records]
        exact = all(len(record) == width for record in records)
    except (KeyError, TypeError):
        exact = False
    if not exact:
        # Slow path: the first bad record raises, naming its index and the fields.
        for i, record in enumerate(records):
            _check_record(record, features, f"{key}[{i}]")
        rows = [[record[name] for name in features] for record in records]
    return _matrix(rows, features, model, f"{key}[{{}}]")


def _check_record(record: Any, features: tuple[str, ...], where: str) -> None:
    if not isinstance(record, dict):
        raise InvalidInput(f"{where} must be an object of features, got {type_name(record)}")
    missing = [name for name in features if name not in record]
    unknown = sorted(key for key in record if key not in features)
    if missing or unknown:
        raise InvalidInput(f"{where}: {_mismatch(missing, unknown)}")


def _columns(mapping: dict[str, Any], key: str, model: LoadedModel, limit: int) -> np.ndarray:
    """`{column: [values]}` (a batch) or `{column: value}` (one record)."""
    features = model.features
    missing = [name for name in features if name not in mapping]
    unknown = sorted(name for name in mapping if name not in features)
    if missing or unknown:
        raise InvalidInput(f"{key}: {_mismatch(missing, unknown)}")
    values = [mapping[name] for name in features]
    lists = [name for name, value in zip(features, values, strict=True) if type(value) is list]
    if not lists:
        return _matrix([values], features, model, f"{key} (one record)")
    if len(lists) != len(features):
        scalars = [name for name in features if name not in lists]
        raise InvalidInput(
            f"{key}: give every column a list of values, or every column one value (one "
            f"record): {lists} are lists, {scalars} are not"
        )
    lengths = {len(value) for value in values}
    if len(lengths) != 1:
        counts = ", ".join(f"{name!r}: {len(v)}" for name, v in zip(features, values, strict=True))
        raise InvalidInput(f"{key}: every column needs one value per row, got {counts}")
    count = len(values[0])
    if not count:
        raise InvalidInput(f"{key}: the columns hold no values: send at least one row")
    if count > limit:
        raise BatchTooLarge(
            f"{key}: the columns hold {count} rows, over the limit of {limit} "
            "(MLSTACK_MAX_BATCH_ROWS)"
        )
    rows = [list(row) for row in zip(*values, strict=True)]
    return _matrix(rows, features, model, f"{key} row {{}}")


def _check_names(columns: Any, features: tuple[str, ...], where: str) -> None:
    if type(columns) is list and tuple(columns) == features:  # the common case
        return
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput(f"'{where}' must be an array of feature names")
    if len(set(columns)) != len(columns):
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        raise InvalidInput(f"'{where}' names {repeated} more than once")
    missing = [name for name in features if name not in columns]
    unknown = sorted(c for c in columns if c not in features)
    if missing or unknown:
        raise InvalidInput(f"{where}: {_mismatch(missing, unknown)}")


def _mismatch(missing: list[str], unknown: list[str]) -> str:
    parts = [f"missing feature(s) {missing}"] if missing else []
    parts += [f"unknown feature(s) {unknown}"] if unknown else []
    return "; ".join(parts)


def _in_feature_order(rows: np.ndarray, names: list[str], features: tuple[str, ...]) -> np.ndarray:
    if tuple(names) == features:
        return rows
    return rows[:, [names.index(name) for name in features]]


@lru_cache(maxsize=16)
def _kinds(features: tuple[str, ...], types: tuple[str, ...]) -> dict[str, str] | None:
    """Feature → MLflow type for the columns that take only some numbers (integers,
    booleans); None when every column is floating point, the common case."""
    special = {
        name: kind
        for name, kind in zip(features, types, strict=False)
        if kind in _INTEGER or kind == _BOOLEAN
    }
    return special or None


def _matrix(rows: list[Any], names: Any, model: LoadedModel, where: str) -> np.ndarray:
    """Float32 rows of values in `names` order, checked in bulk first (C-level passes), value
    by value only to name the first bad row and column. `where` formats a row's index."""
    kinds = _kinds(model.features, model.files.feature_types)
    width = len(names)
    try:
        if set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES and all(
            type(row) is list and len(row) == width for row in rows
        ):
            array = _bulk(rows, names, kinds)
            if array is not None:
                return array
    except TypeError:  # a row that is not iterable
        pass
    checked = []
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) != width:
            raise InvalidInput(
                f"{where.format(i)} must be an array of {width} values, one per column "
                f"{list(names)}"
            )
        checked.append(
            [
                _value(value, name, kinds.get(name) if kinds else None, where.format(i))
                for name, value in zip(names, row, strict=True)
            ]
        )
    return np.array(checked, dtype=np.float32)


def _bulk(rows: list[Any], names: Any, kinds: dict[str, str] | None) -> np.ndarray | None:
    """`rows` (numbers, or numeric strings of a CSV) as float32 in one C-level pass; None when
    a value is not a finite float32 number or not whole in an integer column, for the
    caller's slow path to name."""
    if kinds is not None and _BOOLEAN in kinds.values():
        return None  # rare: true/false and 0/1 are checked value by value
    integers = [i for i, name in enumerate(names) if name in kinds] if kinds else []
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            if not integers:
                array = np.array(rows, dtype=np.float32)
            else:
                wide = np.array(rows, dtype=np.float64)
                whole = wide[:, integers]
                if not (whole == np.trunc(whole)).all():
                    return None
                array = wide.astype(np.float32)
    except (TypeError, ValueError, OverflowError):
        return None
    if array.shape != (len(rows), len(names)) or not np.isfinite(array).all():
        return None
    return array


def _value(value: Any, name: str, kind: str | None, where: str) -> float:
    """One value of column `name` (MLflow type `kind`, None for floating point) as a number.
    Raises InvalidInput naming `where` and the column."""
    if type(value) is bool and kind == _BOOLEAN:
        return float(value)
    # bool is an int subclass: refuse it explicitly rather than read true as 1.0.
    if type(value) not in NUMBER:
        raise InvalidInput(f"{where}: feature {name!r} must be a number, got {type_name(value)}")
    if abs(value) > FLOAT32_MAX or not math.isfinite(value):
        raise InvalidInput(
            f"{where}: feature {name!r} must be a finite number within float32 range, got {value!r}"
        )
    if kind in _INTEGER and value != int(value):
        raise InvalidInput(
            f"{where}: feature {name!r} is an integer column ({kind}) of the model's signature, "
            f"got {value!r}"
        )
    if kind == _BOOLEAN and value not in (0, 1):
        raise InvalidInput(
            f"{where}: feature {name!r} is a boolean column of the model's signature: send "
            f"true, false, 0 or 1, got {value!r}"
        )
    return float(value)


def _csv_rows(body: bytes, model: LoadedModel, limit: int) -> np.ndarray:
    """A header row of feature names, then rows of plain numbers, as
    `DataFrame.to_csv(index=False)` writes them. Blank lines are skipped, as pandas skips
    them; quoted cells are refused (mlstack reads CSV without pandas)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the CSV is not UTF-8: {exc}") from None
    if '"' in text:
        raise _quoted(text)
    lines = [line for line in text.splitlines() if line]
    if not lines:
        raise InvalidInput("the CSV is empty: send a header row of feature names, then rows")
    header = lines[0].split(",")
    try:
        _check_names(header, model.features, "the CSV header")
    except InvalidInput as exc:
        hint = (
            " (an unnamed first column is a DataFrame index: write the CSV with "
            "to_csv(index=False))"
            if header[0] == ""
            else ""
        )
        raise InvalidInput(f"{exc}{hint}") from None
    data = lines[1:]
    if not data:
        raise InvalidInput("the CSV has a header and no rows: send at least one row")
    if len(data) > limit:
        raise BatchTooLarge(
            f"the CSV has {len(data)} rows, over the limit of {limit} (MLSTACK_MAX_BATCH_ROWS)"
        )
    kinds = _kinds(model.features, model.files.feature_types)
    # numpy reads "1_0" as 10 where pandas refuses it: such a body takes the slow path.
    if text.find("_", text.find(lines[0]) + len(lines[0])) < 0:
        rows = _bulk([line.split(",") for line in data], header, kinds)
        if rows is not None:
            return _in_feature_order(rows, header, model.features)
    checked = _csv_checked(text, header, kinds or {})
    return _in_feature_order(np.array(checked, dtype=np.float32), header, model.features)


def _csv_checked(text: str, header: list[str], kinds: dict[str, str]) -> list[list[float]]:
    """The CSV's rows value by value, naming the line and column of the first bad value."""
    width = len(header)
    checked = []
    lines = ((n, line) for n, line in enumerate(text.splitlines(), 1) if line)
    next(lines)  # the header
    for number, line in lines:
        where = f"CSV line {number}"
        cells = line.split(",")
        if len(cells) != width:
            raise InvalidInput(f"{where} has {len(cells)} cell(s), the header {width}")
        checked.append(
            [
                _csv_value(cell, name, kinds.get(name), where)
                for name, cell in zip(header, cells, strict=True)
            ]
        )
    return checked


def _csv_value(cell: str, name: str, kind: str | None, where: str) -> float:
    plain = cell.strip()
    if not plain:
        raise InvalidInput(f"{where}: feature {name!r} is empty: every row needs every feature")
    if kind == _BOOLEAN and plain.lower() in _CSV_BOOLEANS:
        return _CSV_BOOLEANS[plain.lower()]
    try:
        if "_" in plain:
            raise ValueError
        value = float(plain)
    except ValueError:
        raise InvalidInput(f"{where}: feature {name!r} must be a number, got {cell!r}") from None
    return _value(value, name, kind, where)


def _quoted(text: str) -> InvalidInput:
    for number, line in enumerate(text.splitlines(), 1):
        for position, cell in enumerate(line.split(",")):
            if '"' in cell:
                return InvalidInput(
                    f"CSV line {number}, cell {position + 1}: quoted cell {cell!r}: mlstack "
                    "reads unquoted CSV only (a header of feature names, then numbers, as "
                    "DataFrame.to_csv(index=False) writes them)"
                )
    return InvalidInput("the CSV holds a quote character: mlstack reads unquoted CSV only")
