"""The prediction log over HTTP: a real control plane (uvicorn) on real SQLite and PostgreSQL,
fed by two concurrent senders the way inference replicas feed it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.control.conftest import BACKENDS, ControlFactory, fresh_database
from tests.control.records import AUTH, post, record
from tests.processes import Postgres, Process, start_control, wait_until

NOW = float(int(time.time()))
T0 = NOW - 7200  # two hours ago, whole seconds: exact in ISO 8601 and inside the retention
ERRORS = [("validation", 422), ("auth", 401), ("limit", 413), ("model", 500)]


def _sender_records(sender: str, version: str | None, count: int, shift: float) -> list[dict]:
    out = []
    for i in range(count):
        fields: dict[str, Any] = {"model_version": version}
        if i % 5 == 4:
            source, status = ERRORS[(i // 5) % len(ERRORS)]
            fields.update(status=status, error_source=source)
        if i % 13 == 12:
            fields["model_version"] = None  # e.g. no model loaded yet
        out.append(record(f"{sender}-{i:03d}", T0 + i + shift, **fields))
    return out


SENT = _sender_records("a", "1", 60, 0.0) + _sender_records("b", "2", 60, 0.5)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module", params=BACKENDS)
def ingested(
    request: pytest.FixtureRequest,
    postgres: Postgres,
    key_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """A control plane that received SENT from two senders posting at the same time."""
    env = {"MLSTACK_CONTROL_API_KEY_FILE": str(key_file)}
    if request.param == "postgresql":
        env["MLSTACK_CONTROL_DATABASE_URI"] = fresh_database(postgres)
    plane = start_control(tmp_path_factory.mktemp("control"), "http://127.0.0.1:9", env)
    statuses: list[int] = []

    def sender(records: list[dict]) -> None:
        with httpx.Client(timeout=30) as client:
            for start in range(0, len(records), 7):
                response = client.post(
                    f"{plane.url}/v1/predictions",
                    json={"records": records[start : start + 7]},
                    headers=AUTH,
                )
                statuses.append(response.status_code)

    threads = [threading.Thread(target=sender, args=(SENT[:60],))]
    threads.append(threading.Thread(target=sender, args=(SENT[60:],)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [202] * 18
    yield plane
    plane.stop()


def _ids(predicate: Callable[[dict], bool]) -> list[str]:
    chosen = [r for r in SENT if predicate(r)]
    return [r["request_id"] for r in sorted(chosen, key=lambda r: r["time"], reverse=True)]


FILTERS: list[tuple[str, dict[str, Any], Callable[[dict], bool]]] = [
    ("everything", {}, lambda r: True),
    ("successes", {"status": "success"}, lambda r: r["outcome"] == "success"),
    ("errors", {"status": "error"}, lambda r: r["outcome"] == "error"),
    ("validation errors", {"source": "validation"}, lambda r: r["error_source"] == "validation"),
    ("model errors", {"source": "model"}, lambda r: r["error_source"] == "model"),
    ("one version", {"model_version": "2"}, lambda r: r["model_version"] == "2"),
    ("since, ISO 8601", {"since": _iso(T0 + 30)}, lambda r: r["time"] >= T0 + 30),
    ("until, epoch", {"until": str(T0 + 10)}, lambda r: r["time"] < T0 + 10),
    (
        "window",
        {"since": T0 + 5.5, "until": _iso(T0 + 20)},
        lambda r: T0 + 5.5 <= r["time"] < T0 + 20,
    ),
    (
        "errors of version 1",
        {"status": "error", "model_version": "1"},
        lambda r: r["outcome"] == "error" and r["model_version"] == "1",
    ),
    (
        "auth errors since",
        {"source": "auth", "since": _iso(T0 + 20)},
        lambda r: r["error_source"] == "auth" and r["time"] >= T0 + 20,
    ),
]


@pytest.mark.parametrize(("case", "params", "predicate"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filters_return_exactly_the_matching_records_newest_first(
    ingested: Process, case: str, params: dict[str, Any], predicate: Callable[[dict], bool]
) -> None:
    expected = _ids(predicate)
    assert expected, f"the test data has no record for {case}"
    body = httpx.get(
        f"{ingested.url}/v1/predictions", params={**params, "limit": 1000}, headers=AUTH
    ).json()
    assert body["total"] == len(expected)
    assert [item["request_id"] for item in body["items"]] == expected


def test_pages_walk_the_whole_result_without_gaps_or_repeats(ingested: Process) -> None:
    expected = _ids(lambda r: r["outcome"] == "success")
    seen: list[str] = []
    for offset in range(0, len(expected) + 11, 11):
        body = httpx.get(
            f"{ingested.url}/v1/predictions",
            params={"status": "success", "limit": 11, "offset": offset},
            headers=AUTH,
        ).json()
        assert body["total"] == len(expected)
        assert len(body["items"]) <= 11
        seen += [item["request_id"] for item in body["items"]]
    assert seen == expected
    default = httpx.get(f"{ingested.url}/v1/predictions", headers=AUTH).json()
    assert len(default["items"]) == 50 and default["total"] == len(SENT)


def test_a_stored_record_reads_back_as_it_was_sent(ingested: Process) -> None:
    sent = next(r for r in SENT if r["request_id"] == "b-004")
    body = httpx.get(
        f"{ingested.url}/v1/predictions",
        params={"since": sent["time"], "until": sent["time"] + 0.25},
        headers=AUTH,
    ).json()
    [item] = body["items"]
    assert isinstance(item.pop("id"), int)
    # An answer's record: what was sent, and the shadow fields at their defaults.
    assert item == {**sent, "shadow": False, "live_version": None, "agreed_rows": None}


BAD_QUERIES = [
    ({"limit": 0}, "query.limit: Input should be greater than or equal to 1"),
    ({"limit": 1001}, "query.limit: Input should be less than or equal to 1000"),
    ({"offset": -1}, "query.offset: Input should be greater than or equal to 0"),
    ({"status": "ok"}, "query.status: Input should be 'success' or 'error'"),
    ({"source": "network"}, "query.source: Input should be 'validation', 'auth', 'limit'"),
    ({"since": "yesterday"}, "query.since: Value error, 'yesterday' is neither ISO 8601"),
    ({"since": "2026-01-02", "until": "2026-01-01"}, "since is after until"),
    ({"status": "success", "source": "auth"}, "cannot be combined with status=success"),
    ({"colour": "red"}, "query.colour: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("params", "message"), BAD_QUERIES, ids=[str(q[0]) for q in BAD_QUERIES])
def test_bad_queries_get_422_naming_the_parameter(
    ingested: Process, params: dict[str, Any], message: str
) -> None:
    response = httpx.get(f"{ingested.url}/v1/predictions", params=params, headers=AUTH)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def _one(**fields: Any) -> dict[str, Any]:
    return {"records": [record("x-1", NOW, **fields)]}


def _without(field: str) -> dict[str, Any]:
    body = _one()
    del body["records"][0][field]
    return body


BIG_BATCH = {"records": [record(f"big-{i}", NOW + i) for i in range(1001)]}
BAD_BATCHES: list[tuple[str, Any, int, str]] = [
    ("not JSON", b'{"records": [', 400, "body is not valid JSON"),
    ("NaN is not JSON", b'{"records": [{"time": NaN}]}', 400, "body is not valid JSON"),
    ("an array", [record("x-1", NOW)], 422, "body: Input should be a valid dictionary"),
    ("no records", {}, 422, "records: Field required"),
    ("empty records", {"records": []}, 422, "records: List should have at least 1 item"),
    ("extra top-level field", {**_one(), "sender": "a"}, 422, "sender: Extra inputs"),
    ("missing request id", _without("request_id"), 422, "records[0].request_id: Field required"),
    ("long request id", _one(request_id="r" * 129), 422, "records[0].request_id: String should"),
    ("status as string", _one(status="200"), 422, "records[0].status: Input should be a valid int"),
    ("status as boolean", _one(status=True), 422, "records[0].status: Input should be a valid int"),
    ("status out of range", _one(status=700), 422, "records[0].status: Input should be less"),
    ("time as string", _one(time="now"), 422, "records[0].time: Input should be a valid number"),
    ("negative time", _one(time=-1.0), 422, "records[0].time: Input should be greater than"),
    ("unknown outcome", _one(outcome="ok"), 422, "records[0].outcome: Input should be 'success'"),
    (
        "unknown error source",
        _one(status=503, error_source="network"),
        422,
        "records[0].error_source: Input should be 'validation'",
    ),
    ("confidence over 1", _one(confidences=[1.5]), 422, "records[0].confidences[0]: Input should"),
    ("labels not a list", _one(labels="setosa"), 422, "records[0].labels: Input should be a valid"),
    (
        "feature not a number",
        _one(features=[[1.0, "x"]]),
        422,
        "records[0].features[0][1]: Input should be a valid number",
    ),
    ("unknown field", _one(colour="red"), 422, "records[0].colour: Extra inputs are not permitted"),
    (
        "outcome contradicts status",
        _one(status=422, outcome="success", error_source=None),
        422,
        "records[0]: Value error, outcome 'success' does not match status 422",
    ),
    (
        "success with an error source",
        _one(error_source="model"),
        422,
        "error_source must be null when outcome is 'success'",
    ),
    (
        "labels and confidences differ",
        _one(confidences=[0.5, 0.5]),
        422,
        "labels (1) and confidences (2) differ in length",
    ),
    (
        "bad record after good ones",
        {"records": [record("g-1", NOW), record("g-2", NOW), record("g-3", NOW, rows=-1)]},
        422,
        "records[2].rows: Input should be greater than or equal to 0",
    ),
    ("over 1000 records", BIG_BATCH, 413, "1001 records, over the limit of 1000 per batch"),
    (
        "body over the byte limit",
        {"records": [record("x-1", NOW, labels=["a" * 600_000], confidences=[0.5])]},
        413,
        "over the limit of 524288 bytes (MLSTACK_CONTROL_MAX_BODY_BYTES)",
    ),
]


@pytest.fixture(scope="module")
def strict_plane(key_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    plane = start_control(
        tmp_path_factory.mktemp("control"),
        "http://127.0.0.1:9",
        {
            "MLSTACK_CONTROL_API_KEY_FILE": str(key_file),
            "MLSTACK_CONTROL_MAX_BODY_BYTES": "524288",
        },
    )
    yield plane
    plane.stop()


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES]
)
def test_malformed_batches_are_refused_whole_naming_the_field(
    strict_plane: Process, case: str, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = httpx.post(
        f"{strict_plane.url}/v1/predictions",
        content=content,
        headers={**AUTH, "content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    stored = httpx.get(f"{strict_plane.url}/v1/predictions", headers=AUTH).json()
    assert stored["total"] == 0, f"{case}: part of a refused batch was stored"


def test_a_batch_sent_again_is_stored_once(control_factory: ControlFactory) -> None:
    plane = control_factory()
    batch = [record(f"again-{i}", NOW + i) for i in range(5)]
    assert post(plane.url, batch).json() == {"accepted": 5}
    assert post(plane.url, [*batch[2:], record("again-new", NOW + 9)]).status_code == 202
    body = httpx.get(f"{plane.url}/v1/predictions", headers=AUTH).json()
    assert body["total"] == 6
    assert sorted(i["request_id"] for i in body["items"]) == sorted(
        [r["request_id"] for r in batch] + ["again-new"]
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_retention_deletes_records_older_than_the_setting(
    control_factory: ControlFactory, backend: str
) -> None:
    plane = control_factory(
        backend,
        MLSTACK_CONTROL_RETENTION_DAYS="1",
        MLSTACK_CONTROL_RETENTION_INTERVAL_SECONDS="0.5",
    )
    old = [record(f"old-{i}", NOW - 86_400 * (2 + i)) for i in range(3)]
    fresh = [record("fresh-0", NOW - 3600), record("fresh-1", time.time())]
    assert post(plane.url, old + fresh).status_code == 202
    wait_until(
        lambda: httpx.get(f"{plane.url}/v1/predictions", headers=AUTH).json()["total"] == 2,
        30,
        "retention to delete the three old records",
    )
    items = httpx.get(f"{plane.url}/v1/predictions", headers=AUTH).json()["items"]
    assert [i["request_id"] for i in items] == ["fresh-1", "fresh-0"]
    metrics = httpx.get(f"{plane.url}/metrics").text
    assert "mlstack_control_retention_deleted_records_total 3.0" in metrics
    assert '"event":"retention.applied"' in plane.output()
