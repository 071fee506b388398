"""Every protocol is one pipeline: the example bodies GET /model gives answer on their own
routes, with the same labels and probabilities as /predict for the same rows."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson

from tests.processes import Process, metric_samples

JSON = {"content-type": "application/json"}


def _routes(name: str) -> dict[str, str]:
    return {
        "predict": "/predict",
        "v2": f"/v2/models/{name}/infer",
        "kserve_v1": f"/v1/models/{name}:predict",
        "mlflow": "/invocations",
    }


def _probabilities(protocol: str, body: Any, classes: list[str]) -> np.ndarray:
    """Probabilities in `classes` order from each protocol's answer (the round's model answers
    probabilities on /invocations: it is logged with pyfunc predict_fn predict_proba)."""
    if protocol == "predict":
        return np.asarray(body["probabilities"])
    if protocol == "v2":
        [output] = [o for o in body["outputs"] if o["name"] == "probabilities"]
        assert output["parameters"]["classes"] == classes
        return np.asarray(output["data"]).reshape(output["shape"])
    if protocol == "mlflow":
        return np.asarray(body["predictions"])
    raise AssertionError(protocol)


def test_every_protocols_example_answers_like_predict(served_app: Process) -> None:
    model = httpx.get(f"{served_app.url}/model").json()
    examples = model["examples"]
    routes = _routes(model["name"])
    assert set(examples) == set(routes)
    answers = {}
    for protocol, route in routes.items():
        response = httpx.post(
            f"{served_app.url}{route}", content=orjson.dumps(examples[protocol]), headers=JSON
        )
        assert response.status_code == 200, (protocol, response.text)
        assert response.headers["x-model-version"] == model["version"]
        answers[protocol] = response.json()
    expected = _probabilities("predict", answers["predict"], model["classes"])
    assert len(expected) >= 1
    for protocol in ("v2", "mlflow"):
        actual = _probabilities(protocol, answers[protocol], model["classes"])
        np.testing.assert_allclose(actual, expected, atol=1e-6, err_msg=protocol)
    # KServe V1 answers labels by default.
    assert answers["kserve_v1"]["predictions"] == answers["predict"]["labels"]

    samples = metric_samples(served_app.url)
    for route in (
        "/predict",
        "/v2/models/{name}/infer",
        "/v1/models/{name}:predict",
        "/invocations",
    ):
        key = f"mlstack_requests_total{{method=POST,route={route},status=200}}"
        assert samples.get(key, 0) >= 1, key
