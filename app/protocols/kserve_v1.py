"""KServe's V1 protocol: `POST /v1/models/{name}:predict` with `{"instances": [...]}`.

Rows are arrays in the signature's feature order or objects of features; `"inputs"` is taken
in place of `"instances"`, as KServe's server takes it. The answer is `{"predictions": [...]}`
only, as KServe's scikit-learn server answers: the class labels as the model holds them (ints
stay ints), or rows of class probabilities when MLSTACK_V1_PROBABILITIES or the request's
`"parameters": {"probabilities": true}` asks. Errors are `{"error": "..."}`, bad input 400.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.asgi import Response, json_response
from app.errors import InvalidInput, ServiceError
from app.model_store import LoadedModel, in_estimator_order
from app.parsing import (
    FLOAT32_MAX,
    NUMBER_TYPES,
    batch_list,
    decode,
    numeric_rows,
    record_row,
    require_json,
    type_name,
)
from app.pipeline import Prediction, Protocol, Request
from app.settings import ProtocolSettings

PREDICT_ROUTE = "/v1/models/{name}:predict"
_KEYS = ("instances", "inputs")
_PARAMETERS = "parameters"


class KServeV1(Protocol[bool]):
    """The parser's state is whether to answer probabilities (else labels)."""

    name = "kserve_v1"
    route_prefixes = ("/v1/",)

    def __init__(self, probabilities: bool) -> None:
        self.probabilities = probabilities  # MLSTACK_V1_PROBABILITIES

    def parse(self, request: Request) -> tuple[np.ndarray, bool]:
        require_json(request.content_type)
        payload = decode(request.body)
        if not isinstance(payload, dict):
            raise InvalidInput(
                f'body must be a JSON object {{"instances": [...]}}, got {type_name(payload)}'
            )
        key = _rows_key(payload)
        instances = batch_list(payload, key, (key, _PARAMETERS), request.limits.max_batch_rows)
        probabilities = self.probabilities
        if _PARAMETERS in payload:
            probabilities = _wants_probabilities(payload[_PARAMETERS], probabilities)
        return _rows(instances, request.model.features, key), probabilities

    def render(self, state: bool, prediction: Prediction, model: LoadedModel) -> Response:
        if state:
            return json_response(200, {"predictions": in_estimator_order(model, prediction.proba)})
        values = model.predictor.class_values
        return json_response(200, {"predictions": [values[i] for i in prediction.top]})

    def refuse(self, exc: ServiceError) -> Response:
        # KServe answers every invalid input with 400 (its InvalidInput); the other statuses
        # (401, 403, 404, 413, 415, 503) mean what they mean on every route.
        status = 400 if isinstance(exc, InvalidInput) else exc.status
        return json_response(status, {"error": str(exc)})

    def example(self, model: LoadedModel, rows: np.ndarray) -> Any:
        return {"instances": rows.tolist()}


def routes(settings: ProtocolSettings) -> dict[str, Protocol[Any]]:
    """Route template → protocol instance for this protocol's POST prediction routes."""
    return {PREDICT_ROUTE: KServeV1(settings.v1_probabilities)}


def _rows_key(payload: dict[str, Any]) -> str:
    present = [key for key in _KEYS if key in payload]
    if not present:
        raise InvalidInput(
            f'body has no "instances" (or "inputs"): send {{"instances": [[...], ...]}}, got '
            f"fields {sorted(payload)}"
        )
    if len(present) > 1:
        raise InvalidInput('send "instances" or "inputs", not both')
    return present[0]


def _wants_probabilities(parameters: Any, default: bool) -> bool:
    if not isinstance(parameters, dict):
        raise InvalidInput(f"'parameters' must be an object, got {type_name(parameters)}")
    unknown = sorted(k for k in parameters if k != "probabilities")
    if unknown:
        raise InvalidInput(f"unknown parameter(s) {unknown}: the one parameter is 'probabilities'")
    value = parameters.get("probabilities", default)
    if type(value) is not bool:
        raise InvalidInput(
            f"parameter 'probabilities' must be true or false, got {type_name(value)}"
        )
    return value


def _rows(instances: list[Any], features: tuple[str, ...], key: str) -> np.ndarray:
    """Float32 rows from arrays in feature order or objects of features: checked in bulk
    first (C-level passes), row by row only to name the problem when the bulk check fails."""
    if len(instances) == 1:  # the common case: one row is checked faster without numpy passes
        return np.array([_checked(instances[0], features, f"{key}[0]")], dtype=np.float32)
    width = len(features)
    values: list[Any] | None = instances
    if type(instances[0]) is dict:
        try:
            values = [[record[name] for name in features] for record in instances]
        except (KeyError, TypeError):
            values = None
        if not all(type(record) is dict and len(record) == width for record in instances):
            values = None
    rows = numeric_rows(values, width) if values is not None else None
    if rows is not None:
        return rows
    # Slow path: the first bad row raises InvalidInput naming its index and field/position.
    checked = [_checked(row, features, f"{key}[{i}]") for i, row in enumerate(instances)]
    return np.array(checked, dtype=np.float32)


def _checked(row: Any, features: tuple[str, ...], where: str) -> list[float]:
    if isinstance(row, dict):
        return record_row(row, features, where)
    if not isinstance(row, list):
        raise InvalidInput(
            f"{where} must be an array of {len(features)} numbers in the order {list(features)} "
            f"or an object of features, got {type_name(row)}"
        )
    if len(row) != len(features):
        raise InvalidInput(
            f"{where} has {len(row)} values: send {len(features)}, in the order {list(features)}"
        )
    for position, (name, value) in enumerate(zip(features, row, strict=True)):
        # bool is an int subclass: refuse it explicitly rather than read True as 1.0.
        if type(value) not in NUMBER_TYPES:
            raise InvalidInput(
                f"{where}[{position}] ({name!r}) must be a number, got {type_name(value)}"
            )
        if not abs(value) <= FLOAT32_MAX:  # also refuses NaN
            raise InvalidInput(
                f"{where}[{position}] ({name!r}) must be a finite number within float32 range, "
                f"got {value!r}"
            )
    return row
