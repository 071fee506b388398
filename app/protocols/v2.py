"""Open Inference Protocol V2 (KServe V2, Triton HTTP/REST) with Triton's binary tensor
extension: `POST /v2/models/{name}[/versions/{version}]/infer`, and the model metadata the
GET routes (app.routes.v2) answer.

Inputs come in one of two forms: ONE `[N, n_features]` tensor under any name that is not a
feature's (features in signature order), or one `[N]` / `[N, 1]` tensor per feature, named
after it. Outputs are `label` (BYTES `[N]`) and `probabilities` (FP32 `[N, n_classes]`).

Binary tensor extension: with the header `Inference-Header-Content-Length: L` the first L
bytes of the body are the JSON request and the rest the raw data (little-endian, row-major) of
the inputs carrying `parameters.binary_data_size`, in input order. An output asked for with
`parameters.binary_data: true` (or every output when the request's parameters say
`binary_data_output: true`) is answered the same way.
"""

from __future__ import annotations

import math
import struct
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import orjson

from app.asgi import Response, json_response
from app.errors import BatchTooLarge, InvalidInput, ServiceError, UnsupportedMediaType
from app.model_store import LoadedModel
from app.parsing import decode
from app.pipeline import Prediction, Protocol, Request
from app.settings import ProtocolSettings

INFER_ROUTES = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
EXTENSIONS = ("binary_tensor_data",)
LABEL, PROBABILITIES = "label", "probabilities"
OUTPUTS = (LABEL, PROBABILITIES)
# The name of the single input of the example request body (any non-feature name works).
TENSOR_INPUT = "input"
HEADER_LENGTH = "inference-header-content-length"
# MLflow signature column type → V2 datatype of the feature's input.
FEATURE_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
}
# The datatypes an input may have, as numpy types of its binary data.
INPUT_DATATYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "BOOL": np.dtype("?"),
}

_HEADER_LENGTH = HEADER_LENGTH.encode()
_OCTET_STREAM = b"application/octet-stream"
_NUMBERS = frozenset({int, float})
_INTEGERS = frozenset({int})
# The JSON value types of each datatype's `data`, and their name in messages.
_JSON_TYPES = {
    "FP32": (_NUMBERS, "numbers"),
    "FP64": (_NUMBERS, "numbers"),
    "INT32": (_INTEGERS, "integers"),
    "INT64": (_INTEGERS, "integers"),
    "BOOL": (frozenset({bool}), "booleans"),
}
_INT_RANGES = {"INT32": (-(2**31), 2**31 - 1), "INT64": (-(2**63), 2**63 - 1)}
FLOAT32_MAX = float(np.finfo(np.float32).max)
_FEW = 64  # values of a JSON input checked in Python rather than with numpy
_ACCEPTED = "FP32, FP64, INT32, INT64 or BOOL"


class _Answer(NamedTuple):
    """What the renderer needs of the request: its id and the outputs, each (name, binary)."""

    id: str | None
    outputs: tuple[tuple[str, bool], ...]


_BOTH_JSON = _Answer(None, ((LABEL, False), (PROBABILITIES, False)))


class _Tensor(NamedTuple):
    """One input's header fields, checked."""

    name: str
    datatype: str
    shape: list[int]
    data: Any  # the JSON `data` (None when the values are binary)
    binary_size: int | None


def routes(settings: ProtocolSettings) -> dict[str, Protocol[Any]]:
    """Route template → protocol instance for this protocol's POST prediction routes."""
    protocol = V2()
    return {route: protocol for route in INFER_ROUTES}


class V2(Protocol[_Answer]):
    name = "v2"
    route_prefixes = ("/v2",)

    def parse(self, request: Request) -> tuple[np.ndarray, _Answer]:
        header_length = None
        for name, value in request.headers:
            if name == _HEADER_LENGTH:
                header_length = value
                break
        _check_content_type(request.content_type, header_length is not None)
        body, binary = request.body, b""
        if header_length is not None:
            body, binary = _split(body, header_length)
        payload = decode(body)
        if type(payload) is not dict or "inputs" not in payload:
            raise InvalidInput(
                'body must be a JSON object with "inputs": [tensors] (Open Inference Protocol '
                "V2 inference request)"
            )
        model = request.model
        rows = _rows(payload["inputs"], model.features, request.limits.max_batch_rows, binary)
        return rows, _answer(payload)

    def render(self, state: _Answer, prediction: Prediction, model: LoadedModel) -> Response:
        n = len(prediction.labels)
        answer: dict[str, Any] = {"model_name": model.ref.name, "model_version": model.version}
        if state.id is not None:
            answer["id"] = state.id
        outputs = []
        blobs = []
        for name, binary in state.outputs:
            if name == LABEL:
                output: dict[str, Any] = {"name": LABEL, "datatype": "BYTES", "shape": [n]}
                if binary:
                    blob = serialize_bytes(prediction.labels)
                    output["parameters"] = {"binary_data_size": len(blob)}
                    blobs.append(blob)
                else:
                    output["data"] = prediction.labels
            else:
                proba = prediction.proba
                parameters: dict[str, Any] = {"classes": model.classes}
                output = {
                    "name": PROBABILITIES,
                    "datatype": "FP32",
                    "shape": [n, len(model.classes)],
                    "parameters": parameters,
                }
                if binary:
                    blob = proba.astype("<f4", copy=False).tobytes()
                    parameters["binary_data_size"] = len(blob)
                    blobs.append(blob)
                else:
                    output["data"] = proba.ravel()
            outputs.append(output)
        answer["outputs"] = outputs
        if not blobs:
            return json_response(200, answer)
        header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(
            200,
            b"".join([header, *blobs]),
            _OCTET_STREAM,
            ((_HEADER_LENGTH, str(len(header)).encode()),),
        )

    def refuse(self, exc: ServiceError) -> Response:
        # The protocol answers every invalid request 400, including what /predict answers 422.
        status = 400 if isinstance(exc, InvalidInput) else exc.status
        return json_response(status, {"error": str(exc)})

    def example(self, model: LoadedModel, rows: np.ndarray) -> Any:
        return {
            "inputs": [
                {
                    "name": TENSOR_INPUT,
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    # str() of a float32 is its shortest form: 5.1, not 5.099999904632568.
                    "data": [float(str(value)) for value in rows.ravel()],
                }
            ]
        }


def metadata(model: LoadedModel, max_rows: int) -> dict[str, Any]:
    """The model metadata of the served version: one input per feature, the two outputs, and
    in `parameters` the single-tensor form, the row limit and an example request body (from
    the version's input example, when it has one)."""
    features = model.features
    width = len(features)
    parameters: dict[str, Any] = {
        "tensor_input": {
            "description": "instead of one input per feature: one tensor of any name that "
            "is not a feature's, columns in feature order",
            "shape": [-1, width],
            "datatypes": list(INPUT_DATATYPES),
            "features": list(features),
        },
        "max_batch_rows": max_rows,  # MLSTACK_MAX_BATCH_ROWS
    }
    if model.examples is not None:
        parameters["example"] = V2().example(model, model.examples)
    return {
        "name": model.ref.name,
        "versions": [model.version],
        "platform": f"mlstack-{model.predictor.kind}",
        "inputs": [
            {"name": name, "datatype": FEATURE_DATATYPES[kind], "shape": [-1, 1]}
            for name, kind in zip(features, model.files.feature_types, strict=True)
        ],
        "outputs": [
            {"name": LABEL, "datatype": "BYTES", "shape": [-1]},
            {
                "name": PROBABILITIES,
                "datatype": "FP32",
                "shape": [-1, len(model.classes)],
                "parameters": {"classes": list(model.classes)},
            },
        ],
        "parameters": parameters,
    }


def serialize_bytes(values: list[str]) -> bytes:
    """Triton's BYTES tensor serialization: per element a 4-byte little-endian length, then
    the UTF-8 bytes."""
    encoded = [value.encode() for value in values]
    return b"".join(chain.from_iterable((struct.pack("<I", len(e)), e) for e in encoded))


def _check_content_type(content_type: bytes, binary: bool) -> None:
    """JSON, or with the binary header also application/octet-stream. No content type at all
    is read as JSON: tritonclient sends none with a JSON-only request."""
    kind = content_type.split(b";", 1)[0].strip().lower()
    if kind == b"application/json" or not kind or (binary and kind == _OCTET_STREAM):
        return
    shown = content_type.decode("latin-1")
    if binary:
        raise UnsupportedMediaType(
            "content type of a request with Inference-Header-Content-Length must be "
            f"application/octet-stream or application/json, got {shown!r}"
        )
    if kind == _OCTET_STREAM:
        raise UnsupportedMediaType(
            "content type application/octet-stream needs the header "
            "Inference-Header-Content-Length (binary tensor extension); a JSON request is "
            "application/json"
        )
    raise UnsupportedMediaType(f"content type must be application/json, got {shown!r}")


def _split(body: bytes, header_length: bytes) -> tuple[bytes, bytes]:
    """The JSON header and the binary data of a binary-extension body."""
    text = header_length.strip()
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(
            "header Inference-Header-Content-Length must be a number of bytes, got "
            f"{header_length.decode('latin-1')!r}"
        )
    length = int(text)
    if length > len(body):
        raise InvalidInput(
            f"header Inference-Header-Content-Length is {length} but the body has only "
            f"{len(body)} bytes"
        )
    return body[:length], body[length:]


def _rows(inputs: Any, features: tuple[str, ...], max_rows: int, binary: bytes) -> np.ndarray:
    """Float32 rows [N, n_features] in feature order, from either input form."""
    if type(inputs) is not list or not inputs:
        raise InvalidInput(f"'inputs' must be a non-empty list of tensors, got {_shown(inputs)}")
    tensors = [_header(item, i) for i, item in enumerate(inputs)]
    width = len(features)
    if len(tensors) == 1 and tensors[0].name not in features:
        [tensor] = tensors
        shape = tensor.shape
        if len(shape) != 2 or shape[1] != width:
            raise InvalidInput(
                f"input {tensor.name!r} has shape {shape}: a single input takes [N, {width}] "
                f"(columns {list(features)}), or send one input per feature, named after it"
            )
        _check_rows(tensor, shape[0], max_rows)
        values, end = _values(tensor, binary, 0, features)
        _check_binary_end(end, binary)
        return values.reshape(shape[0], width)
    return _feature_rows(tensors, features, max_rows, binary)


def _feature_rows(
    tensors: list[_Tensor], features: tuple[str, ...], max_rows: int, binary: bytes
) -> np.ndarray:
    names = [tensor.name for tensor in tensors]
    unknown = [name for name in names if name not in features]
    missing = [name for name in features if name not in names]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if unknown or missing or repeated:
        parts = [f"unknown input(s) {unknown}"] if unknown else []
        parts += [f"missing feature(s) {missing}"] if missing else []
        parts += [f"repeated input(s) {repeated}"] if repeated else []
        raise InvalidInput(
            f"{'; '.join(parts)}: send one input per feature {list(features)} (shape [N] or "
            f"[N, 1]), or a single [N, {len(features)}] input under another name"
        )
    first = tensors[0]
    n = first.shape[0]
    for tensor in tensors:
        shape = tensor.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidInput(
                f"input {tensor.name!r} has shape {shape}: a feature's input takes [N] or [N, 1]"
            )
        if shape[0] != n:
            raise InvalidInput(
                f"input {tensor.name!r} has {shape[0]} rows but input {first.name!r} has {n}: "
                "every input needs the same number of rows"
            )
    _check_rows(first, n, max_rows)
    rows = np.empty((n, len(features)), dtype=np.float32)
    offset = 0
    for tensor in tensors:
        values, offset = _values(tensor, binary, offset, None)
        rows[:, features.index(tensor.name)] = values
    _check_binary_end(offset, binary)
    return rows


def _header(item: Any, index: int) -> _Tensor:
    if type(item) is not dict:
        raise InvalidInput(f"inputs[{index}] must be a tensor object, got {_shown(item)}")
    name = item.get("name")
    if type(name) is not str:
        raise InvalidInput(f"inputs[{index}] needs a 'name' string, got {_shown(name)}")
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in INPUT_DATATYPES:
        raise InvalidInput(
            f"input {name!r} has datatype {datatype!r}: mlstack takes {_ACCEPTED} inputs"
        )
    shape = item.get("shape")
    if (
        type(shape) is not list
        or not shape
        or not set(map(type, shape)) <= _INTEGERS
        or min(shape) < 0
    ):
        raise InvalidInput(
            f"input {name!r} needs a 'shape' list of non-negative integers, got {_shown(shape)}"
        )
    binary_size = None
    parameters = item.get("parameters")
    if parameters is not None:
        if type(parameters) is not dict:
            raise InvalidInput(f"input {name!r}: 'parameters' must be an object")
        if "shared_memory_region" in parameters:
            raise InvalidInput(
                f"input {name!r} names a shared memory region: shared memory is not supported, "
                "send the data in the request"
            )
        binary_size = parameters.get("binary_data_size")
        if binary_size is not None and (type(binary_size) is not int or binary_size < 0):
            raise InvalidInput(
                f"input {name!r}: parameters.binary_data_size must be a number of bytes, got "
                f"{_shown(binary_size)}"
            )
    data = item.get("data")
    if binary_size is not None and data is not None:
        raise InvalidInput(
            f"input {name!r} has both 'data' and parameters.binary_data_size: send one"
        )
    if binary_size is None and data is None:
        raise InvalidInput(f"input {name!r} has no 'data' (nor parameters.binary_data_size)")
    return _Tensor(name, datatype, shape, data, binary_size)


def _check_rows(tensor: _Tensor, n: int, max_rows: int) -> None:
    if n < 1:
        raise InvalidInput(f"input {tensor.name!r} has shape {tensor.shape}: send at least one row")
    if n > max_rows:
        raise BatchTooLarge(
            f"input {tensor.name!r} has {n} rows, over the limit of {max_rows} "
            "(MLSTACK_MAX_BATCH_ROWS)"
        )


def _values(
    tensor: _Tensor, binary: bytes, offset: int, columns: tuple[str, ...] | None
) -> tuple[np.ndarray, int]:
    """The tensor's values as flat float32, checked finite, and the offset of the next input's
    binary data. `columns` names the columns of a single [N, n_features] tensor in messages."""
    size = math.prod(tensor.shape)
    if tensor.binary_size is None:
        data = _leaves(tensor)
        if len(data) != size:
            raise InvalidInput(
                f"input {tensor.name!r} has {len(data)} values but shape {tensor.shape} holds "
                f"{size}"
            )
        return _from_json(tensor, data, columns), offset
    dtype = INPUT_DATATYPES[tensor.datatype]
    if tensor.binary_size != size * dtype.itemsize:
        raise InvalidInput(
            f"input {tensor.name!r}: parameters.binary_data_size is {tensor.binary_size} bytes "
            f"but shape {tensor.shape} of {tensor.datatype} takes {size * dtype.itemsize}"
        )
    end = offset + tensor.binary_size
    if end > len(binary):
        raise InvalidInput(
            f"input {tensor.name!r}: the inputs' binary_data_size add up to at least {end} bytes "
            f"but the body has {len(binary)} bytes after the JSON header"
        )
    raw = np.frombuffer(binary, dtype=dtype, count=size, offset=offset)
    with np.errstate(over="ignore"):
        values = raw.astype(np.float32)
    if dtype.kind == "f" and not np.isfinite(values).all():
        index = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InvalidInput(_not_finite(tensor, index, raw[index].item(), columns))
    return values, end


def _leaves(tensor: _Tensor) -> list[Any]:
    """The JSON data, flattened: flat as sent, or nested exactly as the shape says."""
    data = tensor.data
    if type(data) is not list:
        raise InvalidInput(f"input {tensor.name!r}: 'data' must be an array, got {_shown(data)}")
    if not data or type(data[0]) is not list:
        return data
    level: list[Any] = [data]
    for size in tensor.shape:
        if any(type(item) is not list or len(item) != size for item in level):
            raise InvalidInput(
                f"input {tensor.name!r}: nested 'data' does not match shape {tensor.shape} "
                "(send it flat in row-major order, or nested exactly as the shape)"
            )
        level = list(chain.from_iterable(level))
    return level


def _from_json(tensor: _Tensor, data: list[Any], columns: tuple[str, ...] | None) -> np.ndarray:
    allowed, kind = _JSON_TYPES[tensor.datatype]
    if not set(map(type, data)) <= allowed:
        bad = next(value for value in data if type(value) not in allowed)
        raise InvalidInput(
            f"input {tensor.name!r} ({tensor.datatype}) holds {_shown(bad)}: its data must be "
            f"{kind}"
        )
    bounds = _INT_RANGES.get(tensor.datatype)
    if bounds is not None:
        if min(data) < bounds[0] or max(data) > bounds[1]:
            bad = next(value for value in data if not bounds[0] <= value <= bounds[1])
            raise InvalidInput(f"input {tensor.name!r} holds {bad}, out of {tensor.datatype} range")
        return np.asarray(data, dtype=np.float32)
    if allowed is not _NUMBERS:  # booleans
        return np.asarray(data, dtype=np.float32)
    if len(data) <= _FEW:
        # A request's few values are checked on the list, cheaper than numpy's passes: a NaN
        # makes the sum NaN, and anything beyond float32 range fails min or max.
        try:
            total = sum(data)
            if total == total and min(data) >= -FLOAT32_MAX and max(data) <= FLOAT32_MAX:
                return np.asarray(data, dtype=np.float32)
        except OverflowError:  # a Python int beyond any float
            pass
    else:
        try:
            with np.errstate(over="ignore"):
                values = np.asarray(data, dtype=np.float32)
            if np.isfinite(values).all():
                return values
        except OverflowError:
            pass
    # NaN fails both comparisons, as do infinities and values beyond float32 range.
    index = next(i for i, v in enumerate(data) if not -FLOAT32_MAX <= v <= FLOAT32_MAX)
    raise InvalidInput(_not_finite(tensor, index, data[index], columns))


def _not_finite(tensor: _Tensor, index: int, value: Any, columns: tuple[str, ...] | None) -> str:
    where = f"[{index // len(columns)}, {index % len(columns)}]" if columns else f"[{index}]"
    feature = f" (feature {columns[index % len(columns)]!r})" if columns else ""
    return (
        f"input {tensor.name!r} value {where}{feature} is {value!r}: values must be finite "
        "numbers within float32 range"
    )


def _check_binary_end(end: int, binary: bytes) -> None:
    if end != len(binary):
        raise InvalidInput(
            f"the body has {len(binary)} bytes of binary data after the JSON header but the "
            f"inputs' parameters.binary_data_size add up to {end}"
        )


def _answer(payload: dict[str, Any]) -> _Answer:
    """The request's id and the outputs it asks for, checked."""
    request_id = payload.get("id")
    parameters = payload.get("parameters")
    requested = payload.get("outputs")
    if request_id is None and parameters is None and requested is None:
        return _BOTH_JSON
    if request_id is not None and type(request_id) is not str:
        raise InvalidInput(f"'id' must be a string, got {_shown(request_id)}")
    binary = False
    if parameters is not None:
        if type(parameters) is not dict:
            raise InvalidInput(f"'parameters' must be an object, got {_shown(parameters)}")
        binary = parameters.get("binary_data_output", False)
        if type(binary) is not bool:
            raise InvalidInput(
                f"parameters.binary_data_output must be true or false, got {_shown(binary)}"
            )
    if requested is None:
        return _Answer(request_id, ((LABEL, binary), (PROBABILITIES, binary)))
    if type(requested) is not list or not requested:
        raise InvalidInput(
            f"'outputs' must be a non-empty list of outputs {list(OUTPUTS)}, got "
            f"{_shown(requested)}"
        )
    outputs = tuple(_output(item, index, binary) for index, item in enumerate(requested))
    if len(outputs) == 2 and outputs[0][0] == outputs[1][0]:
        raise InvalidInput(f"output {outputs[0][0]!r} is requested twice")
    if len(outputs) > 2:
        raise InvalidInput(
            f"'outputs' lists {len(outputs)} outputs: this model has {list(OUTPUTS)}"
        )
    return _Answer(request_id, outputs)


def _output(item: Any, index: int, binary: bool) -> tuple[str, bool]:
    if type(item) is not dict or type(item.get("name")) is not str:
        raise InvalidInput(f"outputs[{index}] must be an object with a 'name'")
    name = item["name"]
    if name not in OUTPUTS:
        raise InvalidInput(f"unknown output {name!r}: this model's outputs are {list(OUTPUTS)}")
    parameters = item.get("parameters")
    if parameters is None:
        return name, binary
    if type(parameters) is not dict:
        raise InvalidInput(f"output {name!r}: 'parameters' must be an object")
    for unsupported, why in (
        ("shared_memory_region", "shared memory is not supported"),
        ("classification", "classification outputs are not supported (probabilities has them)"),
    ):
        if parameters.get(unsupported):
            raise InvalidInput(f"output {name!r} asks for {unsupported}: {why}")
    wanted = parameters.get("binary_data", binary)
    if type(wanted) is not bool:
        raise InvalidInput(
            f"output {name!r}: parameters.binary_data must be true or false, got {_shown(wanted)}"
        )
    return name, wanted


def _shown(value: Any) -> str:
    """A value for a message: its JSON type, and the value itself when short."""
    if value is None:
        return "null"
    kind = {bool: "boolean", str: "string", list: "array", dict: "object"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 40 else kind
