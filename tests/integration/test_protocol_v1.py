"""KServe's V1 protocol on a real uvicorn process, spoken by KServe's own REST client: the
same labels and probabilities as /predict, KServe's error form and statuses, the setting and
the request parameter that switch to probabilities, int classes answered as ints."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson
import pytest
from kserve import InferenceRESTClient, RESTConfig
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.integration.test_any_model import X, _champion, _log_sklearn
from tests.processes import Process, metric_samples, start_app

T = TypeVar("T")
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = load_iris().data[::15].tolist()  # ten rows, all three species
JSON = {"content-type": "application/json"}
ROUTE = "/v1/models/{name}:predict"
API_KEY = "v1-s3cret"


def _kserve(call: Callable[[InferenceRESTClient], Awaitable[T]]) -> T:
    """Run one call of KServe's async REST client (V1 protocol) to completion."""

    async def run() -> T:
        async with InferenceRESTClient(RESTConfig(protocol="v1", retries=0)) as client:
            return await call(client)

    return asyncio.run(run())


def _infer(
    app: Process, name: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """KServe's client `infer`: the answer and its response headers."""
    response_headers: dict[str, str] = {}

    async def call(client: InferenceRESTClient) -> Any:
        return await client.infer(
            app.url, body, model_name=name, headers=headers, response_headers=response_headers
        )

    answer: dict[str, Any] = _kserve(call)
    return answer, response_headers


def _split_predict(
    app: Process, rows: list[list[float]], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """/predict's columnar answer for `rows`."""
    response = httpx.post(
        f"{app.url}/predict",
        content=orjson.dumps({"columns": FEATURES, "data": rows}),
        headers={**JSON, **(headers or {})},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _post(app: Process, name: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{app.url}/v1/models/{name}:predict", content=content, headers=headers)


def test_kserve_client_gets_the_labels_of_predict_for_arrays_and_objects(
    served_app: Process, champion_name: str
) -> None:
    expected = _split_predict(served_app, ROWS)
    arrays, headers = _infer(served_app, champion_name, {"instances": ROWS})
    assert arrays == {"predictions": expected["labels"]}
    assert set(arrays["predictions"]) == {"setosa", "versicolor", "virginica"}
    assert headers["x-model-version"] == expected["model_version"]
    records = [dict(zip(FEATURES, row, strict=True)) for row in ROWS]
    objects, _ = _infer(served_app, champion_name, {"instances": records})
    assert objects == arrays
    inputs, _ = _infer(served_app, champion_name, {"inputs": ROWS})
    assert inputs == arrays


def test_request_parameter_asks_for_the_probabilities_of_predict(
    served_app: Process, champion_name: str
) -> None:
    expected = _split_predict(served_app, ROWS)
    body = {"instances": ROWS, "parameters": {"probabilities": True}}
    answer, _ = _infer(served_app, champion_name, body)
    assert set(answer) == {"predictions"}
    assert expected["classes"] == ["setosa", "versicolor", "virginica"]  # the columns' order
    np.testing.assert_allclose(answer["predictions"], expected["probabilities"], atol=1e-6)


def test_kserve_client_sees_the_server_live_and_the_model_ready(
    served_app: Process, champion_name: str
) -> None:
    assert _kserve(lambda client: client.is_server_live(served_app.url)) is True
    assert _kserve(lambda client: client.is_model_ready(served_app.url, champion_name)) is True
    with pytest.raises(httpx.HTTPStatusError) as error:
        _kserve(lambda client: client.is_model_ready(served_app.url, "other-model"))
    assert error.value.response.status_code == 404
    assert f"model 'other-model' is not served here: this server serves '{champion_name}'" in (
        str(error.value)
    )
    listed = httpx.get(f"{served_app.url}/v1/models").json()
    assert listed == {"models": [champion_name]}


def test_another_model_name_gets_404_in_kserve_form(
    served_app: Process, champion_name: str
) -> None:
    response = _post(served_app, "other-model", orjson.dumps({"instances": ROWS}), JSON)
    assert response.status_code == 404
    assert response.json() == {
        "error": f"model 'other-model' is not served here: this server serves '{champion_name}'"
    }
    with pytest.raises(httpx.HTTPStatusError, match="404 Not Found"):
        _infer(served_app, "other-model", {"instances": ROWS})


SETOSA = ROWS[0]
BAD_REQUESTS = [
    ("malformed JSON", b'{"instances": [[5.1, 3.5', JSON, 400, "body is not valid JSON"),
    ("body is an array", orjson.dumps([SETOSA]), JSON, 400, "body must be a JSON object"),
    ("no instances", orjson.dumps({"data": [SETOSA]}), JSON, 400, 'body has no "instances"'),
    ("empty", orjson.dumps({"instances": []}), JSON, 400, "'instances' is empty"),
    (
        "over the row limit",
        orjson.dumps({"instances": [SETOSA] * 1001}),
        JSON,
        400,
        "'instances' has 1001 rows, over the limit of 1000 (MLSTACK_MAX_BATCH_ROWS)",
    ),
    (
        "short row",
        orjson.dumps({"instances": [SETOSA, SETOSA[:3]]}),
        JSON,
        400,
        f"instances[1] has 3 values: send 4, in the order {FEATURES}",
    ),
    (
        "string value",
        orjson.dumps({"instances": [[5.1, 3.5, "1.4", 0.2]]}),
        JSON,
        400,
        "instances[0][2] ('petal_length') must be a number, got string",
    ),
    (
        "NaN",
        b'{"inputs": [[5.1, 3.5, 1.4, NaN]]}',
        JSON,
        400,
        "inputs[0][3] ('petal_width') must be a finite number within float32 range",
    ),
    (
        "record missing a feature",
        orjson.dumps({"instances": [dict(zip(FEATURES[:3], SETOSA, strict=False))]}),
        JSON,
        400,
        "instances[0]: missing feature(s) ['petal_width']",
    ),
    (
        "unknown parameter",
        orjson.dumps({"instances": [SETOSA], "parameters": {"proba": True}}),
        JSON,
        400,
        "unknown parameter(s) ['proba']",
    ),
    (
        "extra top-level field",
        orjson.dumps({"instances": [SETOSA], "signature_name": "x"}),
        JSON,
        400,
        "besides ['instances', 'parameters']: ['signature_name']",
    ),
    (
        "body over the size limit",
        b'{"instances": [' + b" " * 1_048_600 + b"]}",
        JSON,
        413,
        "over the limit of 1048576 bytes (MLSTACK_MAX_BODY_BYTES)",
    ),
    (
        "not JSON content type",
        orjson.dumps({"instances": [SETOSA]}),
        {"content-type": "text/plain"},
        415,
        "content type must be application/json, got 'text/plain'",
    ),
]


@pytest.mark.parametrize(
    ("case", "content", "headers", "status", "message"),
    BAD_REQUESTS,
    ids=[c[0] for c in BAD_REQUESTS],
)
def test_bad_request_gets_kserve_error_naming_the_row_field_or_limit(
    served_app: Process,
    champion_name: str,
    case: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = _post(served_app, champion_name, content, headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_route_label_counts_v1_requests_in_metrics(served_app: Process, champion_name: str) -> None:
    ok = f"mlstack_requests_total{{method=POST,route={ROUTE},status=200}}"
    bad = f"mlstack_requests_total{{method=POST,route={ROUTE},status=400}}"
    before = metric_samples(served_app.url)
    for _ in range(2):
        _infer(served_app, champion_name, {"instances": ROWS})
    _post(served_app, champion_name, b"{}", JSON)
    after = metric_samples(served_app.url)
    assert after[ok] - before.get(ok, 0.0) == 2
    assert after[bad] - before.get(bad, 0.0) == 1
    assert not any("/v1/models/" + champion_name in key for key in after)


def test_openapi_lists_the_v1_routes(served_app: Process) -> None:
    paths = httpx.get(f"{served_app.url}/openapi.json").json()["paths"]
    assert set(paths["/v1/models/{name}:predict"]) == {"post"}
    assert set(paths["/v1/models/{name}"]) == {"get"}
    assert set(paths["/v1/models"]) == {"get"}
    assert set(paths["/"]) == {"get"}


@pytest.fixture(scope="module")
def probabilities_app(
    mlflow_server: Process, champion_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """The champion served with MLSTACK_V1_PROBABILITIES=true and an API key."""
    process = start_app(
        tmp_path_factory.mktemp("v1-probabilities"),
        mlflow_server.url,
        champion_name,
        env={"MLSTACK_V1_PROBABILITIES": "true", "MLSTACK_API_KEY": API_KEY},
    )
    yield process
    process.stop()


def test_setting_answers_probabilities_and_the_parameter_still_asks_for_labels(
    probabilities_app: Process, champion_name: str
) -> None:
    key = {"x-api-key": API_KEY}
    expected = _split_predict(probabilities_app, ROWS, key)
    answer, _ = _infer(probabilities_app, champion_name, {"instances": ROWS}, key)
    np.testing.assert_allclose(answer["predictions"], expected["probabilities"], atol=1e-6)
    body = {"instances": ROWS, "parameters": {"probabilities": False}}
    labels, _ = _infer(probabilities_app, champion_name, body, key)
    assert labels == {"predictions": expected["labels"]}


def test_api_key_guards_predict_and_the_model_list_not_the_health_routes(
    probabilities_app: Process, champion_name: str
) -> None:
    url = probabilities_app.url
    missing = _post(probabilities_app, champion_name, orjson.dumps({"instances": ROWS}), JSON)
    assert missing.status_code == 401
    assert missing.json() == {"error": "missing API key header 'x-api-key'"}
    wrong = httpx.get(f"{url}/v1/models", headers={"x-api-key": "wrong"})
    assert wrong.status_code == 403 and set(wrong.json()) == {"error"}
    listed = httpx.get(f"{url}/v1/models", headers={"x-api-key": API_KEY})
    assert listed.json() == {"models": [champion_name]}
    assert _kserve(lambda client: client.is_server_live(url)) is True
    assert _kserve(lambda client: client.is_model_ready(url, champion_name)) is True


def test_model_not_loaded_yet_is_not_ready_for_the_kserve_client(
    mlflow_server: Process, tmp_path: Path
) -> None:
    name = f"never-{uuid.uuid4().hex[:8]}"  # no such registered model: it never loads
    app = start_app(tmp_path, mlflow_server.url, name, wait_ready=False)
    try:
        assert _kserve(lambda client: client.is_server_live(app.url)) is True
        assert _kserve(lambda client: client.is_model_ready(app.url, name)) is False
        response = httpx.get(f"{app.url}/v1/models/{name}")
        assert response.status_code == 503
        assert response.json() == {"error": f"model {name!r} is not loaded yet"}
        assert httpx.get(f"{app.url}/v1/models/other").status_code == 404
        refused = _post(app, name, orjson.dumps({"instances": ROWS}), JSON)
        assert refused.status_code == 503
        assert refused.json() == {"error": "no model is loaded yet"}
    finally:
        app.stop()


def test_int_classes_are_answered_as_ints(mlflow_server: Process, tmp_path: Path) -> None:
    uri, name = mlflow_server.url, f"int-classes-{uuid.uuid4().hex[:8]}"
    target = load_iris().target  # 0, 1, 2
    model = LogisticRegression(max_iter=500).fit(X, target)
    version = _log_sklearn(uri, name, model, signature=infer_signature(X, model.predict(X)))
    _champion(uri, name, version)
    app = start_app(tmp_path, uri, name)
    try:
        rows = X.iloc[::15]
        answer, headers = _infer(app, name, {"instances": rows.to_numpy().tolist()})
        assert headers["x-model-version"] == version
        assert answer["predictions"] == model.predict(rows).tolist()
        assert all(type(label) is int for label in answer["predictions"])
        body = {"instances": rows.to_numpy().tolist(), "parameters": {"probabilities": True}}
        proba, _ = _infer(app, name, body)
        np.testing.assert_allclose(proba["predictions"], model.predict_proba(rows), atol=1e-5)
    finally:
        app.stop()
