"""The one settings class of the inference service (environment `MLSTACK_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.predictors import DEFAULT_ONNX_MAX_BYTES, DEFAULT_TRUSTED_TYPES, Trust
from kernel.keys import KeySource, key_source
from kernel.paths import user_cache_dir
from training import contract


@dataclass(frozen=True)
class Limits:
    """What one prediction request may hold, whatever its protocol."""

    max_body_bytes: int
    max_batch_rows: int


@dataclass(frozen=True)
class PredictionLogSettings:
    """Where and how prediction records are shipped (the shipper's whole configuration)."""

    url: str
    api_key: KeySource | None
    api_key_header: str
    batch: int
    interval_seconds: float
    queue: int
    features: bool  # ship each request's raw feature values too
    timeout_seconds: float


@dataclass(frozen=True)
class Traffic:
    """The live shares of the challenger: shadowed and canary requests, in percent."""

    shadow_percent: float
    canary_percent: float

    @property
    def active(self) -> bool:
        """Whether the shadow alias's version is needed at all."""
        return self.shadow_percent > 0 or self.canary_percent > 0


@dataclass(frozen=True)
class ProtocolSettings:
    """Choices of the protocol renderers."""

    v1_probabilities: bool  # KServe V1 answers probabilities instead of labels


class Settings(BaseSettings):
    """Every field is an environment variable `MLSTACK_<FIELD>`; MLflow comes from
    `MLFLOW_TRACKING_URI`. The README's settings table lists them all."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_", extra="ignore")

    tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking server (environment MLFLOW_TRACKING_URI).",
    )
    mlflow_username: str | None = Field(
        None,
        validation_alias="MLFLOW_TRACKING_USERNAME",
        description="MLflow account of the service (environment MLFLOW_TRACKING_USERNAME), for "
        "an MLflow with basic auth; a read-only account is all it needs.",
    )
    mlflow_password: SecretStr | None = Field(
        None,
        validation_alias="MLFLOW_TRACKING_PASSWORD",
        description="Password of that account (environment MLFLOW_TRACKING_PASSWORD).",
    )
    model_name: str = Field(contract.DEFAULT_MODEL_NAME, description="Registered model to serve.")
    model_alias: str = Field(contract.ALIAS_CHAMPION, description="Alias the service follows.")
    poll_seconds: float = Field(30.0, gt=0, description="How often the alias is checked.")
    retry_max_seconds: float = Field(
        30.0, gt=0, description="Longest back-off between attempts while no model is loaded."
    )
    mlflow_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one MLflow call.")
    cache_dir: Path = Field(
        default_factory=lambda: user_cache_dir("models"),
        description="Where downloaded versions are kept.",
    )
    host: str = Field("127.0.0.1", description="Listen address of `python -m app`.")
    port: int = Field(8080, ge=1, le=65535, description="Listen port of `python -m app`.")
    max_batch_rows: int = Field(
        1000, ge=1, description="Most rows in one prediction request (any protocol)."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=64, description="Largest prediction request body (any protocol)."
    )
    api_key: SecretStr | None = Field(
        None, description="API key for the prediction and model routes (enables auth)."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the API key, e.g. a mounted Secret (enables auth)."
    )
    api_key_header: str = Field("x-api-key", description="Header carrying the API key.")
    drift_window: int = Field(
        1000, ge=10, description="Recent rows kept to compute feature drift (PSI)."
    )
    drift_min_rows: int = Field(
        100, ge=1, description="Rows needed in the window before drift is exported."
    )
    drift_threshold: float = Field(
        0.2, gt=0, description="PSI above which GET /drift reports a feature as drifted."
    )
    refuse_out_of_range: bool = Field(
        False,
        description="Refuse (422) a prediction request holding a feature value outside the "
        "served version's training range (values outside are counted either way).",
    )
    prediction_log_url: str | None = Field(
        None, description="Control plane base URL to ship prediction records to (off if unset)."
    )
    prediction_log_api_key_file: Path | None = Field(
        None, description="File holding the control plane's API key."
    )
    prediction_log_batch: int = Field(
        200, ge=1, le=1000, description="Records per shipped batch (sent as soon as full)."
    )
    prediction_log_interval_seconds: float = Field(
        1.0, gt=0, description="Longest wait before a partial batch is shipped."
    )
    prediction_log_queue: int = Field(
        10_000, ge=1, description="Records kept while the control plane is away; oldest dropped."
    )
    prediction_log_features: bool = Field(
        False, description="Include raw feature values in prediction records."
    )
    v1_probabilities: bool = Field(
        False,
        description="KServe V1 `:predict` answers class probabilities instead of labels (a "
        'request\'s `"parameters": {"probabilities": ...}` decides for itself).',
    )
    skops_trusted_types: str = Field(
        ",".join(DEFAULT_TRUSTED_TYPES),
        description="Comma-separated types a skops model file may hold: a name ending in '.' "
        "trusts a module prefix. A version's own files never widen it.",
    )
    allow_pickle: bool = Field(
        False,
        description="Load pickle/cloudpickle model files (they run arbitrary code on load).",
    )
    onnx_max_bytes: int = Field(
        DEFAULT_ONNX_MAX_BYTES,
        ge=1,
        description="Largest ONNX model, its external-data files included, that is loaded.",
    )
    onnx_max_opset: int | None = Field(
        None,
        ge=1,
        description="Newest `ai.onnx` opset an ONNX model may import (unset: the newest the "
        "installed onnxruntime supports; it can only lower that bound).",
    )
    onnx_ml_max_opset: int | None = Field(
        None,
        ge=1,
        description="Newest `ai.onnx.ml` opset an ONNX model may import (unset: the newest the "
        "installed onnxruntime supports; it can only lower that bound).",
    )
    shadow_alias: str = Field(
        contract.ALIAS_CHALLENGER,
        description="Alias loaded beside the live model as its shadow (and the canary), when it "
        "points at another version; empty: never loaded.",
    )
    shadow_percent: float = Field(
        10.0,
        ge=0,
        le=100,
        description="Share of requests (percent) the shadow predicts too, after the answer is "
        "sent; 0 turns the shadow off (MLSTACK_TRAFFIC_FILE overrides it live).",
    )
    shadow_queue: int = Field(
        1000, ge=1, description="Requests waiting for the shadow; more are dropped and counted."
    )
    canary_percent: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Share of requests (percent) answered by the shadow alias's version itself "
        "(MLSTACK_TRAFFIC_FILE overrides it live).",
    )
    canary_header: str | None = Field(
        None,
        description="Header whose value picks a request's side of the canary (sticky per "
        "value); unset or absent from a request: its request id.",
    )
    traffic_file: Path | None = Field(
        None,
        description='JSON file `{"shadow_percent": .., "canary_percent": ..}`, re-read when it '
        "changes (a mounted ConfigMap): the shares change with no restart.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Secret MLflow signs webhook deliveries with (enables the receiver)."
    )
    webhook_secret_file: Path | None = Field(
        None, description="File holding that secret, e.g. a mounted Secret (enables it too)."
    )
    webhook_tolerance_seconds: float = Field(
        300.0,
        gt=0,
        description="Webhook deliveries whose timestamp is further than this from the clock are "
        "refused (replayed delivery ids within it are refused too).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_features: bool = Field(False, description="Log raw feature values of each request.")

    def mlflow_credentials(self) -> tuple[str, str] | None:
        """(user, password) for MLflow's basic auth, or None without an account.
        Raises ValueError when only one of the two is set."""
        if self.mlflow_username is None and self.mlflow_password is None:
            return None
        if not self.mlflow_username or self.mlflow_password is None:
            raise ValueError(
                "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or neither"
            )
        return self.mlflow_username, self.mlflow_password.get_secret_value()

    @model_validator(mode="after")
    def _one_key_source(self) -> Settings:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set MLSTACK_API_KEY or MLSTACK_API_KEY_FILE, not both")
        if self.webhook_secret is not None and self.webhook_secret_file is not None:
            raise ValueError("set MLSTACK_WEBHOOK_SECRET or MLSTACK_WEBHOOK_SECRET_FILE, not both")
        if self.drift_min_rows > self.drift_window:
            raise ValueError("MLSTACK_DRIFT_MIN_ROWS cannot exceed MLSTACK_DRIFT_WINDOW")
        return self

    @property
    def limits(self) -> Limits:
        return Limits(self.max_body_bytes, self.max_batch_rows)

    @property
    def protocols(self) -> ProtocolSettings:
        return ProtocolSettings(v1_probabilities=self.v1_probabilities)

    def prediction_log(self) -> PredictionLogSettings | None:
        """None when the prediction log is off. Raises ValueError for an unreadable key file."""
        if not self.prediction_log_url:
            return None
        return PredictionLogSettings(
            url=self.prediction_log_url,
            api_key=self.prediction_log_key(),
            api_key_header=self.api_key_header,
            batch=self.prediction_log_batch,
            interval_seconds=self.prediction_log_interval_seconds,
            queue=self.prediction_log_queue,
            features=self.prediction_log_features,
            timeout_seconds=self.mlflow_timeout_seconds,
        )

    def trust(self) -> Trust:
        types = tuple(t.strip() for t in self.skops_trusted_types.split(",") if t.strip())
        return Trust(
            skops_types=types,
            allow_pickle=self.allow_pickle,
            onnx_max_bytes=self.onnx_max_bytes,
            onnx_max_opset=self.onnx_max_opset,
            onnx_ml_max_opset=self.onnx_ml_max_opset,
        )

    def prediction_log_key(self) -> KeySource | None:
        """The control plane's key the shipper sends (re-read when its file changes), None
        without a file. Raises ValueError for an empty or unreadable file."""
        return key_source(
            None,
            self.prediction_log_api_key_file,
            setting="MLSTACK_PREDICTION_LOG_API_KEY_FILE",
            name="the prediction log's API key",
        )

    def webhook_secret_source(self) -> KeySource | None:
        """The webhook secret (a file's is re-read when it changes), None when the receiver is
        off. Raises ValueError for an empty secret or an unreadable file."""
        literal = self.webhook_secret.get_secret_value() if self.webhook_secret else None
        return key_source(
            literal,
            self.webhook_secret_file,
            setting="MLSTACK_WEBHOOK_SECRET_FILE",
            name="the webhook secret",
        )

    def traffic(self) -> Traffic:
        return Traffic(self.shadow_percent, self.canary_percent)

    def api_key_source(self) -> KeySource | None:
        """The API key (a file's is re-read when it changes), None when auth is off. Raises
        ValueError for an empty key or an unreadable file."""
        literal = self.api_key.get_secret_value() if self.api_key is not None else None
        return key_source(literal, self.api_key_file, setting="MLSTACK_API_KEY_FILE")


@lru_cache
def get_settings() -> Settings:
    return Settings()
