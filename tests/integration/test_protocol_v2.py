"""Open Inference Protocol V2 on a real uvicorn process, spoken by the real clients:
tritonclient's HTTP client (JSON and binary tensors) and KServe's InferenceRESTClient. Their
answers must be /predict's answers for the same rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

from tests.processes import Process, free_port, metric_samples, start_app

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
ROWS = np.array(
    [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 5.0, 1.5]]
)
JSON = {"content-type": "application/json"}
OUTPUTS = ("label", "probabilities")


def _expected(url: str, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """/predict's labels and probabilities (columns in CLASSES order) for `rows`."""
    body = {"instances": [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]}
    response = httpx.post(f"{url}/predict", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    labels = [p["label"] for p in predictions]
    return labels, np.array([[p["probabilities"][c] for c in CLASSES] for p in predictions])


def _infer(
    url: str, name: str, body: Any, path: str = "infer", headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        f"{url}/v2/models/{name}/{path}",
        content=content,
        headers={**JSON, **(headers or {})},
        timeout=10,
    )


def _single(rows: np.ndarray) -> dict[str, Any]:
    data = rows.astype(np.float32).ravel().tolist()
    return {"inputs": [_tensor("input", list(rows.shape), "FP32", data)]}


def _tensor(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def _triton_inputs(form: str, rows: np.ndarray, binary: bool) -> list[triton.InferInput]:
    if form == "per-feature":
        # Columns in an order other than the signature's: names place them.
        return [
            triton.InferInput(name, [len(rows), 1], "FP64").set_data_from_numpy(
                np.ascontiguousarray(rows[:, [j]]), binary_data=binary
            )
            for j, name in reversed(list(enumerate(FEATURES)))
        ]
    dtype = np.float32 if form == "FP32" else np.float64
    tensor = triton.InferInput("input__0", list(rows.shape), form)
    return [tensor.set_data_from_numpy(rows.astype(dtype), binary_data=binary)]


@pytest.fixture
def client(served_app: Process) -> Iterator[Any]:
    url = served_app.url.removeprefix("http://")
    with triton.InferenceServerClient(url) as http:
        yield http


def test_tritonclient_sees_a_live_ready_server_and_the_models_metadata(
    client: Any, champion_name: str
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(champion_name)
    assert client.is_model_ready(champion_name, "1")
    assert not client.is_model_ready("other-model")
    assert not client.is_model_ready(champion_name, "99")
    server = client.get_server_metadata()
    assert server["name"] == "mlstack" and "binary_tensor_data" in server["extensions"]
    assert server["version"]

    meta = client.get_model_metadata(champion_name)
    assert meta["name"] == champion_name and meta["versions"] == ["1"]
    assert meta["platform"] == "mlstack-onnx"
    assert meta["inputs"] == [{"name": f, "datatype": "FP64", "shape": [-1, 1]} for f in FEATURES]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [-1, 3],
            "parameters": {"classes": CLASSES},
        },
    ]
    assert meta["parameters"]["tensor_input"]["shape"] == [-1, 4]
    assert meta["parameters"]["tensor_input"]["features"] == FEATURES
    assert meta["parameters"]["max_batch_rows"] == 1000
    assert client.get_model_metadata(champion_name, "1") == meta
    with pytest.raises(InferenceServerException, match="version '2'"):
        client.get_model_metadata(champion_name, "2")


def test_the_metadata_example_body_can_be_sent_as_it_is(
    served_app: Process, champion_name: str
) -> None:
    meta = httpx.get(f"{served_app.url}/v2/models/{champion_name}").json()
    example = meta["parameters"]["example"]
    response = _infer(served_app.url, champion_name, example)
    assert response.status_code == 200, response.text
    rows = np.array(example["inputs"][0]["data"]).reshape(example["inputs"][0]["shape"])
    label = response.json()["outputs"][0]
    assert label["name"] == "label" and label["data"] == _expected(served_app.url, rows)[0]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("form", ["FP32", "FP64", "per-feature"])
def test_tritonclient_infer_answers_what_predict_answers(
    client: Any, served_app: Process, champion_name: str, form: str, binary: bool
) -> None:
    outputs = None
    if not binary:  # JSON all the way; its defaults otherwise (binary in, binary out)
        outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in OUTPUTS]
    result = client.infer(
        champion_name,
        _triton_inputs(form, ROWS, binary),
        outputs=outputs,
        request_id="req-7",
    )
    labels, probabilities = _expected(served_app.url, ROWS)
    answer = result.get_response()
    assert answer["id"] == "req-7" and answer["model_name"] == champion_name
    assert answer["model_version"] == "1"
    got = result.as_numpy("label").tolist()
    assert [v.decode() if isinstance(v, bytes) else v for v in got] == labels
    assert result.get_output("probabilities")["parameters"]["classes"] == CLASSES
    proba = result.as_numpy("probabilities")
    assert proba.dtype == np.float32 and proba.shape == (len(ROWS), 3)
    np.testing.assert_allclose(proba, probabilities, atol=1e-6)
    carries_size = "binary_data_size" in result.get_output("probabilities")["parameters"]
    assert carries_size is binary


def test_tritonclient_versioned_infer_and_one_output(
    client: Any, served_app: Process, champion_name: str
) -> None:
    result = client.infer(
        champion_name,
        _triton_inputs("FP32", ROWS[:1], True),
        model_version="1",
        outputs=[triton.InferRequestedOutput("label")],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("label").tolist() == [b"setosa"]
    with pytest.raises(InferenceServerException, match="version '5'"):
        client.infer(champion_name, _triton_inputs("FP32", ROWS[:1], True), model_version="5")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_rest_client_infers_and_reads_readiness(
    served_app: Process, champion_name: str, binary: bool
) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=10)) as kserve:
            tensor = InferInput("input-0", list(ROWS.shape), "FP32")
            tensor.set_data_from_numpy(ROWS.astype(np.float32), binary_data=binary)
            request = InferRequest(
                champion_name,
                [tensor],
                request_id="k-1",
                parameters={"binary_data_output": binary},
                request_outputs=[RequestedOutput("label"), RequestedOutput("probabilities")],
            )
            response = await kserve.infer(served_app.url, request, model_name=champion_name)
            return (
                response,
                await kserve.is_server_live(served_app.url),
                await kserve.is_server_ready(served_app.url),
                await kserve.is_model_ready(served_app.url, champion_name),
                await kserve.is_model_ready(served_app.url, "other-model"),
            )

    response, live, ready, model_ready, other_ready = asyncio.run(scenario())
    assert (live, ready, model_ready, other_ready) == (True, True, True, False)
    labels, probabilities = _expected(served_app.url, ROWS)
    assert response.id == "k-1" and response.model_name == champion_name
    label = response.get_output_by_name("label").as_numpy().tolist()
    assert [v.decode() if isinstance(v, bytes) else v for v in label] == labels
    proba = response.get_output_by_name("probabilities").as_numpy()
    np.testing.assert_allclose(proba.astype(np.float64), probabilities, atol=1e-6)


def test_plain_json_infer_with_nested_data_and_curl_style_request(
    served_app: Process, champion_name: str
) -> None:
    body = {
        "id": "curl-1",
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS[:2].tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    response = _infer(served_app.url, champion_name, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["id"] == "curl-1" and answer["model_version"] == "1"
    [output] = answer["outputs"]
    assert output["shape"] == [2, 3] and len(output["data"]) == 6
    np.testing.assert_allclose(
        np.reshape(output["data"], (2, 3)), _expected(served_app.url, ROWS[:2])[1], atol=1e-6
    )


def _binary_body(header: dict[str, Any], data: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + data, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head)),
    }


ROW = ROWS[0].tolist()


def _one(tensor: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"inputs": [tensor], **extra}


BIN_HEAD = {
    "name": "x",
    "shape": [1, 4],
    "datatype": "FP32",
    "parameters": {"binary_data_size": 16},
}
BAD: list[tuple[str, Any, dict[str, str], int, str]] = [
    (
        "BYTES datatype",
        _one(_tensor("x", [1, 4], "BYTES", ["a", "b", "c", "d"])),
        {},
        400,
        "input 'x' has datatype 'BYTES'",
    ),
    (
        "wrong width",
        _one(_tensor("x", [1, 3], "FP32", ROW[:3])),
        {},
        400,
        "input 'x' has shape [1, 3]: a single input takes [N, 4]",
    ),
    (
        "elements vs shape",
        _one(_tensor("x", [2, 4], "FP32", ROW)),
        {},
        400,
        "input 'x' has 4 values but shape [2, 4] holds 8",
    ),
    (
        "string value",
        _one(_tensor("x", [1, 4], "FP32", [*ROW[:3], "0.2"])),
        {},
        400,
        "input 'x' (FP32) holds string '0.2'",
    ),
    (
        "infinity",
        b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", '
        b'"data": [1, Infinity, 3, 4]}]}',
        {},
        400,
        "input 'x' value [0, 1] (feature 'sepal_width') is inf",
    ),
    (
        "float32 overflow",
        _one(_tensor("x", [1, 4], "FP64", [1, 2, 3, 1e39])),
        {},
        400,
        "within float32 range",
    ),
    ("no rows", _one(_tensor("x", [0, 4], "FP32", [])), {}, 400, "send at least one row"),
    (
        "over the row limit",
        _one(_tensor("x", [1001, 4], "FP32", ROW * 1001)),
        {},
        400,
        "input 'x' has 1001 rows, over the limit of 1000 (MLSTACK_MAX_BATCH_ROWS)",
    ),
    (
        "missing feature",
        {"inputs": [_tensor(f, [1], "FP64", [1.0]) for f in FEATURES[:3]]},
        {},
        400,
        "missing feature(s) ['petal_width']",
    ),
    (
        "unknown feature",
        {"inputs": [_tensor(f, [1], "FP64", [1.0]) for f in [*FEATURES, "colour"]]},
        {},
        400,
        "unknown input(s) ['colour']",
    ),
    (
        "inconsistent N",
        {"inputs": [_tensor(f, [1 + (f == "petal_width")], "FP64", [1.0]) for f in FEATURES]},
        {},
        400,
        "input 'petal_width' has 2 rows but input 'sepal_length' has 1",
    ),
    (
        "unknown output",
        _one(_tensor("x", [1, 4], "FP32", ROW), outputs=[{"name": "scores"}]),
        {},
        400,
        "unknown output 'scores'",
    ),
    ("malformed JSON", b'{"inputs": [', {}, 400, "body is not valid JSON"),
    ("not V2", {"instances": [ROW]}, {}, 400, 'JSON object with "inputs"'),
    (
        "text/plain",
        _one(_tensor("x", [1, 4], "FP32", ROW)),
        {"content-type": "text/plain"},
        415,
        "content type must be application/json, got 'text/plain'",
    ),
    (
        "body over the size limit",
        b'{"inputs": [' + b" " * 1_048_600 + b"]}",
        {},
        413,
        "over the limit of 1048576 bytes (MLSTACK_MAX_BODY_BYTES)",
    ),
    (
        "header length past the body",
        b'{"inputs": []}',
        {"content-type": "application/octet-stream", "inference-header-content-length": "99"},
        400,
        "Inference-Header-Content-Length is 99 but the body has only 14 bytes",
    ),
    (
        "binary sizes do not add up",
        *_binary_body({"inputs": [BIN_HEAD]}, np.float32([ROW, ROW]).tobytes()),
        400,
        "the body has 32 bytes of binary data after the JSON header but the inputs' "
        "parameters.binary_data_size add up to 16",
    ),
    (
        "binary short",
        *_binary_body({"inputs": [BIN_HEAD]}, np.float32(ROW[:2]).tobytes()),
        400,
        "binary_data_size add up to at least 16 bytes but the body has 8 bytes",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "message"), BAD, ids=[c[0] for c in BAD]
)
def test_bad_v2_request_gets_a_4xx_error_naming_what_is_wrong(
    served_app: Process,
    champion_name: str,
    case: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = _infer(served_app.url, champion_name, body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_another_model_or_version_is_404_on_every_route_family(
    served_app: Process, champion_name: str
) -> None:
    url, name = served_app.url, champion_name
    body = _single(ROWS[:1])

    def call(family: str, model: str, version: str | None) -> httpx.Response:
        base = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        if family == "infer":
            return _infer(url, model, body, (f"versions/{version}/" if version else "") + "infer")
        return httpx.get(f"{url}{base}{'/ready' if family == 'ready' else ''}")

    other = f"model 'other-model' is not served here: this server serves {name!r}"
    for family in ("metadata", "ready", "infer"):
        for model, version, message in (
            ("other-model", None, other),
            ("other-model", "1", other),
            (name, "2", f"version '2' of {name!r} is not served here"),
        ):
            response = call(family, model, version)
            assert response.status_code == 404, (family, model, version, response.text)
            assert message in response.json()["error"], family
        assert call(family, name, "1").status_code == 200, family
        assert call(family, name, None).status_code == 200, family


def test_auth_guards_infer_and_metadata_but_not_health(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    app = start_app(
        tmp_path, mlflow_server.url, champion_name, env={"MLSTACK_API_KEY": "v2-s3cret-key"}
    )
    try:
        body = orjson.dumps(_single(ROWS[:1]))
        for method, path in (
            ("POST", f"/v2/models/{champion_name}/infer"),
            ("POST", f"/v2/models/{champion_name}/versions/1/infer"),
            ("GET", f"/v2/models/{champion_name}"),
            ("GET", f"/v2/models/{champion_name}/versions/1"),
        ):

            def call(key: dict[str, str], m: str = method, p: str = path) -> httpx.Response:
                return httpx.request(m, f"{app.url}{p}", content=body, headers={**JSON, **key})

            missing = call({})
            assert missing.status_code == 401, path
            assert "missing API key header 'x-api-key'" in missing.json()["error"]
            assert call({"x-api-key": "wrong"}).status_code == 403
            assert call({"x-api-key": "v2-s3cret-key"}).status_code == 200
        open_paths = ("/v2", "/v2/health/live", "/v2/health/ready")
        for path in (*open_paths, f"/v2/models/{champion_name}/ready"):
            assert httpx.get(f"{app.url}{path}").status_code == 200, path
        with triton.InferenceServerClient(app.url.removeprefix("http://")) as http:
            result = http.infer(
                champion_name,
                _triton_inputs("FP32", ROWS[:1], True),
                headers={"x-api-key": "v2-s3cret-key"},
            )
            assert result.as_numpy("label").tolist() == [b"setosa"]
            with pytest.raises(InferenceServerException, match="missing API key"):
                http.get_model_metadata(champion_name)
    finally:
        app.stop()


def test_not_ready_until_a_model_is_loaded(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    app = start_app(tmp_path, nowhere, "absent", wait_ready=False)
    try:
        assert httpx.get(f"{app.url}/v2/health/live").json() == {"live": True}
        ready = httpx.get(f"{app.url}/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        model_ready = httpx.get(f"{app.url}/v2/models/absent/ready")
        assert model_ready.status_code == 503 and "error" in model_ready.json()
        assert httpx.get(f"{app.url}/v2/models/other/ready").status_code == 404
        infer = _infer(app.url, "absent", _single(ROWS[:1]))
        assert infer.status_code == 503
        assert infer.json() == {"error": "no model is loaded yet"}
    finally:
        app.stop()


def test_infer_routes_are_counted_under_their_templates(
    served_app: Process, champion_name: str
) -> None:
    body = _single(ROWS[:1])
    assert _infer(served_app.url, champion_name, body).status_code == 200
    assert _infer(served_app.url, champion_name, body, "versions/1/infer").status_code == 200
    samples = metric_samples(served_app.url)
    for route in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        assert samples[f"mlstack_requests_total{{method=POST,route={route},status=200}}"] >= 1
    assert not any(champion_name in key for key in samples if key.startswith("mlstack_requests"))


def test_openapi_documents_every_v2_route(served_app: Process) -> None:
    paths = httpx.get(f"{served_app.url}/openapi.json").json()["paths"]
    assert {
        "/v2": {"get"},
        "/v2/health/live": {"get"},
        "/v2/health/ready": {"get"},
        "/v2/models/{name}": {"get"},
        "/v2/models/{name}/ready": {"get"},
        "/v2/models/{name}/infer": {"post"},
        "/v2/models/{name}/versions/{version}": {"get"},
        "/v2/models/{name}/versions/{version}/ready": {"get"},
        "/v2/models/{name}/versions/{version}/infer": {"post"},
    }.items() <= {path: set(ops) for path, ops in paths.items()}.items()
    binary = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/octet-stream"} <= set(binary)
