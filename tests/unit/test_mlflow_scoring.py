"""MLflow scoring bodies (JSON and CSV) → float32 rows, the answer each pyfunc predict_fn
gives, and the MLflow-form messages for bodies that are wrong."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from app.errors import (
    BatchTooLarge,
    InvalidInput,
    MalformedJson,
    NotReady,
    NotServed,
    ServiceError,
    UnsupportedMediaType,
)
from app.pipeline import Prediction, Request
from app.protocols.mlflow_scoring import LABELS, PROBABILITIES, MlflowScoring
from app.settings import Limits

FEATURES = ("a", "b")
LIMITS = Limits(max_body_bytes=1_000_000, max_batch_rows=3)
JSON = b"application/json"
CSV = b"text/csv"


def _model(
    types: tuple[str, ...] = ("double", "double"),
    predict_fn: str = PROBABILITIES,
    flavor: str = "sklearn",
    class_values: tuple[Any, ...] = ("x", "y", "z"),
) -> Any:
    """What the parser and renderer read of a LoadedModel."""
    files = SimpleNamespace(feature_types=types, predict_fn=predict_fn, flavor=flavor)
    predictor = SimpleNamespace(class_values=class_values)
    return SimpleNamespace(
        features=FEATURES, files=files, predictor=predictor, version="7", estimator_order=None
    )


def _parse(body: object, content_type: bytes = JSON, model: Any = None) -> tuple[np.ndarray, str]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    request = Request(raw, [], content_type, model or _model(), LIMITS)
    return MlflowScoring().parse(request)


def _rows(body: object, content_type: bytes = JSON, model: Any = None) -> list[list[float]]:
    rows, _ = _parse(body, content_type, model)
    assert rows.dtype == np.float32 and rows.ndim == 2
    return rows.tolist()


SPLIT = {"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1.5], [4, 3]]}}
RECORDS = [{"b": 2, "a": 1.5}, {"a": 3, "b": 4}]


@pytest.mark.parametrize(
    "body",
    [
        SPLIT,
        {"dataframe_split": {**SPLIT["dataframe_split"], "index": [7, 8]}},
        {"dataframe_records": RECORDS},
        {"instances": RECORDS},
        {"inputs": RECORDS},
        {"inputs": {"a": [1.5, 3], "b": [2, 4]}},
        {"instances": {"b": [2, 4], "a": [1.5, 3]}},
        {"inputs": RECORDS, "params": {"anything": 1}},
        {"dataframe_split": SPLIT["dataframe_split"], "params": None},
    ],
    ids=[
        "split",
        "split-index",
        "records",
        "instances",
        "inputs",
        "inputs-columns",
        "instances-columns",
        "params",
        "params-null",
    ],
)
def test_every_json_form_gives_the_same_rows_in_feature_order(body: object) -> None:
    assert _rows(body) == [[1.5, 2.0], [3.0, 4.0]]


def test_one_record_as_an_object_is_one_row() -> None:
    assert _rows({"inputs": {"b": 2, "a": 1}}) == [[1.0, 2.0]]
    assert _rows({"instances": {"a": 1, "b": 2}}) == [[1.0, 2.0]]


@pytest.mark.parametrize(
    "content_type",
    [CSV, b"text/csv; charset=utf-8", b"text/csv;charset=UTF-8", b"TEXT/CSV"],
)
def test_csv_header_names_the_columns_in_any_order(content_type: bytes) -> None:
    assert _rows(b"b,a\r\n2,1.5\r\n\r\n4,3\r\n", content_type) == [[1.5, 2.0], [3.0, 4.0]]


def test_integer_and_boolean_columns_take_whole_numbers_and_booleans() -> None:
    model = _model(types=("long", "boolean"))
    assert _rows({"inputs": [{"a": 2.0, "b": True}, {"a": 3, "b": 0}]}, model=model) == [
        [2.0, 1.0],
        [3.0, 0.0],
    ]
    assert _rows(b"a,b\n2,true\n3.0,0\n", CSV, model) == [[2.0, 1.0], [3.0, 0.0]]
    assert _rows(b"a,b\n2,1\n3.0,0\n", CSV, _model(types=("long", "double"))) == [
        [2.0, 1.0],
        [3.0, 0.0],
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([{"a": 1, "b": 2}], "body must be a JSON object with one of the fields"),
        ({"data": [[1, 2]]}, "unknown top-level field(s) ['data']"),
        ({"inputs": RECORDS, "signature_name": "x"}, "unknown top-level field(s) ['signature"),
        ({"params": {}}, "exactly one of ['dataframe_split', 'dataframe_records', 'instances'"),
        ({"inputs": RECORDS, "instances": RECORDS}, "got ['instances', 'inputs']"),
        ({"inputs": RECORDS, "params": [1]}, "'params' must be an object"),
        ({"dataframe_split": [[1, 2]]}, "'dataframe_split' must be an object"),
        ({"dataframe_split": {"data": [[1, 2]]}}, "'dataframe_split' has no 'columns'"),
        ({"dataframe_split": {"columns": ["a", "b"]}}, "'dataframe_split' has no 'data'"),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]], "dtype": "x"}},
            "unknown field(s) ['dtype'] in 'dataframe_split'",
        ),
        (
            {"dataframe_split": {"columns": ["a"], "data": [[1]]}},
            "dataframe_split.columns: missing feature(s) ['b']",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}},
            "dataframe_split.columns: unknown feature(s) ['c']",
        ),
        (
            {"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}},
            "'dataframe_split.columns' names ['a'] more than once",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}},
            "dataframe_split.data[1] must be an array of 2 values, one per column ['a', 'b']",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]], "index": [0, 1]}},
            "'dataframe_split.index' must list one entry per row: 2 entries for 1",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, "4"]]}},
            "dataframe_split.data[1]: feature 'b' must be a number, got string",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[True, 2]]}},
            "dataframe_split.data[0]: feature 'a' must be a number, got boolean",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[None, 2]]}},
            "dataframe_split.data[0]: feature 'a' must be a number, got null",
        ),
        (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1e39, 2]]}},
            "dataframe_split.data[0]: feature 'a' must be a finite number within float32",
        ),
        ({"dataframe_split": {"columns": ["a", "b"], "data": []}}, "'dataframe_split.data' is"),
        ({"dataframe_records": {"a": [1], "b": [2]}}, "'dataframe_records' must be a list"),
        ({"dataframe_records": [[1, 2]]}, "'dataframe_records' holds rows without column names"),
        ({"inputs": [[1, 2]]}, "'inputs' holds rows without column names (inputs[0] is array)"),
        ({"instances": [1, 2]}, "'instances' holds rows without column names"),
        ({"inputs": [{"a": 1, "b": 2}, [1, 2]]}, "inputs[1] must be an object of features"),
        ({"inputs": [{"a": 1}]}, "inputs[0]: missing feature(s) ['b']"),
        ({"instances": [{"a": 1, "b": 2, "c": 3}]}, "instances[0]: unknown feature(s) ['c']"),
        ({"inputs": [{"a": 1, "b": "2"}]}, "inputs[0]: feature 'b' must be a number, got string"),
        ({"inputs": []}, "'inputs' is empty: send at least one row"),
        ({"inputs": 5}, "'inputs' must be an array of records or an object of column"),
        ({"inputs": {"a": [1], "c": [2]}}, "inputs: missing feature(s) ['b']; unknown feature"),
        ({"inputs": {"a": [1, 2], "b": [3]}}, "every column needs one value per row, got 'a': 2"),
        ({"inputs": {"a": [1], "b": 3}}, "['a'] are lists, ['b'] are not"),
        ({"inputs": {"a": [], "b": []}}, "inputs: the columns hold no values"),
        ({"inputs": {"a": [1, "x"], "b": [3, 4]}}, "inputs row 1: feature 'a' must be a number"),
        ({"inputs": {"a": "1", "b": 3}}, "inputs (one record): feature 'a' must be a number"),
    ],
)
def test_invalid_json_names_the_field_row_and_column(body: object, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        _parse(body)
    assert message in str(error.value)


def test_nan_literal_is_refused_naming_the_column() -> None:
    body = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[NaN, 1]]}}'
    with pytest.raises(InvalidInput, match="data\\[0\\]: feature 'a' must be a finite number"):
        _parse(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [{"a": 2.5, "b": 1}]}, "inputs[0]: feature 'a' is an integer column (long)"),
        ({"inputs": [{"a": 2, "b": 2}]}, "feature 'b' is a boolean column"),
        ({"inputs": [{"a": 2, "b": "true"}]}, "feature 'b' must be a number, got string"),
    ],
)
def test_integer_and_boolean_columns_refuse_other_values(body: object, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        _parse(body, model=_model(types=("long", "boolean")))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the CSV is empty"),
        (b"\n\n", "the CSV is empty"),
        (b"a,b\n", "the CSV has a header and no rows"),
        (b"a\n1\n", "the CSV header: missing feature(s) ['b']"),
        (b"a,b,c\n1,2,3\n", "the CSV header: unknown feature(s) ['c']"),
        (b",a,b\n0,1,2\n", "unknown feature(s) ['']"),
        (b",a,b\n0,1,2\n", "to_csv(index=False)"),
        (b"a,a\n1,2\n", "names ['a'] more than once"),
        (b'a,b\n1,"2"\n', "CSV line 2, cell 2: quoted cell '\"2\"'"),
        (b'"a",b\n1,2\n', "CSV line 1, cell 1: quoted cell"),
        (b"a,b\n1,2\n3\n", "CSV line 3 has 1 cell(s), the header 2"),
        (b"a,b\n1,2\n\n3,x\n", "CSV line 4: feature 'b' must be a number, got 'x'"),
        (b"a,b\n1,\n", "CSV line 2: feature 'b' is empty"),
        (b"a,b\n1,nan\n", "CSV line 2: feature 'b' must be a finite number"),
        (b"a,b\n1,inf\n", "CSV line 2: feature 'b' must be a finite number"),
        (b"a,b\n1,1e39\n", "CSV line 2: feature 'b' must be a finite number within float32"),
        (b"a,b\n1,1_0\n", "CSV line 2: feature 'b' must be a number, got '1_0'"),
        (b"a;b\n1;2\n", "the CSV header: missing feature(s) ['a', 'b']; unknown feature(s)"),
        (b"a,b\n\xff,1\n", "the CSV is not UTF-8"),
    ],
)
def test_invalid_csv_names_the_line_and_column(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        _parse(body, CSV)
    assert message in str(error.value)


def test_csv_fraction_in_an_integer_column_is_refused() -> None:
    with pytest.raises(InvalidInput, match="CSV line 3: feature 'a' is an integer column"):
        _parse(b"a,b\n1,2\n2.7,3\n", CSV, _model(types=("long", "double")))


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]] * 4}},
        {"dataframe_records": [{"a": 1, "b": 2}] * 4},
        {"inputs": {"a": [1] * 4, "b": [2] * 4}},
        b"a,b\n" + b"1,2\n" * 4,
    ],
    ids=["split", "records", "columns", "csv"],
)
def test_a_batch_over_the_limit_names_the_setting(body: object) -> None:
    content_type = CSV if isinstance(body, bytes) else JSON
    with pytest.raises(BatchTooLarge, match=r"4 rows, over the limit of 3 \(MLSTACK_MAX_BATCH"):
        _parse(body, content_type)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (b"", "content type must be application/json or text/csv, got none"),
        (b"text/plain", "got 'text/plain'"),
        (b"application/vnd.apache.parquet", "Parquet is not taken"),
        (b"application/json; charset=latin-1", "charset 'latin-1' is not taken: only UTF-8"),
        (b"application/json; format=pandas-split", "parameter 'format' is not taken"),
    ],
)
def test_other_content_types_are_refused(content_type: bytes, message: str) -> None:
    with pytest.raises(UnsupportedMediaType) as error:
        _parse(SPLIT, content_type)
    assert message in str(error.value)


def test_malformed_json_is_its_own_error() -> None:
    with pytest.raises(MalformedJson, match="not valid JSON"):
        _parse(b'{"inputs": ')


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_model(predict_fn="predict_log_proba"), "predict_fn is 'predict_log_proba'"),
        (_model(flavor="onnx"), "v7 is of the onnx flavour"),
    ],
)
def test_a_version_whose_answer_mlstack_cannot_give_is_refused(model: Any, message: str) -> None:
    with pytest.raises(NotServed) as error:
        _parse(SPLIT, model=model)
    assert message in str(error.value)
    assert error.value.status == 501


def _prediction(proba: list[list[float]]) -> Prediction:
    array = np.asarray(proba, dtype=np.float32)
    top = array.argmax(axis=1).tolist()
    return Prediction(array, top, [str(i) for i in top], array.max(axis=1).tolist())


def test_the_answer_is_what_the_pyfunc_predict_fn_answers() -> None:
    prediction = _prediction([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]])
    protocol = MlflowScoring()
    proba = orjson.loads(protocol.render(PROBABILITIES, prediction, _model()).body)
    assert list(proba) == ["predictions"]
    np.testing.assert_allclose(proba["predictions"], prediction.proba, atol=1e-7)
    labels = orjson.loads(protocol.render(LABELS, prediction, _model(class_values=(5, 6, 7))).body)
    assert labels == {"predictions": [6, 5]}
    assert all(type(label) is int for label in labels["predictions"])


def test_the_state_follows_the_predict_fn() -> None:
    assert _parse(SPLIT)[1] == PROBABILITIES
    assert _parse(SPLIT, model=_model(predict_fn="predict"))[1] == LABELS


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidInput("x"), 400, "BAD_REQUEST"),
        (BatchTooLarge("x"), 400, "BAD_REQUEST"),
        (MalformedJson("x"), 400, "BAD_REQUEST"),
        (NotServed("x"), 501, "NOT_IMPLEMENTED"),
        (NotReady("x"), 503, "TEMPORARILY_UNAVAILABLE"),
        (ServiceError("x"), 500, "INTERNAL_ERROR"),
    ],
)
def test_errors_take_mlflows_form(error: ServiceError, status: int, code: str) -> None:
    response = MlflowScoring().refuse(error)
    assert response.status == status
    assert orjson.loads(response.body) == {"error_code": code, "message": "x"}


def test_an_unsupported_content_type_is_answered_in_plain_text_as_mlflow_does() -> None:
    response = MlflowScoring().refuse(UnsupportedMediaType("content type must be ..."))
    assert (response.status, response.content_type) == (415, b"text/plain; charset=utf-8")
    assert response.body == b"content type must be ..."


def test_the_example_is_a_dataframe_split_body_that_parses_back() -> None:
    rows = np.array([[1.5, 2.0], [3.0, 4.0]], dtype=np.float32)
    example = MlflowScoring().example(_model(), rows)
    assert example == {"dataframe_split": {"columns": ["a", "b"], "data": rows.tolist()}}
    assert _rows(example) == rows.tolist()
