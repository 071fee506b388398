"""Open Inference Protocol V2 requests → float32 rows, predictions → V2 responses, the binary
tensor extension both ways (bodies built and read by tritonclient's own encoder and decoder),
and the messages for requests that are wrong. No processes."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.utils import deserialize_bytes_tensor

from app.errors import (
    BatchTooLarge,
    InvalidInput,
    MalformedJson,
    ModelNotFound,
    NotReady,
    ServiceError,
    UnsupportedMediaType,
)
from app.model_store import LoadedModel
from app.pipeline import Prediction, Request, predict
from app.protocols.v2 import V2, metadata, serialize_bytes
from app.registry import VersionRef
from app.settings import Limits
from training.mlmodel import ModelFiles

FEATURES = ("a", "b", "c", "d")
CLASSES = ("setosa", "versicolor", "virginica")
ROW = [5.1, 3.5, 1.4, 0.2]


class _Fixed:
    """A predictor answering one fixed probability row per input row (parse and render are
    what is tested here, not a model)."""

    kind = "onnx"
    classes = CLASSES
    class_values = CLASSES

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        row = np.array([[0.7, 0.2, 0.1]], dtype=np.float32)
        return np.repeat(row, len(rows), axis=0)


def _model(examples: np.ndarray | None = None) -> LoadedModel:
    files = ModelFiles(
        flavor="onnx",
        model_file="model.onnx",
        serialization_format="onnx",
        features=FEATURES,
        input_example=None,
        classes=None,
        feature_types=("double", "float", "long", "boolean"),
    )
    return LoadedModel(
        ref=VersionRef(name="iris", alias="champion", version="3", run_id="r", source="s"),
        features=FEATURES,
        predictor=_Fixed(),
        drift=None,
        loaded_at=0.0,
        run_metrics={},
        manifest=None,
        classes=CLASSES,
        files=files,
        estimator_order=None,
        examples=examples,
        class_counters=(),
        confidence=None,
    )


MODEL = _model()
JSON = b"application/json"


def _request(
    body: Any, content_type: bytes = JSON, headers: list[tuple[bytes, bytes]] | None = None
) -> Request:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Request(raw, headers or [], content_type, MODEL, Limits(1_000_000, 10))


def _tensor(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def _parse(body: Any, **kwargs: Any) -> np.ndarray:
    rows, _ = V2().parse(_request(body, **kwargs))
    assert rows.dtype == np.float32
    return rows


def _render(body: Any, **kwargs: Any) -> tuple[Any, dict[str, str]]:
    """The response to `body`, read back by tritonclient's own response parser."""
    protocol = V2()
    rows, state = protocol.parse(_request(body, **kwargs))
    response = protocol.render(state, predict(MODEL, rows), MODEL)
    headers = {k.decode(): v.decode() for k, v in response.headers}
    length = headers.get("inference-header-content-length")
    result = InferenceServerClient.parse_response_body(
        response.body, header_length=int(length) if length else None
    )
    return result, headers


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([_tensor("input", [1, 4], "FP32", ROW)], [ROW]),
        ([_tensor("x", [2, 4], "FP64", [ROW, [1, 2, 3, 4]])], [ROW, [1, 2, 3, 4]]),
        ([_tensor("x", [2, 4], "FP64", [*ROW, 1, 2, 3, 4])], [ROW, [1, 2, 3, 4]]),
        ([_tensor("x", [1, 4], "INT64", [1, 2, 3, 4])], [[1, 2, 3, 4]]),
        ([_tensor("x", [1, 4], "INT32", [[1, 2, 3, 4]])], [[1, 2, 3, 4]]),
        (
            [
                _tensor("d", [2], "BOOL", [True, False]),
                _tensor("b", [2, 1], "FP32", [[2], [20]]),
                _tensor("a", [2], "FP64", [1, 10]),
                _tensor("c", [2, 1], "INT64", [3, 30]),
            ],
            [[1, 2, 3, 1], [10, 20, 30, 0]],
        ),
    ],
    ids=["single FP32", "single nested FP64", "single flat FP64", "INT64", "INT32", "features"],
)
def test_both_input_forms_give_rows_in_feature_order(inputs: Any, expected: Any) -> None:
    assert _parse({"inputs": inputs}).tolist() == np.float32(expected).tolist()


def test_binary_inputs_from_tritonclient_are_read_in_input_order() -> None:
    rows = np.array([ROW, [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    tensor = InferInput("input", [2, 4], "FP32").set_data_from_numpy(rows)
    body, length = InferenceServerClient.generate_request_body([tensor])
    header = [(b"inference-header-content-length", str(length).encode())]
    assert _parse(body, content_type=b"", headers=header).tolist() == rows.tolist()

    columns = [
        InferInput(name, [2], datatype).set_data_from_numpy(values)
        for name, datatype, values in (
            ("c", "INT64", np.array([3, 30], dtype=np.int64)),
            ("a", "FP64", np.array([1.5, 10.5])),
            ("d", "BOOL", np.array([True, False])),
            ("b", "INT32", np.array([2, 20], dtype=np.int32)),
        )
    ]
    columns[1].set_data_from_numpy(np.array([1.5, 10.5]), binary_data=False)  # JSON among binary
    body, length = InferenceServerClient.generate_request_body(columns)
    header = [(b"inference-header-content-length", str(length).encode())]
    parsed = _parse(body, content_type=b"application/octet-stream", headers=header)
    assert parsed.tolist() == [[1.5, 2, 3, 1], [10.5, 20, 30, 0]]


def test_response_is_json_by_default_and_echoes_the_id() -> None:
    result, headers = _render({"id": "r-1", "inputs": [_tensor("x", [2, 4], "FP32", ROW * 2)]})
    answer = result.get_response()
    assert answer["id"] == "r-1" and answer["model_name"] == "iris"
    assert answer["model_version"] == "3"
    assert "inference-header-content-length" not in headers
    assert [o["name"] for o in answer["outputs"]] == ["label", "probabilities"]
    assert result.as_numpy("label").tolist() == ["setosa", "setosa"]
    assert result.get_output("probabilities")["parameters"] == {"classes": list(CLASSES)}
    assert result.as_numpy("probabilities").shape == (2, 3)
    assert result.as_numpy("probabilities")[1].tolist() == pytest.approx([0.7, 0.2, 0.1])


def test_binary_outputs_are_what_tritonclient_reads() -> None:
    tensor = InferInput("x", [2, 4], "FP32").set_data_from_numpy(np.float32([ROW, ROW]))
    body, length = InferenceServerClient.generate_request_body([tensor])  # its defaults
    assert orjson.loads(body[:length])["parameters"] == {"binary_data_output": True}
    header = [(b"inference-header-content-length", str(length).encode())]
    result, headers = _render(body, content_type=b"", headers=header)
    assert int(headers["inference-header-content-length"]) > 0
    label = result.get_output("label")
    assert label["parameters"] == {"binary_data_size": 2 * (4 + len("setosa"))}
    assert result.as_numpy("label").tolist() == [b"setosa", b"setosa"]
    probabilities = result.get_output("probabilities")
    assert probabilities["parameters"] == {"classes": list(CLASSES), "binary_data_size": 24}
    assert result.as_numpy("probabilities").dtype == np.float32
    assert result.as_numpy("probabilities").tolist() == np.float32([[0.7, 0.2, 0.1]] * 2).tolist()


def test_requested_outputs_choose_which_and_how() -> None:
    outputs = [InferRequestedOutput("probabilities"), InferRequestedOutput("label", False)]
    tensor = InferInput("x", [1, 4], "FP32").set_data_from_numpy(np.float32([ROW]), False)
    body, length = InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    assert length is None
    result, _ = _render(orjson.loads(body))
    answer = result.get_response()
    assert [o["name"] for o in answer["outputs"]] == ["probabilities", "label"]
    assert answer["outputs"][1]["data"] == ["setosa"]
    assert "binary_data_size" in answer["outputs"][0]["parameters"]
    only = _render({"inputs": [_tensor("x", [1, 4], "FP32", ROW)], "outputs": [{"name": "label"}]})
    assert [o["name"] for o in only[0].get_response()["outputs"]] == ["label"]


def test_bytes_serialization_is_tritons() -> None:
    values = ["setosa", "", "virgínica"]
    blob = serialize_bytes(values)
    assert blob[:10] == (6).to_bytes(4, "little") + b"setosa"
    assert deserialize_bytes_tensor(blob).tolist() == [v.encode() for v in values]


def test_metadata_lists_features_outputs_and_an_example_to_try() -> None:
    examples = np.float32([ROW])
    body = metadata(_model(examples), 10)
    assert body["name"] == "iris" and body["versions"] == ["3"]
    assert body["platform"] == "mlstack-onnx"
    assert body["inputs"] == [
        {"name": "a", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "b", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "c", "datatype": "INT64", "shape": [-1, 1]},
        {"name": "d", "datatype": "BOOL", "shape": [-1, 1]},
    ]
    assert body["outputs"][1]["parameters"] == {"classes": list(CLASSES)}
    assert body["parameters"]["tensor_input"]["shape"] == [-1, 4]
    example = body["parameters"]["example"]
    assert example["inputs"][0]["data"] == ROW  # shortest float32 text, not 5.099999904
    assert _parse(example).tolist() == examples.tolist()
    assert body["parameters"]["max_batch_rows"] == 10
    assert "example" not in metadata(MODEL, 10)["parameters"]


def test_refusals_are_400_with_the_error_field() -> None:
    response = V2().refuse(InvalidInput("input 'x' is wrong"))
    assert response.status == 400 and orjson.loads(response.body) == {"error": "input 'x' is wrong"}
    assert V2().refuse(MalformedJson("bad")).status == 400
    assert V2().refuse(BatchTooLarge("too many")).status == 400
    assert V2().refuse(ModelNotFound("other")).status == 404
    assert V2().refuse(NotReady("not yet")).status == 503


def _binary(header: dict[str, Any], data: bytes, length: int | None = None) -> Request:
    head = orjson.dumps(header)
    declared = str(len(head) if length is None else length).encode()
    return Request(
        head + data,
        [(b"inference-header-content-length", declared)],
        b"application/octet-stream",
        MODEL,
        Limits(1_000_000, 10),
    )


ONE_ROW = np.float32([ROW]).tobytes()


def _bin_input(size: int, name: str = "x", shape: list[int] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "shape": shape or [1, 4],
        "datatype": "FP32",
        "parameters": {"binary_data_size": size},
    }


BAD: list[tuple[str, Request, type[ServiceError], str]] = [
    ("not an object", _request([1]), InvalidInput, 'JSON object with "inputs"'),
    ("no inputs", _request({"outputs": []}), InvalidInput, 'JSON object with "inputs"'),
    ("empty inputs", _request({"inputs": []}), InvalidInput, "'inputs' must be a non-empty"),
    ("malformed", _request(b'{"inputs": ['), MalformedJson, "not valid JSON"),
    (
        "BYTES input",
        _request({"inputs": [_tensor("x", [1, 4], "BYTES", ["a"] * 4)]}),
        InvalidInput,
        "input 'x' has datatype 'BYTES': mlstack takes FP32, FP64, INT32, INT64 or BOOL",
    ),
    (
        "FP16 input",
        _request({"inputs": [_tensor("x", [1, 4], "FP16", ROW)]}),
        InvalidInput,
        "input 'x' has datatype 'FP16'",
    ),
    (
        "wrong width",
        _request({"inputs": [_tensor("x", [1, 3], "FP32", ROW[:3])]}),
        InvalidInput,
        "input 'x' has shape [1, 3]: a single input takes [N, 4]",
    ),
    (
        "1-D single tensor",
        _request({"inputs": [_tensor("x", [4], "FP32", ROW)]}),
        InvalidInput,
        "input 'x' has shape [4]",
    ),
    (
        "count vs shape",
        _request({"inputs": [_tensor("x", [2, 4], "FP32", ROW)]}),
        InvalidInput,
        "input 'x' has 4 values but shape [2, 4] holds 8",
    ),
    (
        "ragged nested",
        _request({"inputs": [_tensor("x", [2, 4], "FP32", [ROW, ROW[:3]])]}),
        InvalidInput,
        "input 'x': nested 'data' does not match shape [2, 4]",
    ),
    (
        "string value",
        _request({"inputs": [_tensor("x", [1, 4], "FP32", [5.1, "3.5", 1, 2])]}),
        InvalidInput,
        "input 'x' (FP32) holds string '3.5': its data must be numbers",
    ),
    (
        "boolean in FP32",
        _request({"inputs": [_tensor("x", [1, 4], "FP32", [5.1, True, 1, 2])]}),
        InvalidInput,
        "input 'x' (FP32) holds boolean True",
    ),
    (
        "float in INT64",
        _request({"inputs": [_tensor("x", [1, 4], "INT64", [1, 2.5, 3, 4])]}),
        InvalidInput,
        "input 'x' (INT64) holds number 2.5: its data must be integers",
    ),
    (
        "INT32 overflow",
        _request({"inputs": [_tensor("x", [1, 4], "INT32", [1, 2**31, 3, 4])]}),
        InvalidInput,
        "input 'x' holds 2147483648, out of INT32 range",
    ),
    (
        "NaN",
        _request(
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", '
            b'"data": [1, 2, NaN, 4]}]}'
        ),
        InvalidInput,
        "input 'x' value [0, 2] (feature 'c') is nan: values must be finite",
    ),
    (
        "float32 overflow",
        _request({"inputs": [_tensor("x", [1, 4], "FP64", [1, 2, 3, 1e39])]}),
        InvalidInput,
        "input 'x' value [0, 3] (feature 'd') is 1e+39: values must be finite numbers within "
        "float32 range",
    ),
    (
        "huge int",
        _request(
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 1'
            + b"0" * 400
            + b", 4]}]}"
        ),
        InvalidInput,
        "within float32 range",
    ),
    (
        "no rows",
        _request({"inputs": [_tensor("x", [0, 4], "FP32", [])]}),
        InvalidInput,
        "input 'x' has shape [0, 4]: send at least one row",
    ),
    (
        "over the row limit",
        _request({"inputs": [_tensor("x", [11, 4], "FP32", ROW * 11)]}),
        InvalidInput,
        "input 'x' has 11 rows, over the limit of 10 (MLSTACK_MAX_BATCH_ROWS)",
    ),
    (
        "bad shape",
        _request({"inputs": [_tensor("x", [1, -4], "FP32", ROW)]}),
        InvalidInput,
        "input 'x' needs a 'shape' list of non-negative integers, got array [1, -4]",
    ),
    (
        "missing feature",
        _request({"inputs": [_tensor(n, [1], "FP32", [1]) for n in "abc"]}),
        InvalidInput,
        "missing feature(s) ['d']",
    ),
    (
        "unknown feature",
        _request({"inputs": [_tensor(n, [1], "FP32", [1]) for n in "abcde"]}),
        InvalidInput,
        "unknown input(s) ['e']",
    ),
    (
        "repeated feature",
        _request({"inputs": [_tensor(n, [1], "FP32", [1]) for n in "abcda"]}),
        InvalidInput,
        "repeated input(s) ['a']",
    ),
    (
        "inconsistent N",
        _request({"inputs": [_tensor(n, [2 if n == "c" else 1], "FP32", [1]) for n in "abcd"]}),
        InvalidInput,
        "input 'c' has 2 rows but input 'a' has 1",
    ),
    (
        "feature input too wide",
        _request({"inputs": [_tensor(n, [1, 2], "FP32", [1, 2]) for n in "abcd"]}),
        InvalidInput,
        "input 'a' has shape [1, 2]: a feature's input takes [N] or [N, 1]",
    ),
    (
        "unknown output",
        _request({"inputs": [_tensor("x", [1, 4], "FP32", ROW)], "outputs": [{"name": "y"}]}),
        InvalidInput,
        "unknown output 'y': this model's outputs are ['label', 'probabilities']",
    ),
    (
        "classification output",
        _request(
            {
                "inputs": [_tensor("x", [1, 4], "FP32", ROW)],
                "outputs": [{"name": "label", "parameters": {"classification": 2}}],
            }
        ),
        InvalidInput,
        "output 'label' asks for classification",
    ),
    (
        "output twice",
        _request(
            {
                "inputs": [_tensor("x", [1, 4], "FP32", ROW)],
                "outputs": [{"name": "label"}, {"name": "label"}],
            }
        ),
        InvalidInput,
        "output 'label' is requested twice",
    ),
    (
        "datatype not a string",
        _request({"inputs": [{**_tensor("x", [1, 4], "FP32", ROW), "datatype": ["FP32"]}]}),
        InvalidInput,
        "input 'x' has datatype ['FP32']",
    ),
    (
        "id not a string",
        _request({"id": 7, "inputs": [_tensor("x", [1, 4], "FP32", ROW)]}),
        InvalidInput,
        "'id' must be a string, got number 7",
    ),
    (
        "text/plain",
        _request({"inputs": []}, content_type=b"text/plain"),
        UnsupportedMediaType,
        "content type must be application/json, got 'text/plain'",
    ),
    (
        "octet-stream without the header",
        _request({"inputs": []}, content_type=b"application/octet-stream"),
        UnsupportedMediaType,
        "needs the header Inference-Header-Content-Length",
    ),
    (
        "header longer than the body",
        _binary({"inputs": [_bin_input(16)]}, ONE_ROW, length=10_000),
        InvalidInput,
        "Inference-Header-Content-Length is 10000 but the body has only",
    ),
    (
        "header not a number",
        _binary({"inputs": [_bin_input(16)]}, ONE_ROW, length=-1),
        InvalidInput,
        "Inference-Header-Content-Length must be a number of bytes, got '-1'",
    ),
    (
        "binary size vs shape",
        _binary({"inputs": [_bin_input(12)]}, ONE_ROW[:12]),
        InvalidInput,
        "input 'x': parameters.binary_data_size is 12 bytes but shape [1, 4] of FP32 takes 16",
    ),
    (
        "binary past the end",
        _binary({"inputs": [_bin_input(32, shape=[2, 4])]}, ONE_ROW),
        InvalidInput,
        "binary_data_size add up to at least 32 bytes but the body has 16 bytes",
    ),
    (
        "binary left over",
        _binary({"inputs": [_bin_input(16)]}, ONE_ROW + b"\0\0\0\0"),
        InvalidInput,
        "the body has 20 bytes of binary data after the JSON header but the inputs' "
        "parameters.binary_data_size add up to 16",
    ),
    (
        "binary infinity",
        _binary({"inputs": [_bin_input(16)]}, np.float32([[1, np.inf, 3, 4]]).tobytes()),
        InvalidInput,
        "input 'x' value [0, 1] (feature 'b') is inf",
    ),
    (
        "data and binary",
        _binary({"inputs": [{**_bin_input(16), "data": ROW}]}, ONE_ROW),
        InvalidInput,
        "input 'x' has both 'data' and parameters.binary_data_size",
    ),
    (
        "shared memory",
        _request(
            {
                "inputs": [
                    {
                        **_tensor("x", [1, 4], "FP32", ROW),
                        "parameters": {"shared_memory_region": "r"},
                    }
                ]
            }
        ),
        InvalidInput,
        "shared memory is not supported",
    ),
]


@pytest.mark.parametrize(("case", "request_", "error", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_request_names_the_input_shape_datatype_output_or_limit(
    case: str, request_: Request, error: type[ServiceError], message: str
) -> None:
    with pytest.raises(error) as raised:
        V2().parse(request_)
    assert message in str(raised.value)
    assert V2().refuse(raised.value).status in (400, 415)


def test_prediction_of_many_rows_renders_flat_row_major_probabilities() -> None:
    rows = np.float32([ROW] * 3)
    proba = np.float32([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    prediction = Prediction(proba, [0, 1, 2], list(CLASSES), [0.7, 0.8, 0.6])
    _, state = V2().parse(_request({"inputs": [_tensor("x", [3, 4], "FP32", rows.tolist())]}))
    answer = orjson.loads(V2().render(state, prediction, MODEL).body)
    labels, probabilities = answer["outputs"]
    assert labels == {"name": "label", "datatype": "BYTES", "shape": [3], "data": list(CLASSES)}
    assert probabilities["shape"] == [3, 3]
    assert probabilities["data"] == pytest.approx(proba.ravel().tolist())
