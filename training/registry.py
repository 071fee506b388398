"""MLflow: reaching the server, scoring the current champion, registering and aliasing."""

from __future__ import annotations

import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from training import contract
from training.evaluate import held_out_metrics
from training.gate import ChampionScore


class MlflowUnavailable(Exception):
    """MLflow could not be reached (or refused us) within the configured time."""


def wait_for_mlflow(tracking_uri: str, timeout_seconds: float) -> None:
    """Block until an HTTP tracking server answers API calls, retrying with backoff.

    `/health` alone is not enough: MLflow's host check answers 403 to API calls while
    `/health` stays 200, so an API call is made too. Non-HTTP URIs need no server.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    base = tracking_uri.rstrip("/")
    probe = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    deadline = time.monotonic() + timeout_seconds
    delay = 0.5
    last_error = "no attempt made"
    while True:
        try:
            with urllib.request.urlopen(probe, timeout=5) as response:
                response.read()
            return
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code} from {probe}"
            if exc.code in (401, 403):
                raise MlflowUnavailable(
                    f"MLflow at {base} refused the request ({last_error}); check credentials "
                    "or the server's --allowed-hosts"
                ) from exc
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(getattr(exc, "reason", exc))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MlflowUnavailable(
                f"MLflow at {base} is unreachable after {timeout_seconds:g} s: {last_error}"
            )
        print(f"  waiting for MLflow at {base} ({last_error}); retrying in {delay:.1f} s")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 10.0)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def read_manifest(client: MlflowClient, name: str, version: str) -> contract.Manifest:
    import mlflow.artifacts

    root = client.get_model_version_download_uri(name, version).rstrip("/")
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{root}/{contract.MANIFEST_FILE}", dst_path=tmp
        )
        return contract.Manifest.from_json(Path(local).read_text())


def score_champion(
    client: MlflowClient,
    name: str,
    metric: str,
    x_test: pd.DataFrame,
    y_test: np.ndarray,
    classes: list[str],
) -> ChampionScore | None:
    """The current champion's `metric` on this round's held-out data, or why it has none."""
    champion = alias_version(client, name, contract.ALIAS_CHAMPION)
    if champion is None:
        return None
    version = str(champion.version)
    try:
        manifest = read_manifest(client, name, version)
    except (MlflowException, OSError, contract.ManifestError) as exc:
        return ChampionScore(version, None, f"its manifest cannot be read ({exc})")
    features = [str(c) for c in x_test.columns]
    if list(manifest.features) != features:
        return ChampionScore(
            version,
            None,
            f"signature differs: champion features {list(manifest.features)}, "
            f"new features {features}",
        )
    if sorted(manifest.classes) != sorted(classes):
        return ChampionScore(
            version,
            None,
            f"classes differ: champion {list(manifest.classes)}, new {classes}",
        )
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    proba = model.predict_proba(x_test.to_numpy(dtype=np.float32))
    # Reorder the champion's probability columns into this round's class order.
    order = [list(manifest.classes).index(c) for c in classes]
    metrics = held_out_metrics(y_test, proba[:, order], classes)
    return ChampionScore(version, metrics[metric])


def register(name: str, model_uri: str, tags: dict[str, str]) -> ModelVersion:
    """Create a new version of `name` (creating the model if needed) and wait until it is
    READY. No alias is touched here."""
    import mlflow

    version = mlflow.register_model(model_uri, name, await_registration_for=300, tags=tags)
    if version.status != "READY":
        raise MlflowException(f"model version {name} v{version.version} is {version.status}")
    return version


def registry_state(client: MlflowClient, name: str) -> list[dict[str, str]]:
    """Versions of `name`, newest first, with their aliases and gate decisions."""
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"]):
        rows.append(
            {
                "version": str(mv.version),
                "aliases": ",".join(sorted(aliases.get(str(mv.version), []))) or "-",
                "decision": mv.tags.get(contract.TAG_GATE_DECISION, "-"),
                "score": mv.tags.get(contract.TAG_GATE_SCORE, "-"),
                "onnx": mv.tags.get(contract.TAG_ONNX, "-"),
            }
        )
    return rows
