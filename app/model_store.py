"""The model store: resolves the alias, loads versions beside the live one, swaps atomically.

The live model is one attribute, `current`. The hot path reads it once per request, so a
request that started on the old model finishes on it; a swap is one reference assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
import structlog

from app import metrics
from app.drift import DriftWindow, FeatureRanges
from app.errors import ModelLoadError, ModelRefused
from app.predictors import Predictor, load_predictor
from app.registry import Registry, RegistryUnavailable, VersionRef
from app.settings import Settings, Traffic
from training import contract, mlmodel

log = structlog.get_logger("app.model_store")
T = TypeVar("T")
# Rows of the input example shown as example bodies (GET /model, V2 model metadata).
EXAMPLE_ROWS = 3


@dataclass(frozen=True)
class LoadedModel:
    ref: VersionRef
    features: tuple[str, ...]
    predictor: Predictor
    # None: the version has no baseline statistics (a plain MLflow model not yet adopted).
    drift: DriftWindow | None
    loaded_at: float
    run_metrics: dict[str, float]
    manifest: contract.Manifest | None  # mlstack's extras, when the version carries them
    classes: tuple[str, ...]  # the order of the predictor's probability columns
    files: mlmodel.ModelFiles  # what the version's MLmodel says
    # A few rows of the version's input example (None without one), for example bodies.
    examples: np.ndarray | None
    # Probability columns in the estimator's own `classes_` order (its classes sorted, as
    # scikit-learn keeps them): what MLflow's and KServe's sklearn servers answer. None when
    # that is already the order of `classes`.
    estimator_order: list[int] | None
    # Metric children bound once per version, so the hot path does no label lookups.
    class_counters: tuple[Any, ...] = field(repr=False)
    confidence: Any = field(repr=False)
    # The baseline's training ranges and the values seen outside them; None without a
    # baseline or with one that predates ranges (nothing is counted then).
    ranges: FeatureRanges | None = None
    # The header every prediction answer carries.
    version_header: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False)

    @property
    def version(self) -> str:
        return self.ref.version

    def __post_init__(self) -> None:
        header = (
            (b"x-model-version", self.ref.version.encode()),
            (b"x-model-alias", self.ref.alias.encode()),
        )
        object.__setattr__(self, "version_header", header)


def load_version(
    ref: VersionRef, directory: Path, settings: Settings, run_metrics: dict[str, float]
) -> LoadedModel:
    """Load a downloaded version and check it with a smoke prediction on its input example
    (or, without one, on a row built from its signature).

    Raises ModelLoadError (the files do not load) or ModelRefused (they load but are unfit,
    or the version is of a kind mlstack does not serve: the message names what to change).
    """
    try:
        files = mlmodel.read_mlmodel((directory / contract.MLMODEL_FILE).read_bytes())
        manifest = _optional(directory / contract.MANIFEST_FILE, contract.Manifest.from_json)
        baseline = _optional(directory / contract.BASELINE_FILE, contract.baseline_from_json)
    except mlmodel.Unservable as exc:
        raise ModelRefused(f"v{ref.version}: {exc}") from exc
    except (OSError, contract.ManifestError) as exc:
        raise ModelLoadError(f"{ref.name} v{ref.version}: {exc}") from exc
    features = files.features
    if manifest is not None and manifest.features != features:
        raise ModelRefused(
            f"v{ref.version}: the manifest's features {list(manifest.features)} differ from the "
            f"signature's {list(features)}"
        )
    predictor = load_predictor(directory, files, settings.trust(), manifest)
    rows, from_example = _smoke_rows(ref, directory, files, features)
    proba = predictor.predict_proba(rows)
    if proba.shape != (len(rows), len(predictor.classes)) or not np.allclose(
        proba.sum(axis=1), 1.0, atol=1e-3
    ):
        raise ModelRefused(f"v{ref.version}: smoke prediction gave probabilities {proba.tolist()}")
    drift = ranges = None
    if baseline is not None:
        try:
            drift = DriftWindow(features, baseline, settings.drift_window)
        except ValueError as exc:
            raise ModelRefused(f"v{ref.version}: {exc}") from exc
        ranges = _ranges(ref, features, baseline)
    return LoadedModel(
        ref=ref,
        features=features,
        predictor=predictor,
        drift=drift,
        loaded_at=time.time(),
        run_metrics=run_metrics,
        manifest=manifest,
        classes=predictor.classes,
        files=files,
        estimator_order=_estimator_order(predictor.class_values),
        examples=rows[:EXAMPLE_ROWS] if from_example else None,
        class_counters=tuple(metrics.PREDICTIONS.labels(ref.version, c) for c in predictor.classes),
        confidence=metrics.CONFIDENCE.labels(ref.version),
        ranges=ranges,
    )


def _ranges(
    ref: VersionRef, features: tuple[str, ...], baseline: dict[str, contract.FeatureBaseline]
) -> FeatureRanges | None:
    """The range counter of a version, its metric children bound (at 0) for the features with
    a range; None when the baseline has no ranges."""
    if all(baseline[f].range is None for f in features):
        log.info("model.ranges_unknown", version=ref.version)
        return None
    counters = [
        metrics.OUT_OF_RANGE.labels(ref.version, f) if baseline[f].range is not None else None
        for f in features
    ]
    return FeatureRanges(features, baseline, counters)


def _estimator_order(values: tuple[Any, ...]) -> list[int] | None:
    try:
        order = sorted(range(len(values)), key=lambda i: values[i])
    except TypeError:  # classes of mixed types: scikit-learn could not have sorted them either
        return None
    return None if order == list(range(len(values))) else order


def in_estimator_order(model: LoadedModel, proba: np.ndarray) -> np.ndarray:
    """`proba` (columns in `model.classes` order) with its columns in `classes_` order."""
    order = model.estimator_order
    return proba if order is None else np.ascontiguousarray(proba[:, order])


def _optional(path: Path, parse: Callable[[bytes], T]) -> T | None:
    return parse(path.read_bytes()) if path.is_file() else None


def _smoke_rows(
    ref: VersionRef, directory: Path, files: mlmodel.ModelFiles, features: tuple[str, ...]
) -> tuple[np.ndarray, bool]:
    """Rows to check the model with, and whether they come from its input example."""
    example_path = directory / (files.input_example or contract.INPUT_EXAMPLE_FILE)
    if not example_path.is_file():
        log.info("model.smoke_from_signature", version=ref.version, features=len(features))
        return np.zeros((1, len(features)), dtype=np.float32), False
    try:
        example = orjson.loads(example_path.read_bytes())
        columns = example.get("columns") if isinstance(example, dict) else None
        if columns != list(features):
            raise ModelRefused(
                f"v{ref.version}: input example columns {columns} differ from the signature "
                f"{list(features)}"
            )
        rows = np.asarray(example["data"], dtype=np.float32).reshape(-1, len(features))
        return rows, True
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelRefused(f"v{ref.version}: the input example is unreadable: {exc}") from exc


class ModelStore:
    """Holds the live model and follows the alias in a background task."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current: LoadedModel | None = None
        self._registry = Registry(
            settings.tracking_uri, settings.mlflow_timeout_seconds, settings.mlflow_credentials()
        )
        self._refused: set[str] = set()
        self.last_error: str | None = None
        # The version the alias points to that was refused while another one serves, and why.
        self.refused: tuple[str, str] | None = None
        # The shadow alias's version, loaded beside the live one (None: none to load, or off).
        self.shadow: LoadedModel | None = None
        self.shadow_error: str | None = None
        self.traffic: Traffic = read_traffic(settings.traffic_file, settings.traffic())
        self._traffic_stamp = _stamp(settings.traffic_file)
        self._wake = asyncio.Event()
        # Called with (live, shadow) whenever either changes (the shadow queue's figures).
        self.on_pair: Callable[[LoadedModel | None, LoadedModel | None], None] | None = None

    def wake(self) -> None:
        """Check the aliases now instead of at the next poll (a webhook delivery)."""
        self._wake.set()

    def close(self) -> None:
        self._registry.close()

    async def refresh(self) -> bool:
        """Check the alias once; load and swap in a new version. True when a swap happened.

        Raises RegistryUnavailable when MLflow cannot be reached (the live model stays).
        """
        s = self.settings
        ref = await asyncio.to_thread(self._registry.resolve, s.model_name, s.model_alias)
        swapped = await self._follow_live(ref)
        await self._follow_shadow()
        return swapped

    async def _follow_live(self, ref: VersionRef) -> bool:
        live = self.current
        if live is not None and live.ref.key == ref.key:
            if live.ref != ref:  # the same files under a changed alias or run data
                self.current = dataclasses.replace(live, ref=ref)
            self.refused = None
            return False
        if ref.key in self._refused:
            return False
        started = time.perf_counter()
        shadow = self.shadow
        try:
            if shadow is not None and shadow.ref.key == ref.key:
                # The shadow's version was promoted: it is loaded and checked already.
                candidate = dataclasses.replace(shadow, ref=ref, loaded_at=time.time())
            else:
                candidate = await self._load_beside(ref, live)
        except ModelRefused as exc:
            self._refused.add(ref.key)
            metrics.RELOADS.labels("refused").inc()
            log.error("model.swap_refused", version=ref.version, reason=str(exc))
            self.last_error = str(exc)
            self.refused = (ref.version, str(exc))
            return False
        except ModelLoadError as exc:
            metrics.RELOADS.labels("failed").inc()
            log.error("model.load_failed", version=ref.version, reason=str(exc))
            self.last_error = str(exc)
            return False
        seconds = time.perf_counter() - started
        metrics.MODEL_LOAD_DURATION.observe(seconds)
        metrics.RELOADS.labels("success").inc()
        self._swap(candidate)
        self.refused = None
        log.info(
            "model.loaded",
            name=ref.name,
            alias=ref.alias,
            version=ref.version,
            previous=live.version if live else None,
            predictor=candidate.predictor.kind,
            drift_baseline=candidate.drift is not None,
            feature_ranges=candidate.ranges is not None,
            seconds=round(seconds, 3),
        )
        self.last_error = None
        return True

    async def _follow_shadow(self) -> None:
        """Load the shadow alias's version beside the live one when the traffic needs it and
        it is another version; drop it otherwise. Never touches `current`, so it never blocks
        readiness. A shadow that cannot be loaded is logged and left out."""
        s, live = self.settings, self.current
        if not s.shadow_alias or not self.traffic.active or live is None:
            self._set_shadow(None)
            return
        try:
            ref = await asyncio.to_thread(self._registry.resolve, s.model_name, s.shadow_alias)
        except ModelLoadError:  # the alias does not exist (yet): nothing to shadow
            self.shadow_error = None
            self._set_shadow(None)
            return
        if ref.key == live.ref.key:
            self.shadow_error = None
            self._set_shadow(None)
            return
        shadow = self.shadow
        if shadow is not None and shadow.ref.key == ref.key:
            return
        if ref.key in self._refused:
            self._set_shadow(None)
            return
        try:
            candidate = await self._load_beside(ref, live)
        except ModelRefused as exc:
            self._refused.add(ref.key)
            self.shadow_error = str(exc)
            log.error("shadow.refused", alias=ref.alias, version=ref.version, reason=str(exc))
            self._set_shadow(None)
            return
        except ModelLoadError as exc:
            self.shadow_error = str(exc)
            log.error("shadow.load_failed", alias=ref.alias, version=ref.version, reason=str(exc))
            self._set_shadow(None)
            return
        self.shadow_error = None
        self._set_shadow(candidate)
        log.info(
            "shadow.loaded",
            alias=ref.alias,
            version=ref.version,
            live=live.version,
            shadow_percent=self.traffic.shadow_percent,
            canary_percent=self.traffic.canary_percent,
        )

    def _set_shadow(self, shadow: LoadedModel | None) -> None:
        old = self.shadow
        if old is shadow:
            return
        self.shadow = shadow
        if old is not None:
            metrics.SHADOW_MODEL_INFO.remove(old.ref.name, old.version, old.ref.alias)
            if shadow is None:
                log.info("shadow.unloaded", version=old.version)
        if shadow is not None:
            ref = shadow.ref
            metrics.SHADOW_MODEL_INFO.labels(ref.name, ref.version, ref.alias).set(1)
        if self.on_pair is not None:
            self.on_pair(self.current, shadow)

    async def watch_traffic(self, interval: float = 1.0) -> None:
        """Re-read MLSTACK_TRAFFIC_FILE when it changes (a ConfigMap update swaps it); a bad
        file is logged and the shares in force stay. Runs until cancelled."""
        path = self.settings.traffic_file
        if path is None:
            return
        while True:
            await asyncio.sleep(interval)
            stamp = _stamp(path)
            if stamp == self._traffic_stamp:
                continue
            self._traffic_stamp = stamp
            try:
                traffic = read_traffic(path, self.settings.traffic())
            except ValueError as exc:
                log.error("traffic.unreadable", path=str(path), error=str(exc))
                continue
            if traffic != self.traffic:
                log.info(
                    "traffic.changed",
                    shadow_percent=traffic.shadow_percent,
                    canary_percent=traffic.canary_percent,
                )
                self.traffic = traffic
                self.wake()  # load or drop the shadow at once

    async def _load_beside(self, ref: VersionRef, live: LoadedModel | None) -> LoadedModel:
        """Download and load `ref`; ModelRefused when its features differ from `live`'s (the
        requests the live model takes must fit it)."""
        candidate = await asyncio.to_thread(self._download_and_load, ref)
        if live is not None and candidate.features != live.features:
            raise ModelRefused(
                f"v{ref.version} expects features {list(candidate.features)}, "
                f"the live v{live.version} {list(live.features)}"
            )
        return candidate

    def _download_and_load(self, ref: VersionRef) -> LoadedModel:
        directory = self._registry.download(ref, self.settings.cache_dir)
        run_metrics = self._registry.run_metrics(ref.run_id)
        return load_version(ref, directory, self.settings, run_metrics)

    def _swap(self, candidate: LoadedModel) -> None:
        old = self.current
        self.current = candidate  # the swap: one reference assignment
        if old is not None:
            metrics.MODEL_INFO.remove(old.ref.name, old.ref.version, old.ref.alias)
        # Drift is relative to a version's own baseline: old values would mislead.
        metrics.FEATURE_DRIFT.clear()
        metrics.DRIFT_WINDOW_ROWS.set(0)
        metrics.MODEL_INFO.labels(candidate.ref.name, candidate.version, candidate.ref.alias).set(1)
        metrics.MODEL_LOADED.set(1)
        shadow = self.shadow
        if shadow is not None and shadow.ref.key == candidate.ref.key:
            self._set_shadow(None)  # promoted: it is the live model now
        elif self.on_pair is not None:
            self.on_pair(candidate, shadow)

    async def run(self) -> None:
        """Follow the alias forever: every poll interval with a model, with exponential
        back-off (capped) while none is loaded. Never raises, so the process never exits."""
        delay = 1.0
        while True:
            try:
                await self.refresh()
            except RegistryUnavailable as exc:
                self.last_error = f"MLflow unavailable: {exc}"
                log.warning(
                    "registry.unavailable",
                    error=str(exc),
                    serving=self.current is not None,
                    retry_seconds=delay if self.current is None else None,
                )
            except ModelLoadError as exc:
                self.last_error = str(exc)
                log.warning("model.unresolved", error=str(exc))
            except Exception as exc:  # a bug must not stop the follower: log and go on
                self.last_error = repr(exc)
                log.exception("model.refresh_crashed")
            if self.current is not None:
                delay = 1.0
                await self._sleep(self.settings.poll_seconds)
            else:
                await self._sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_seconds)

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when `wake` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What changes when a file is replaced or rewritten (None: absent or unset)."""
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


_TRAFFIC_KEYS = ("shadow_percent", "canary_percent")


def read_traffic(path: Path | None, default: Traffic) -> Traffic:
    """The shares of MLSTACK_TRAFFIC_FILE, each key falling back to `default`; `default` without
    a file. Raises ValueError naming the key or the file at fault."""
    if path is None or not path.exists():
        return default
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"MLSTACK_TRAFFIC_FILE {path}: unreadable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"MLSTACK_TRAFFIC_FILE {path}: expected an object with {_TRAFFIC_KEYS}")
    unknown = sorted(set(data) - set(_TRAFFIC_KEYS))
    if unknown:
        raise ValueError(
            f"MLSTACK_TRAFFIC_FILE {path}: unknown keys {unknown}; known: {list(_TRAFFIC_KEYS)}"
        )
    values = {}
    for key in _TRAFFIC_KEYS:
        value = data.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise ValueError(
                f"MLSTACK_TRAFFIC_FILE {path}: {key} must be a number from 0 to 100, not {value!r}"
            )
        values[key] = float(value)
    return Traffic(**values)
