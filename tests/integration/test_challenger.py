"""The challenger on live traffic, with real processes: a real mlflow server holding two real
versions that disagree on known rows, real uvicorn services and a real control plane.

- the shadow's metrics, GET /model, the flagged prediction log and `promote --min-agreement`;
- drops under a full shadow queue;
- the canary's stickiness and share (within a statistical bound), ended live;
- MLflow's own webhook delivery, relayed by the control plane, and forged, stale and replayed
  deliveries refused.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import orjson
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from devsupport.processes import start_mlflow
from tests.processes import Process, metric_samples, start_app, start_control, wait_until
from training import contract

JSON = {"content-type": "application/json"}
SECRET = "webhook-secret-for-tests"
DIFFERENCE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _iris() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris(as_frame=True)
    frame = data.data.astype("float32")
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return frame, data.target.to_numpy()


X, Y = _iris()


def _log(uri: str, name: str, model: Any) -> str:
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=X.iloc[:3],
            pip_requirements=["scikit-learn"],
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    return str(info.registered_model_version)


def _pair(uri: str, shadow: Any) -> tuple[str, str, str, Any, Any]:
    """A model whose champion v1 is a full decision tree and whose challenger v2 is `shadow`:
    (name, v1, v2, tree, shadow), the estimators fitted."""
    name = f"pair-{uuid.uuid4().hex[:8]}"
    tree = DecisionTreeClassifier(random_state=0).fit(X, Y)
    shadow = shadow.fit(X, Y)
    v1, v2 = _log(uri, name, tree), _log(uri, name, shadow)
    client = MlflowClient(uri)
    client.set_registered_model_alias(name, contract.ALIAS_CHAMPION, v1)
    client.set_registered_model_alias(name, contract.ALIAS_CHALLENGER, v2)
    return name, v1, v2, tree, shadow


def _predict(app: Process, rows: pd.DataFrame, headers: dict[str, str] | None = None) -> Any:
    body = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
    response = httpx.post(
        f"{app.url}/predict", content=orjson.dumps(body), headers={**JSON, **(headers or {})}
    )
    assert response.status_code == 200, response.text
    return response


def _model(app: Process) -> dict[str, Any]:
    response = httpx.get(f"{app.url}/model")
    assert response.status_code == 200, response.text
    described: dict[str, Any] = response.json()
    return described


def _figures(app: Process) -> dict[str, Any]:
    figures: dict[str, Any] | None = _model(app)["shadow"]["figures"]
    assert figures is not None
    return figures


def _mlstack(
    uri: str, control: Process, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control", *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": uri, "MLSTACK_CONTROL_URL": control.url, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Process]]:
    """Processes a test starts; every one is stopped after it."""
    processes: list[Process] = []
    yield processes
    for process in processes:
        process.stop()


def test_shadow_metrics_log_and_promotion_bar_on_a_pair_that_disagrees_on_known_rows(
    mlflow_server: Process, tmp_path: Path, started: list[Process]
) -> None:
    uri = mlflow_server.url
    name, v1, v2, tree, dummy = _pair(uri, DummyClassifier(strategy="constant", constant=0))
    # What the two versions must show, from the estimators themselves.
    live_proba, shadow_proba = tree.predict_proba(X), dummy.predict_proba(X)
    live_top = live_proba.argmax(axis=1)
    expected_agreed = int((live_top == shadow_proba.argmax(axis=1)).sum())
    rows = np.arange(len(X))
    difference = np.abs(live_proba[rows, live_top] - shadow_proba[rows, live_top])
    assert 0 < expected_agreed < len(X)  # the pair agrees on some rows and not on others

    control = start_control(tmp_path / "control", uri)
    started.append(control)
    app = start_app(tmp_path / "app", uri, name, env={
        "MLSTACK_SHADOW_PERCENT": "100",
        "MLSTACK_PREDICTION_LOG_URL": control.url,
        "MLSTACK_PREDICTION_LOG_INTERVAL_SECONDS": "0.2",
    })  # fmt: skip
    started.append(app)
    wait_until(lambda: _model(app)["shadow"]["version"] == v2, 60, "the shadow loaded")
    for start in range(0, len(X), 10):
        response = _predict(app, X.iloc[start : start + 10])
        assert response.headers["x-model-version"] == v1  # the shadow never answers
        assert response.json()["model_version"] == v1
    wait_until(lambda: _figures(app)["rows"] == len(X), 30, "every row shadowed")

    figures = _figures(app)
    assert (figures["live_version"], figures["shadow_version"]) == (v1, v2)
    assert figures["agreed_rows"] == expected_agreed
    assert figures["agreement"] == pytest.approx(expected_agreed / len(X))
    assert figures["requests"] == 15 and figures["dropped"] == 0 and figures["errors"] == 0

    samples = metric_samples(app.url)
    pair = f"live_version={v1},shadow_version={v2}"
    assert samples[f"mlstack_shadow_rows_total{{{pair}}}"] == len(X)
    assert samples[f"mlstack_shadow_agreed_rows_total{{{pair}}}"] == expected_agreed
    for bound in DIFFERENCE_BUCKETS:
        bucket = f"mlstack_shadow_probability_difference_bucket{{le={bound},{pair}}}"
        assert samples[bucket] == int((difference <= bound).sum()), bound
    assert samples[f"mlstack_shadow_predictions_total{{class=0,{pair}}}"] == len(X)
    assert samples[f"mlstack_shadow_duration_seconds_count{{{pair}}}"] >= 1
    assert samples[f"mlstack_shadow_model_info{{alias=challenger,name={name},version={v2}}}"] == 1

    # The prediction log holds the answers and the flagged shadow records.
    def shadow_records() -> dict[str, Any]:
        page: dict[str, Any] = httpx.get(
            f"{control.url}/v1/predictions", params={"shadow": "true", "limit": 100}
        ).json()
        return page

    wait_until(lambda: shadow_records()["total"] == 15, 30, "the shadow records shipped")
    records = shadow_records()["items"]
    assert {(r["model_version"], r["live_version"], r["shadow"]) for r in records} == {
        (v2, v1, True)
    }
    assert sum(r["agreed_rows"] for r in records) == expected_agreed
    answers = httpx.get(f"{control.url}/v1/predictions", params={"shadow": "false"}).json()
    assert answers["total"] == 15
    assert {r["model_version"] for r in answers["items"]} == {v1}
    agreement = httpx.get(
        f"{control.url}/v1/predictions/agreement",
        params={"model_version": v2, "live_version": v1},
    ).json()
    assert (agreement["rows"], agreement["agreed_rows"]) == (len(X), expected_agreed)
    detail = httpx.get(f"{control.url}/v1/models/{name}").json()
    assert detail["challenger_agreement"]["agreed_rows"] == expected_agreed

    # The promotion bar: too few rows, too low an agreement, then one that clears.
    share = expected_agreed / len(X)
    short = _mlstack(uri, control, "promote", name, v2, "--min-agreement", "0.1",
                     "--min-rows", str(len(X) + 1))  # fmt: skip
    assert short.returncode == 1, short.stderr
    assert f"{len(X)} shadowed rows" in short.stderr and "--min-rows" in short.stderr
    low = _mlstack(uri, control, "promote", name, v2, "--min-agreement", f"{share + 0.05:.4f}")
    assert low.returncode == 1, low.stderr
    assert "below --min-agreement" in low.stderr
    bad = _mlstack(uri, control, "promote", name, v2, "--min-agreement", "1.5")
    assert bad.returncode == 2 and "--min-agreement" in bad.stderr
    client = MlflowClient(uri)
    assert client.get_model_version_by_alias(name, contract.ALIAS_CHAMPION).version == v1
    status = _mlstack(uri, control, "status", "--json", MLSTACK_CONTROL_MODEL_NAME=name)
    report = json.loads(status.stdout)
    assert report["model"]["challenger_agreement"]["agreed_rows"] == expected_agreed

    done = _mlstack(uri, control, "promote", name, v2, "--min-agreement", f"{share - 0.05:.4f}",
                    "--min-rows", str(len(X)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The promoted shadow was loaded already: the service serves it from the next check,
    # and with both aliases on v2 there is nothing left to shadow.
    wait_until(lambda: _model(app)["version"] == v2, 30, "the promoted version served")
    assert _model(app)["shadow"]["version"] is None
    assert _predict(app, X.iloc[:1]).headers["x-model-version"] == v2


def test_a_full_shadow_queue_drops_and_counts_and_never_delays_an_answer(
    mlflow_server: Process, tmp_path: Path, started: list[Process]
) -> None:
    # A forest of many trees predicts far slower than the live tree answers.
    name, v1, v2, _, _ = _pair(
        mlflow_server.url, RandomForestClassifier(n_estimators=1500, random_state=0)
    )
    app = start_app(tmp_path / "app", mlflow_server.url, name, env={
        "MLSTACK_SHADOW_PERCENT": "100", "MLSTACK_SHADOW_QUEUE": "1",
    })  # fmt: skip
    started.append(app)
    wait_until(lambda: _model(app)["shadow"]["version"] == v2, 120, "the shadow loaded")
    sent = 60

    def one(i: int) -> str:
        return str(_predict(app, X.iloc[i : i + 1]).headers["x-model-version"])

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        versions = list(pool.map(one, range(sent)))
    assert set(versions) == {v1}

    def settled() -> bool:
        f = _figures(app)
        return bool(f["requests"] + f["dropped"] + f["errors"] == sent)

    wait_until(settled, 120, "every sampled request shadowed or dropped")
    figures = _figures(app)
    assert figures["dropped"] >= 1 and figures["requests"] >= 1 and figures["errors"] == 0
    samples = metric_samples(app.url)
    pair = f"live_version={v1},shadow_version={v2}"
    labels = f"live_version={v1},reason=queue_full,shadow_version={v2}"
    assert samples[f"mlstack_shadow_dropped_total{{{labels}}}"] == figures["dropped"]
    assert samples[f"mlstack_shadow_rows_total{{{pair}}}"] == figures["requests"]


def test_canary_is_sticky_per_key_holds_its_share_and_ends_live(
    mlflow_server: Process, tmp_path: Path, started: list[Process]
) -> None:
    uri = mlflow_server.url
    name, v1, v2, _, _ = _pair(uri, DummyClassifier(strategy="constant", constant=0))
    traffic = tmp_path / "traffic.json"
    traffic.write_text(json.dumps({"canary_percent": 20, "shadow_percent": 0}))
    app = start_app(tmp_path / "app", uri, name, env={
        "MLSTACK_TRAFFIC_FILE": str(traffic), "MLSTACK_CANARY_HEADER": "x-user",
    })  # fmt: skip
    started.append(app)
    wait_until(lambda: _model(app)["shadow"]["version"] == v2, 60, "the challenger loaded")
    row = X.iloc[:1]

    def version(**headers: str) -> str:
        response = _predict(app, row, headers)
        answered = str(response.headers["x-model-version"])
        assert response.json()["model_version"] == answered
        return answered

    # Share: each request its own id. Binomial(n, 0.2) stays within 5 standard deviations
    # (a failure chance under 1e-6).
    n = 1000
    canary = sum(version(**{"x-request-id": uuid.uuid4().hex}) == v2 for _ in range(n))
    bound = 5 * (n * 0.2 * 0.8) ** 0.5
    assert abs(canary - n * 0.2) <= bound, canary
    # Sticky per request id, and per header value whatever the request id.
    for _ in range(40):
        rid = uuid.uuid4().hex
        assert len({version(**{"x-request-id": rid}) for _ in range(3)}) == 1
    sides = set()
    for user in range(100):
        seen = {version(**{"x-user": f"user-{user}", "x-request-id": uuid.uuid4().hex})
                for _ in range(3)}  # fmt: skip
        assert len(seen) == 1, user
        sides |= seen
    assert sides == {v1, v2}
    # A V2 request naming a version gets that one, the challenger's too, whatever the canary.
    v2_body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                           "data": row.to_numpy().ravel().tolist()}]}  # fmt: skip
    for wanted in (v1, v2):
        named = httpx.post(
            f"{app.url}/v2/models/{name}/versions/{wanted}/infer", json=v2_body, timeout=10
        )
        assert named.status_code == 200, named.text
        assert named.json()["model_version"] == wanted

    # The share goes to 0 in the file: no restart, every answer from the champion, and the
    # challenger unloaded (nothing needs it).
    pid = app.proc.pid
    traffic.write_text(json.dumps({"canary_percent": 0, "shadow_percent": 0}))
    wait_until(lambda: _model(app)["shadow"]["canary_percent"] == 0, 30, "the canary ended")
    wait_until(lambda: _model(app)["shadow"]["version"] is None, 30, "the challenger dropped")
    assert {version(**{"x-request-id": uuid.uuid4().hex}) for _ in range(200)} == {v1}
    assert app.proc.pid == pid and app.proc.poll() is None

    # Back to 20 %, then champion moves to the challenger: the canary is over too.
    traffic.write_text(json.dumps({"canary_percent": 20}))
    wait_until(lambda: _model(app)["shadow"]["version"] == v2, 30, "the canary back")
    MlflowClient(uri).set_registered_model_alias(name, contract.ALIAS_CHAMPION, v2)
    wait_until(lambda: _model(app)["version"] == v2, 30, "the champion moved")
    assert _model(app)["shadow"]["version"] is None
    assert {version(**{"x-request-id": uuid.uuid4().hex}) for _ in range(100)} == {v2}


def test_a_bad_traffic_file_is_refused_at_start_naming_the_key(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    traffic = tmp_path / "traffic.json"
    traffic.write_text(json.dumps({"canary_percent": 120}))
    with pytest.raises(TimeoutError) as failed:
        start_app(tmp_path / "app", mlflow_server.url, champion_name,
                  env={"MLSTACK_TRAFFIC_FILE": str(traffic)})  # fmt: skip
    assert "canary_percent must be a number from 0 to 100" in str(failed.value)


# Deliveries signed here, by the test's own HMAC (the format MLflow documents).
def _delivery(
    body: dict[str, Any], secret: str = SECRET, stamp: int | None = None, delivery: str = ""
) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(body).encode()
    delivery = delivery or str(uuid.uuid4())
    timestamp = str(int(time.time()) if stamp is None else stamp)
    digest = hmac.new(
        secret.encode(), f"{delivery}.{timestamp}.".encode() + payload, hashlib.sha256
    ).digest()
    headers = {
        **JSON,
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }
    return payload, headers


def _alias_event(name: str, alias: str = contract.ALIAS_CHAMPION) -> dict[str, Any]:
    return {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-12-02T00:00:00+00:00",
        "data": {"name": name, "alias": alias, "version": "1"},
    }


@pytest.fixture(scope="module")
def webhook_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A real mlflow server that delivers webhooks to loopback over http (what the chart sets
    for in-cluster delivery), its webhook list cached for a second only."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    process = start_mlflow(tmp_path_factory.mktemp("webhook-mlflow"), env={
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key,
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    })  # fmt: skip
    yield process
    process.stop()


def test_signed_deliveries_are_checked_good_bad_stale_replayed_and_ignored(
    webhook_mlflow: Process, tmp_path: Path, started: list[Process]
) -> None:
    uri = webhook_mlflow.url
    name, v1, _, _, _ = _pair(uri, DummyClassifier(strategy="constant", constant=0))
    app = start_app(tmp_path / "app", uri, name, env={
        "MLSTACK_WEBHOOK_SECRET": SECRET, "MLSTACK_POLL_SECONDS": "3600",
    })  # fmt: skip
    started.append(app)
    url = f"{app.url}/v1/webhooks/mlflow"

    body, headers = _delivery(_alias_event(name))
    good = httpx.post(url, content=body, headers=headers)
    assert good.status_code == 200 and good.json()["outcome"] == "accepted", good.text
    replayed = httpx.post(url, content=body, headers=headers)
    assert replayed.status_code == 409 and "already delivered" in replayed.text

    body, headers = _delivery(_alias_event(name), secret="not-the-secret")
    forged = httpx.post(url, content=body, headers=headers)
    assert forged.status_code == 401 and "signature does not match" in forged.text

    body, headers = _delivery(_alias_event(name))
    tampered = httpx.post(url, content=body.replace(b'"1"', b'"2"'), headers=headers)
    assert tampered.status_code == 401

    body, headers = _delivery(_alias_event(name), stamp=int(time.time()) - 3600)
    stale = httpx.post(url, content=body, headers=headers)
    assert stale.status_code == 408 and "X-MLflow-Timestamp".lower() in stale.text.lower()

    body, headers = _delivery(_alias_event(name))
    del headers["X-MLflow-Signature"]
    unsigned = httpx.post(url, content=body, headers=headers)
    assert unsigned.status_code == 400 and "x-mlflow-signature: missing" in unsigned.text

    body, headers = _delivery(_alias_event("another-model"))
    other = httpx.post(url, content=body, headers=headers)
    assert other.status_code == 200 and other.json()["outcome"] == "ignored"

    samples = metric_samples(app.url)
    for outcome, count in (("accepted", 1), ("409", 1), ("401", 2), ("408", 1), ("400", 1)):
        assert samples[f"mlstack_webhooks_total{{outcome={outcome}}}"] == count, outcome
    assert _model(app)["version"] == v1  # nothing moved: the accepted one changed nothing


def test_mlflow_delivers_an_alias_move_the_control_plane_relays_it_and_the_pod_swaps(
    webhook_mlflow: Process, tmp_path: Path, started: list[Process]
) -> None:
    uri = webhook_mlflow.url
    name, v1, v2, _, _ = _pair(uri, DummyClassifier(strategy="constant", constant=0))
    # Polling once an hour: only the webhook can bring the new version in time.
    app = start_app(tmp_path / "app", uri, name, env={
        "MLSTACK_WEBHOOK_SECRET": SECRET, "MLSTACK_POLL_SECONDS": "3600",
        "MLSTACK_SHADOW_PERCENT": "0",
    })  # fmt: skip
    started.append(app)
    control = start_control(tmp_path / "control", uri, env={
        "MLSTACK_CONTROL_WEBHOOK_SECRET": SECRET,
        "MLSTACK_CONTROL_INFERENCE_URL": app.url,
        "MLSTACK_CONTROL_MODEL_NAME": name,
    })  # fmt: skip
    started.append(control)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    hook_url = f"{control.url}/v1/webhooks/mlflow"
    args = ("webhook", "--url", hook_url, "--secret-file", str(secret_file), "--json")
    first, again = _mlstack(uri, control, *args), _mlstack(uri, control, *args)
    assert first.returncode == 0 and json.loads(first.stdout)["outcome"] == "created", first.stderr
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "updated"
    hooks = [w for w in MlflowClient(uri).list_webhooks() if w.name == "mlstack"]
    assert len(hooks) == 1 and hooks[0].url == hook_url
    time.sleep(1.5)  # the server's webhook cache (1 s here) now lists it

    assert _model(app)["version"] == v1
    moved = time.monotonic()
    MlflowClient(uri).set_registered_model_alias(name, contract.ALIAS_CHAMPION, v2)
    wait_until(lambda: _model(app)["version"] == v2, 30, "the pushed swap")
    log_line = {"seconds": round(time.monotonic() - moved, 3)}  # shown when a check fails
    samples = metric_samples(control.url)
    assert samples["mlstack_control_webhooks_total{outcome=relayed}"] >= 1, log_line
    assert samples["mlstack_control_webhook_relays_total{result=delivered}"] >= 1
    assert metric_samples(app.url)["mlstack_webhooks_total{outcome=accepted}"] >= 1

    # A forged delivery to the control plane is refused there and never relayed.
    body, headers = _delivery(_alias_event(name), secret="forged")
    refused = httpx.post(hook_url, content=body, headers=headers)
    assert refused.status_code == 401
    after = metric_samples(control.url)
    assert (
        after["mlstack_control_webhook_relays_total{result=delivered}"]
        == samples["mlstack_control_webhook_relays_total{result=delivered}"]
    )


def test_webhooks_are_off_without_a_secret(served_app: Process) -> None:
    body, headers = _delivery(_alias_event("any"))
    response = httpx.post(f"{served_app.url}/v1/webhooks/mlflow", content=body, headers=headers)
    assert response.status_code == 404 and "MLSTACK_WEBHOOK_SECRET_FILE" in response.text
