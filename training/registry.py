"""MLflow: reaching the server, scoring the current champion, registering and aliasing."""

from __future__ import annotations

import base64
import contextlib
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.environment_variables import MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_USERNAME
from mlflow.exceptions import MlflowException

from app.predictors import Predictor
from training import contract, mlmodel
from training.evaluate import held_out_metrics
from training.gate import ChampionScore, Decision, decide


class MlflowUnavailable(Exception):
    """MLflow could not be reached (or refused us) within the configured time."""


def wait_for_mlflow(tracking_uri: str, timeout_seconds: float) -> None:
    """Block until an HTTP tracking server answers API calls, retrying with backoff.

    `/health` alone is not enough: MLflow's host check answers 403 to API calls while
    `/health` stays 200, so an API call is made too, with the account MLflow's own client uses
    (MLFLOW_TRACKING_USERNAME/PASSWORD). A 401 with an account is retried until the deadline:
    in the chart the account is created by a Job that may still be running. Non-HTTP URIs need
    no server.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    base = tracking_uri.rstrip("/")
    probe = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    username = MLFLOW_TRACKING_USERNAME.get()
    headers = {}
    if username:
        token = f"{username}:{MLFLOW_TRACKING_PASSWORD.get() or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
    deadline = time.monotonic() + timeout_seconds
    delay = 0.5
    last_error = "no attempt made"
    while True:
        try:
            request = urllib.request.Request(probe, headers=headers)
            # The scheme is http or https, checked at the top.
            with urllib.request.urlopen(request, timeout=5) as response:  # nosec B310
                response.read()
            return
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code} from {probe}"
            if exc.code == 401 and not username:
                raise MlflowUnavailable(
                    f"MLflow at {base} asks for an account ({last_error}): set "
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                ) from exc
            if exc.code == 401:
                last_error = (
                    f"MLflow refuses the account {username!r} ({last_error}): it does not exist "
                    "yet, or its password differs from MLFLOW_TRACKING_PASSWORD"
                )
            if exc.code == 403:
                raise MlflowUnavailable(
                    f"MLflow at {base} refused the request ({last_error}); check the account's "
                    "permissions or the server's --allowed-hosts"
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
        # MLflow's basic-auth app answers 403, not 404, for a model that does not exist yet.
        if exc.error_code == "PERMISSION_DENIED" and not client.search_registered_models(
            filter_string=f"name = '{name}'"
        ):
            return None
        raise


def version_files(client: MlflowClient, name: str, version: str) -> mlmodel.ModelFiles:
    """What a version's MLmodel says (features from its signature), fetching that file alone.
    Raises Unservable."""
    import mlflow.artifacts

    root = client.get_model_version_download_uri(name, version).rstrip("/")
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{root}/{contract.MLMODEL_FILE}", dst_path=tmp
        )
        return mlmodel.read_mlmodel(Path(local).read_bytes())


@contextlib.contextmanager
def downloaded_model(
    client: MlflowClient, name: str, version: str
) -> Iterator[tuple[Path, mlmodel.ModelFiles, Predictor]]:
    """A version's model, downloaded once into a temporary folder and loaded as the service
    loads it (skops types limited to scikit-learn, numpy and scipy; pickle allowed, as
    MLflow's own loader would: this runs with the caller's trust). Raises Unservable."""
    import mlflow.artifacts

    from app.predictors import DEFAULT_TRUSTED_TYPES, Trust, load_predictor

    root = client.get_model_version_download_uri(name, version).rstrip("/")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(mlflow.artifacts.download_artifacts(artifact_uri=root, dst_path=tmp))
        files = mlmodel.read_mlmodel((directory / contract.MLMODEL_FILE).read_bytes())
        yield directory, files, load_predictor(directory, files, Trust(DEFAULT_TRUSTED_TYPES, True))


def probabilities(predictor: Predictor, x: pd.DataFrame) -> np.ndarray:
    """`predictor`'s class probabilities on the DataFrame `x` (signature order)."""
    return predictor.predict_proba(np.ascontiguousarray(x.to_numpy(dtype=np.float32)))


def score_champion(
    client: MlflowClient,
    name: str,
    metric: str,
    x_test: pd.DataFrame,
    y_test: np.ndarray,
    classes: list[str],
    exclude: str | None = None,
) -> ChampionScore | None:
    """The current champion's `metric` on this held-out data, or why it has none. None when
    there is no champion (or it is `exclude`, the version being gated)."""
    champion = alias_version(client, name, contract.ALIAS_CHAMPION)
    if champion is None or str(champion.version) == exclude:
        return None
    version = str(champion.version)
    features = [str(c) for c in x_test.columns]
    try:
        with downloaded_model(client, name, version) as (_, files, predictor):
            if list(files.features) != features:
                return ChampionScore(
                    version,
                    None,
                    f"signature differs: champion features {list(files.features)}, "
                    f"new features {features}",
                )
            proba, champion_classes = probabilities(predictor, x_test), list(predictor.classes)
    except (MlflowException, OSError, contract.ManifestError) as exc:
        return ChampionScore(version, None, f"its model cannot be read ({exc})")
    except Exception as exc:  # a champion that no longer loads cannot be compared
        return ChampionScore(version, None, f"it does not load ({exc})")
    if sorted(champion_classes) != sorted(classes):
        return ChampionScore(
            version,
            None,
            f"classes differ: champion {champion_classes}, new {classes}",
        )
    # Reorder the champion's probability columns into this round's class order.
    order = [champion_classes.index(c) for c in classes]
    metrics = held_out_metrics(y_test, proba[:, order], classes)
    return ChampionScore(version, metrics[metric])


def previous_tag(alias: str) -> str:
    """The version tag recording which version held `alias` before it moved to this one."""
    return f"{contract.TAG_PREVIOUS_HOLDER_PREFIX}{alias}"


def move_alias(client: MlflowClient, name: str, alias: str, version: str) -> str | None:
    """Point `alias` of `name` at `version`, recording the previous holder on `version` (the
    tag rollback reads). Returns the previous holder. The alias moves last; when setting it
    fails, the tag is put back as it was. Callers check compatibility before calling."""
    current = alias_version(client, name, alias)
    previous = None if current is None else str(current.version)
    if previous == version:
        return previous
    tag = previous_tag(alias)
    recorded = (client.get_model_version(name, version).tags or {}).get(tag)
    _record(client, name, version, tag, previous, recorded)
    try:
        client.set_registered_model_alias(name, alias, version)
    except Exception:
        _record(client, name, version, tag, recorded, previous)  # leave it as it was
        raise
    return previous


def _record(
    client: MlflowClient, name: str, version: str, tag: str, value: str | None, now: str | None
) -> None:
    """Set `tag` to `value` (it is `now`); None removes it: a stale record of an earlier
    holder would make rollback jump back to that one."""
    if value is not None:
        client.set_model_version_tag(name, version, tag, value)
    elif now is not None:
        client.delete_model_version_tag(name, version, tag)


def apply_gate(
    client: MlflowClient,
    name: str,
    version: str,
    metric: str,
    score: float,
    champion: ChampionScore | None,
    margin: float,
    floor: float,
    force: bool,
) -> Decision:
    """Decide champion or challenger for `version`, tag the version with the decision and
    its reason, then move the alias: what the round, `mlstack gate` and `log_classifier` do."""
    decision = decide(metric, score, champion, margin, floor, force)
    tags = {
        contract.TAG_GATE_DECISION: decision.alias,
        contract.TAG_GATE_REASON: decision.reason,
        contract.TAG_GATE_METRIC: metric,
        contract.TAG_GATE_SCORE: f"{score:.6f}",
    }
    if champion is not None:
        tags[contract.TAG_GATE_CHAMPION_VERSION] = champion.version
        if champion.score is not None:
            tags[contract.TAG_GATE_CHAMPION_SCORE] = f"{champion.score:.6f}"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    move_alias(client, name, decision.alias, version)
    return decision


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


def gate_version(
    client: MlflowClient,
    name: str,
    version: str,
    data: Path,
    target: str,
    metric: str,
    margin: float,
    floor: float,
    force: bool,
) -> tuple[Decision, float, ChampionScore | None]:
    """Run the round's quality gate for an existing version on the held-out CSV `data`.

    Scores the version and the current champion on the same rows, tags the version and moves
    the alias exactly as the round does (apply_gate). Raises DatasetError naming the column
    or line, contract.ManifestError for an unservable version."""
    from training.data import DatasetError, load_sample

    with downloaded_model(client, name, version) as (_, files, predictor):
        x, labels, _ = load_sample(data, files.features, target)
        assert labels is not None
        proba, classes = probabilities(predictor, x), list(predictor.classes)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise DatasetError(
            f"column {target!r} holds labels {name} v{version} does not know: {unknown} "
            f"(its classes: {classes})"
        )
    ordered = sorted(classes)
    proba = proba[:, [classes.index(c) for c in ordered]]
    try:
        score = held_out_metrics(labels.to_numpy(), proba, ordered)[metric]
    except ValueError as exc:  # e.g. a class with no row: roc_auc_ovr is undefined
        raise DatasetError(
            f"column {target!r}: the gate metrics cannot be computed ({exc})"
        ) from exc
    champion = score_champion(
        client, name, metric, x, labels.to_numpy(), ordered, exclude=str(version)
    )
    decision = apply_gate(client, name, str(version), metric, score, champion, margin, floor, force)
    return decision, score, champion
