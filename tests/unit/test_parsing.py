"""Request bodies → float32 rows, and the messages for bodies that are wrong."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidInput, MalformedJson
from app.parsing import decode, to_rows

FEATURES = ("a", "b")


def test_single_record_and_batch_give_float32_rows_in_feature_order() -> None:
    rows, form = to_rows({"b": 2, "a": 1.5}, FEATURES, 10)
    assert form == "record" and rows.dtype == np.float32 and rows.tolist() == [[1.5, 2.0]]
    rows, form = to_rows({"instances": [{"a": 1, "b": 2}, {"b": 4, "a": 3}]}, FEATURES, 10)
    assert form == "instances" and rows.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"a": 1}, "missing feature(s) ['b']"),
        ({"a": 1, "c": 2}, "missing feature(s) ['b']; unknown feature(s) ['c']"),
        ({"a": 1, "b": 2, "c": 3}, "unknown feature(s) ['c']"),
        ({"a": "1", "b": 2}, "feature 'a' must be a number, got string"),
        ({"a": False, "b": 2}, "feature 'a' must be a number, got boolean"),
        ({"a": [1], "b": 2}, "feature 'a' must be a number, got array"),
        ({"a": float("nan"), "b": 2}, "feature 'a' must be a finite number"),
        ({"a": 10**400, "b": 2}, "within float32 range"),
        ({"instances": [{"a": 1, "b": 2}] * 11}, "11 rows, over the limit of 10"),
        ("text", "body must be a JSON object"),
    ],
)
def test_invalid_payload_names_the_field_or_limit(payload: object, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        to_rows(payload, FEATURES, 10)
    assert message in str(error.value)


def test_nan_literal_parses_so_the_field_can_be_named() -> None:
    payload = decode(b'{"a": NaN, "b": 1}')
    with pytest.raises(InvalidInput, match="feature 'a'"):
        to_rows(payload, FEATURES, 10)


def test_malformed_json_is_its_own_error() -> None:
    with pytest.raises(MalformedJson, match="not valid JSON"):
        decode(b'{"a": ')


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"a": 1, "b": float("inf")}, "instances[2]: feature 'b' must be a finite number"),
        ({"a": 1e39, "b": 2}, "instances[2]: feature 'a' must be a finite number within float32"),
        ({"a": 1, "b": True}, "instances[2]: feature 'b' must be a number, got boolean"),
        ({"a": 1, "b": 2, "c": 3}, "instances[2]: unknown feature(s) ['c']"),
        ({"a": 1}, "instances[2]: missing feature(s) ['b']"),
        ([1, 2], "instances[2] must be an object of features, got array"),
        ("a", "instances[2] must be an object of features, got string"),
    ],
)
def test_bad_record_in_a_batch_is_named_by_its_index(record: object, message: str) -> None:
    good = {"a": 1.0, "b": 2}
    with pytest.raises(InvalidInput) as error:
        to_rows({"instances": [good, good, record, good]}, FEATURES, 10)
    assert message in str(error.value)


def test_split_form_reorders_columns_into_feature_order() -> None:
    rows, form = to_rows({"columns": ["b", "a"], "data": [[2, 1], [4.5, 3]]}, FEATURES, 10)
    assert form == "split" and rows.tolist() == [[1, 2], [3, 4.5]]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"columns": ["a"], "data": [[1]]}, "columns: missing feature(s) ['b']"),
        ({"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}, "unknown feature(s) ['c']"),
        ({"columns": ["a", "a"], "data": [[1, 2]]}, "'columns' repeats a name"),
        ({"columns": "a,b", "data": [[1, 2]]}, "'columns' must be a list of feature names"),
        ({"columns": ["a", "b"], "data": []}, "'data' is empty"),
        ({"columns": ["a", "b"], "data": [[1, 2], [3]]}, "data[1] must be a list of 2 numbers"),
        (
            {"columns": ["a", "b"], "data": [[1, 2], [3, "x"]]},
            "data[1]: feature 'b' must be a number, got string",
        ),
        (
            {"columns": ["a", "b"], "data": [[1, 2], [float("nan"), 1]]},
            "data[1]: feature 'a' must be a finite number",
        ),
        ({"columns": ["a", "b"], "data": [[1, 2]] * 11}, "'data' has 11 rows, over the limit"),
        ({"columns": ["a", "b"], "data": [[1, 2]], "x": 1}, "unknown top-level field(s)"),
    ],
)
def test_invalid_split_body_names_the_row_or_column(payload: object, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        to_rows(payload, FEATURES, 10)
    assert message in str(error.value)
