"""The one settings class of the control plane and the `mlstack` command
(environment `MLSTACK_CONTROL_*`).

The prefix is longer than the other programs' `MLSTACK_`: the inference service already reads
`MLSTACK_API_KEY`, `MLSTACK_PORT` and `MLSTACK_LOG_LEVEL`, and a shell (or `make demo`) that runs
both must not hand the service's key or port to the control plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.keys import KeySource, key_source
from kernel.paths import user_data_dir
from training import contract

ENV_PREFIX = "MLSTACK_CONTROL_"


class ControlSettings(BaseSettings):
    """Every field is an environment variable `MLSTACK_CONTROL_<FIELD>`; MLflow comes from
    `MLFLOW_TRACKING_URI`. The server and the command read the same class: the command's
    `url` and `api_key` are the server's address and key."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking server (environment MLFLOW_TRACKING_URI).",
    )
    model_name: str = Field(
        contract.DEFAULT_MODEL_NAME, description="Registered model `status` and `rollback` show."
    )
    main_metric: str = Field(
        "f1_macro", description="Held-out metric that picks each experiment's best run."
    )
    host: str = Field("127.0.0.1", description="Listen address of `mlstack serve`.")
    port: int = Field(8090, ge=1, le=65535, description="Listen port of `mlstack serve`.")
    url: str = Field(
        "http://127.0.0.1:8090", description="Control plane base URL the `mlstack` command calls."
    )
    database_uri: SecretStr | None = Field(
        None,
        description="SQLAlchemy URI of the prediction log, e.g. postgresql://user:pw@host/db "
        "(default: SQLite at `sqlite_path`).",
    )
    sqlite_path: Path = Field(
        default_factory=lambda: user_data_dir("control", "predictions.db"),
        description="SQLite file of the prediction log when no database URI is set.",
    )
    retention_days: float = Field(
        30.0, ge=0, description="Prediction records older than this are deleted (0: keep all)."
    )
    retention_interval_seconds: float = Field(3600.0, gt=0, description="How often retention runs.")
    max_batch_records: int = Field(
        1000, ge=1, description="Most records in one POST /v1/predictions batch."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest POST /v1/predictions body."
    )
    api_key: SecretStr | None = Field(
        None, description="API key of every /v1 route (enables auth; the command sends it too)."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the API key, e.g. a mounted Secret (enables auth)."
    )
    api_key_header: str = Field("x-api-key", description="Header carrying the API key.")
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of the command's calls to the control plane."
    )
    inference_url: str | None = Field(
        None,
        description="Inference service whose GET /drift `status` summarises, besides the "
        "inference pods it finds in the cluster.",
    )
    namespace: str = Field(
        "default", description="Kubernetes namespace of training Jobs and inference pods."
    )
    release: str | None = Field(None, description="Helm release to look in (default: any).")
    max_training_jobs: int = Field(
        1, ge=1, description="Training Jobs allowed to be pending or running at once."
    )
    training_template_configmap: str | None = Field(
        None,
        description="ConfigMap whose `job.yaml` is the training Job to copy "
        "(default: the newest training Job the chart created).",
    )
    training_log_lines: int = Field(
        20, ge=0, le=1000, description="Last log lines GET /v1/training-jobs/{id} returns."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Secret MLflow signs webhook deliveries with (enables POST "
        "/v1/webhooks/mlflow, which relays alias events to every inference pod).",
    )
    webhook_secret_file: Path | None = Field(
        None, description="File holding that secret, e.g. a mounted Secret (enables it too)."
    )
    webhook_tolerance_seconds: float = Field(
        300.0,
        gt=0,
        description="Deliveries whose timestamp is further than this from the clock are "
        "refused (replayed delivery ids within it are refused too).",
    )
    webhook_relay_timeout_seconds: float = Field(
        5.0, gt=0, description="Timeout of relaying one delivery to one inference pod."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )

    @field_validator("main_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return contract.known_metric(value)

    @model_validator(mode="after")
    def _one_key_source(self) -> ControlSettings:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError(f"set {ENV_PREFIX}API_KEY or {ENV_PREFIX}API_KEY_FILE, not both")
        return self

    def webhook_secret_source(self) -> KeySource | None:
        """The webhook secret (a file's is re-read when it changes), None when the receiver is
        off. Raises ValueError for an empty secret or an unreadable file."""
        if self.webhook_secret is not None and self.webhook_secret_file is not None:
            raise ValueError(
                f"set {ENV_PREFIX}WEBHOOK_SECRET or {ENV_PREFIX}WEBHOOK_SECRET_FILE, not both"
            )
        literal = self.webhook_secret.get_secret_value() if self.webhook_secret else None
        return key_source(
            literal,
            self.webhook_secret_file,
            setting=f"{ENV_PREFIX}WEBHOOK_SECRET_FILE",
            name="the webhook secret",
        )

    def api_key_source(self) -> KeySource | None:
        """The key of every /v1 route (a file's is re-read when it changes), None when auth is
        off. Raises ValueError for an empty key or an unreadable file."""
        literal = self.api_key.get_secret_value() if self.api_key is not None else None
        return key_source(
            literal,
            self.api_key_file,
            setting=f"{ENV_PREFIX}API_KEY_FILE",
            name="the control plane API key",
        )

    def resolved_api_key(self) -> bytes | None:
        """The key as it is now (what the command sends), None when auth is off. Raises
        ValueError for an empty key or an unreadable file."""
        source = self.api_key_source()
        return source.current() if source is not None else None

    def database_url(self) -> str:
        """The prediction log's SQLAlchemy URL (contains the password, if any)."""
        if self.database_uri is not None:
            return self.database_uri.get_secret_value()
        return f"sqlite:///{self.sqlite_path}"
