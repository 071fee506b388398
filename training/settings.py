"""The one settings class of `python -m training`: environment `MLSTACK_*`, CLI flags on top."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from training import contract

FAMILIES: tuple[str, ...] = (
    "logreg",
    "random_forest",
    "svm",
    "hist_gradient_boosting",
    "gradient_boosting",
    "baseline",
)
DEFAULT_FAMILIES: tuple[str, ...] = ("logreg", "random_forest", "svm", "hist_gradient_boosting")


class TrainingSettings(BaseSettings):
    """Training round settings. Each field is also a CLI flag (`--field-name`)."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_", extra="ignore")

    dataset: Literal["iris", "digits", "file", "csv"] = Field(
        "iris", description="Built-in dataset, or `file` (implied by --data; `csv` is the same)."
    )
    data: str | None = Field(
        None,
        description="CSV (.csv, .csv.gz) or Parquet (.parquet) file to train on: a path, an "
        "s3:// or an https:// URL (needs --target).",
    )
    csv: Path | None = Field(None, description="A local CSV file to train on (same as --data).")
    target: str | None = Field(None, description="Target column of the data file.")
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias="MLFLOW_S3_ENDPOINT_URL",
        description="S3 endpoint of s3:// data for S3-compatible stores, the variable MLflow "
        "reads for its artifacts (environment only; empty for AWS).",
    )
    model_name: str = Field(contract.DEFAULT_MODEL_NAME, description="Registered model name.")
    experiment: str = Field(contract.DEFAULT_EXPERIMENT, description="MLflow experiment name.")
    # NoDecode: the environment gives "a,b" (split below), not a JSON list.
    candidates: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_FAMILIES,
        description=f"Comma-separated families to search, from: {', '.join(FAMILIES)}.",
    )
    test_size: float = Field(0.25, gt=0.0, lt=1.0, description="Held-out fraction.")
    cv_folds: int = Field(5, ge=2, le=20, description="Stratified CV folds on the train split.")
    seed: int = Field(42, description="Seed for splits and estimators.")
    metric: str = Field("f1_macro", description="Held-out metric the gate compares.")
    margin: float = Field(
        0.0, ge=0.0, description="Minimum improvement over the champion needed to promote."
    )
    min_score: float = Field(0.7, description="Absolute floor the gate metric must clear.")
    force: bool = Field(False, description="Promote even when the champion's signature differs.")
    n_jobs: int | None = Field(
        None,
        ge=1,
        description="Worker processes of the search (default: the cores the process is given, "
        "its cgroup CPU quota included).",
    )
    svm_max_rows: int = Field(
        20_000,
        ge=0,
        description="Training rows above which the svm family is skipped (its fit grows faster "
        "than the rows).",
    )
    halving_min_rows: int = Field(
        20_000,
        ge=0,
        description="Training rows from which searches use successive halving on growing "
        "subsets instead of an exhaustive grid.",
    )
    time_budget_seconds: float = Field(
        7200.0,
        gt=0.0,
        description="No family starts after this many seconds of the round; the best so far "
        "is registered, the skipped families recorded.",
    )
    progress_seconds: float = Field(
        15.0, gt=0.0, description="How often a running search prints its progress."
    )
    shards: int = Field(
        1,
        ge=1,
        le=64,
        description="Pods the round is spread over (the chart's training.parallelism: an "
        "Indexed Job); each searches one share of the candidates, pod 0 gathers them.",
    )
    shard_index: int = Field(
        0,
        ge=0,
        validation_alias="JOB_COMPLETION_INDEX",
        description="This pod's share (environment JOB_COMPLETION_INDEX only: Kubernetes sets "
        "it in an Indexed Job).",
    )
    round_id: str | None = Field(
        None,
        max_length=200,
        description="The id all the pods of a spread round share (the chart sets the Job's "
        "uid); needed when --shards is over 1.",
    )
    shard_wait_seconds: float = Field(
        3600.0, gt=0.0, description="How long pod 0 waits for the other shards to finish."
    )
    onnx: bool = Field(True, description="Export ONNX (kept only when parity holds).")
    onnx_tolerance: float = Field(1e-5, gt=0.0, description="Max ONNX probability difference.")
    mlflow_timeout_seconds: float = Field(
        60.0, gt=0.0, description="How long to retry an unreachable MLflow before giving up."
    )
    tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking server (environment MLFLOW_TRACKING_URI only).",
    )
    code_version: str | None = Field(
        None, description="Code version tag (default: git commit, else package version)."
    )
    result_file: Path | None = Field(
        None,
        description="Write the round's result (version, run, gate decision) as JSON to this "
        "file; in the cluster the chart sets /dev/termination-log.",
    )

    @field_validator("candidates", mode="before")
    @classmethod
    def _split_candidates(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("candidates")
    @classmethod
    def _known_candidates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one candidate family is needed")
        unknown = [v for v in value if v not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
        return tuple(dict.fromkeys(value))

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return contract.known_metric(value)

    @model_validator(mode="after")
    def _csv_needs_target(self) -> TrainingSettings:
        if self.csv is not None:
            if self.data is not None and self.data != str(self.csv):
                raise ValueError("--csv and --data name different files: give one of them")
            self.data = str(self.csv)
        if self.data is not None:
            self.dataset = "file"
        if self.shards > 1 and not self.round_id:
            raise ValueError("--shards over 1 needs --round-id, the id every pod shares")
        if self.shard_index >= self.shards:
            raise ValueError(
                f"JOB_COMPLETION_INDEX {self.shard_index} is not under --shards {self.shards}"
            )
        if self.dataset in ("file", "csv") and (self.data is None or not self.target):
            raise ValueError("a file dataset needs both --data PATH_OR_URL and --target COLUMN")
        return self
