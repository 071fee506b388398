"""KServe V1 bodies → float32 rows, the labels-or-probabilities choice, the answers and the
messages for bodies that are wrong."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from app.errors import BatchTooLarge, InvalidInput, MalformedJson, ModelNotFound, ServiceError
from app.pipeline import Prediction, Request
from app.protocols.kserve_v1 import KServeV1, routes
from app.settings import Limits, ProtocolSettings

FEATURES = ("a", "b")
# The parser reads the model's features, the renderer its class values: a stand-in holds both.
MODEL: Any = SimpleNamespace(
    features=FEATURES, predictor=SimpleNamespace(class_values=(0, 1, 2)), estimator_order=None
)
LIMITS = Limits(max_body_bytes=1_000_000, max_batch_rows=10)


def _parse(payload: object, probabilities: bool = False) -> tuple[np.ndarray, bool]:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    request = Request(body, [], b"application/json", MODEL, LIMITS)
    return KServeV1(probabilities).parse(request)


def _prediction(proba: list[list[float]]) -> Prediction:
    array = np.asarray(proba, dtype=np.float32)
    top = array.argmax(axis=1).tolist()
    return Prediction(array, top, [str(i) for i in top], array.max(axis=1).tolist())


def test_arrays_and_objects_give_the_same_float32_rows_in_feature_order() -> None:
    arrays, _ = _parse({"instances": [[1.5, 2], [3, 4]]})
    records, _ = _parse({"instances": [{"b": 2, "a": 1.5}, {"a": 3, "b": 4}]})
    assert arrays.dtype == records.dtype == np.float32
    assert arrays.tolist() == records.tolist() == [[1.5, 2.0], [3.0, 4.0]]


def test_inputs_is_taken_in_place_of_instances() -> None:
    rows, _ = _parse({"inputs": [[1, 2]]})
    assert rows.tolist() == [[1.0, 2.0]]


def test_mixed_arrays_and_objects_are_each_read_in_feature_order() -> None:
    rows, _ = _parse({"instances": [[1, 2], {"b": 4, "a": 3}]})
    assert rows.tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("setting", "parameters", "probabilities"),
    [
        (False, None, False),
        (True, None, True),
        (False, {"probabilities": True}, True),
        (True, {"probabilities": False}, False),
        (True, {}, True),
    ],
)
def test_the_request_parameter_overrides_the_setting(
    setting: bool, parameters: dict[str, bool] | None, probabilities: bool
) -> None:
    payload: dict[str, Any] = {"instances": [[1, 2]]}
    if parameters is not None:
        payload["parameters"] = parameters
    _, state = _parse(payload, probabilities=setting)
    assert state is probabilities


def test_labels_are_the_model_class_values_and_probabilities_are_rows() -> None:
    protocol = KServeV1(False)
    prediction = _prediction([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]])
    labels = orjson.loads(protocol.render(False, prediction, MODEL).body)
    assert labels == {"predictions": [1, 0]}
    assert all(type(label) is int for label in labels["predictions"])
    probabilities = orjson.loads(protocol.render(True, prediction, MODEL).body)
    np.testing.assert_allclose(probabilities["predictions"], prediction.proba, atol=1e-7)
    assert set(probabilities) == {"predictions"}


BAD_BODIES = [
    ("body is an array", [[1, 2]], 'body must be a JSON object {"instances": [...]}, got array'),
    ("no rows", {"rows": [[1, 2]]}, 'body has no "instances" (or "inputs")'),
    ("both keys", {"instances": [[1, 2]], "inputs": [[1, 2]]}, "not both"),
    ("extra field", {"instances": [[1, 2]], "x": 1}, "besides ['instances', 'parameters']: ['x']"),
    ("not a list", {"instances": {"a": 1, "b": 2}}, "'instances' must be a list, got object"),
    ("empty", {"inputs": []}, "'inputs' is empty"),
    ("over the limit", {"instances": [[1, 2]] * 11}, "11 rows, over the limit of 10"),
    ("flat row", {"instances": [1, 2]}, "instances[0] must be an array of 2 numbers in the order"),
    ("short row", {"instances": [[1, 2], [3]]}, "instances[1] has 1 values: send 2"),
    ("string", {"instances": [[1, 2], [3, "4"]]}, "instances[1][1] ('b') must be a number, got "),
    ("boolean", {"instances": [[True, 2]]}, "instances[0][0] ('a') must be a number, got boolean"),
    ("null", {"inputs": [[1, None]]}, "inputs[0][1] ('b') must be a number, got null"),
    ("nested", {"instances": [[[1, 2]]]}, "instances[0] has 1 values"),
    ("overflow", {"instances": [[1e39, 2]]}, "instances[0][0] ('a') must be a finite number"),
    ("huge int", b'{"instances": [[1' + b"0" * 400 + b", 2]]}", "within float32 range"),
    ("NaN", b'{"instances": [[1, NaN]]}', "instances[0][1] ('b') must be a finite number"),
    ("record missing", {"instances": [{"a": 1}]}, "instances[0]: missing feature(s) ['b']"),
    ("record unknown", {"inputs": [{"a": 1, "b": 2, "c": 3}]}, "inputs[0]: unknown feature(s)"),
    ("record string", {"instances": [[1, 2], {"a": "1", "b": 2}]}, "instances[1]: feature 'a'"),
    ("parameters not object", {"instances": [[1, 2]], "parameters": [1]}, "must be an object"),
    ("unknown parameter", {"instances": [[1, 2]], "parameters": {"x": 1}}, "parameter(s) ['x']"),
    (
        "probabilities not boolean",
        {"instances": [[1, 2]], "parameters": {"probabilities": "yes"}},
        "parameter 'probabilities' must be true or false, got string",
    ),
]


@pytest.mark.parametrize(("case", "payload", "message"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_invalid_body_names_the_row_position_field_or_limit(
    case: str, payload: object, message: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        _parse(payload)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("bad row"), 400),
        (BatchTooLarge("too many rows"), 400),
        (MalformedJson("not JSON"), 400),
        (ModelNotFound("another model"), 404),
    ],
)
def test_errors_take_kserve_form_with_400_for_bad_input(error: ServiceError, status: int) -> None:
    response = KServeV1(False).refuse(error)
    assert response.status == status
    assert orjson.loads(response.body) == {"error": str(error)}


def test_example_is_a_body_the_parser_reads_back() -> None:
    protocol = routes(ProtocolSettings(v1_probabilities=True))["/v1/models/{name}:predict"]
    rows = np.array([[1.5, 2.0], [3.0, 4.25]], dtype=np.float32)
    body = protocol.example(MODEL, rows)
    assert body == {"instances": [[1.5, 2.0], [3.0, 4.25]]}
    parsed, probabilities = protocol.parse(
        Request(orjson.dumps(body), [], b"application/json", MODEL, LIMITS)
    )
    assert parsed.tolist() == rows.tolist() and probabilities is True


def test_probabilities_follow_the_estimators_class_order_not_the_text_order() -> None:
    """The round names int classes as sorted text ("10" < "2"); KServe's and MLflow's sklearn
    servers answer columns in the estimator's classes_ order (0, 1, 2, 10)."""
    from app.model_store import _estimator_order, in_estimator_order

    values = (0, 1, 10, 2)  # `classes` order ("0", "1", "10", "2")
    order = _estimator_order(values)
    assert order == [0, 1, 3, 2]
    assert _estimator_order((0, 1, 2, 10)) is None
    proba = np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    model: Any = SimpleNamespace(estimator_order=order)
    reordered = in_estimator_order(model, proba)
    assert reordered[0].tolist() == pytest.approx([0.1, 0.2, 0.4, 0.3])
    assert reordered.flags["C_CONTIGUOUS"]
