"""A real uvicorn service follows its mounted API-key Secret without a restart: a rotated key is
in force within a second or so, a withdrawn one refuses every request (503, never open), and a
republished one serves again."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.processes import Process, start_app, wait_until
from tests.secret_mount import SecretMount

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
FIRST, SECOND, THIRD = "app-rotation-key-1", "app-rotation-key-2", "app-rotation-key-3"


def _predict(url: str, key: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    return httpx.post(f"{url}/predict", content=orjson.dumps(SETOSA), headers=headers)


def _model(url: str, key: str) -> int:
    return httpx.get(f"{url}/model", headers={"x-api-key": key}).status_code


def test_a_rotated_key_secret_is_in_force_without_a_restart_and_fails_closed_when_withdrawn(
    mlflow_server: Process, champion_name: str, tmp_path: Path
) -> None:
    mount = SecretMount(tmp_path / "secret")
    mount.publish(FIRST)
    app = start_app(
        tmp_path, mlflow_server.url, champion_name, env={"MLSTACK_API_KEY_FILE": str(mount.path)}
    )
    try:
        pid = app.proc.pid
        assert _predict(app.url, FIRST).status_code == 200

        mount.publish(SECOND)
        wait_until(lambda: _predict(app.url, SECOND).status_code == 200, 10, "the second key")
        assert _predict(app.url, FIRST).status_code == 403
        assert (_model(app.url, SECOND), _model(app.url, FIRST)) == (200, 403)

        mount.withdraw()
        wait_until(lambda: _predict(app.url, SECOND).status_code == 503, 10, "refusals")
        refused = _predict(app.url, SECOND)
        assert refused.json() == {"detail": "the API key cannot be read (MLSTACK_API_KEY_FILE)"}
        assert _model(app.url, SECOND) == 503
        assert _predict(app.url, None).status_code == 401  # no header: as before
        for path in ("/livez", "/metrics"):
            assert httpx.get(f"{app.url}{path}").status_code == 200

        mount.publish(THIRD)
        wait_until(lambda: _predict(app.url, THIRD).status_code == 200, 10, "the third key")
        assert _predict(app.url, SECOND).status_code == 403
        assert app.proc.poll() is None and app.proc.pid == pid  # the same process throughout
    finally:
        app.stop()
    events = [orjson.loads(line) for line in app.output().splitlines() if line.startswith("{")]
    key_events = [e["event"] for e in events if e["event"].startswith("api_key.")]
    assert key_events == ["api_key.reloaded", "api_key.unreadable", "api_key.reloaded"]
    assert all(
        e.get("setting") == "MLSTACK_API_KEY_FILE" for e in events if "api_key" in e["event"]
    )
