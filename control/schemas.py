"""What crosses the control plane's HTTP boundary, as pydantic models.

Prediction records are validated here in full (the control plane is not a hot path): a batch
with one bad record is refused whole, with the failing field named (`records[3].status`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from kernel.errors import error_responses
from training import contract

Outcome = Literal["success", "error"]
ErrorSource = Literal["validation", "auth", "limit", "model"]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

MAX_PAGE = 1000
MAX_OFFSET = 2**63 - 1  # SQL BIGINT: the largest OFFSET SQLite and PostgreSQL take
MAX_ROWS = 2**31 - 1  # a record's rows are kept in a SQL INTEGER column (control.tables)

# MLflow keeps version numbers in a SQL INTEGER column (32 bits on PostgreSQL): a larger one
# fails inside MLflow with a 500, which its client retries for minutes, instead of "not found".
MAX_VERSION = 2**31 - 1
VERSION_DIGITS = r"^[0-9]+$"


def version_number(value: str) -> str:
    """`value` (digits) when MLflow can hold it as a version number. Raises ValueError."""
    if int(value) > MAX_VERSION:
        raise ValueError(f"{value} is over {MAX_VERSION}, the largest version number MLflow keeps")
    return value


Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """The body of every error answer (control.errors): one line naming the field or limit."""

    detail: str


# Error statuses by cause (status → when), for the routes' `responses`. AUTH: every /v1 route,
# before it reads anything (control.routes.keyed).
AUTH = {401: "Missing API key", 403: "Wrong API key", 503: "The API key file is unreadable"}
INVALID = {422: "Invalid path, query or body: the fields at fault are named"}
NOT_JSON = {400: "The body cannot be read as JSON (e.g. it is not UTF-8)"}
REGISTRY_FAILED = {502: "MLflow failed or cannot be reached"}
CLUSTER_FAILED = {503: "The Kubernetes API failed, refused or cannot be reached"}


def errors(*tables: dict[int, str]) -> Responses:
    """OpenAPI `responses` for error statuses (status → when), each an ErrorBody."""
    return error_responses(ErrorBody, *tables)


class Probe(BaseModel):
    """The answer of /livez and /readyz."""

    status: str


class Unready(Probe):
    reason: str


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("holds a NUL character (U+0000), which PostgreSQL text cannot store")
    return value


# A string the prediction log keeps in a text column.
Text = Annotated[str, AfterValidator(_no_nul)]


class PredictionRecord(BaseModel):
    """One /predict request as the inference service reports it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    request_id: Text = Field(min_length=1, max_length=128)
    time: float = Field(ge=0, allow_inf_nan=False, description="Epoch seconds.")
    model_name: Text | None = Field(None, max_length=256)
    model_version: Text | None = Field(None, max_length=64)
    status: int = Field(ge=100, le=599, description="HTTP status answered.")
    outcome: Outcome
    error_source: ErrorSource | None = None
    latency_ms: float = Field(ge=0, allow_inf_nan=False)
    rows: int = Field(ge=0, le=MAX_ROWS)
    labels: list[str]
    confidences: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]]
    features: list[list[FiniteFloat]] | None = None
    shadow: bool = Field(
        False, description="A shadow prediction: the shadow alias's version, not the answer."
    )
    live_version: Text | None = Field(
        None, max_length=64, description="Of a shadow record: the version that answered."
    )
    agreed_rows: int | None = Field(
        None, ge=0, le=MAX_ROWS, description="Of a shadow record: rows whose label it shared."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PredictionRecord:
        if (self.status < 400) != (self.outcome == "success"):
            raise ValueError(
                f"outcome {self.outcome!r} does not match status {self.status} "
                "(success is a status below 400)"
            )
        if self.outcome == "success" and self.error_source is not None:
            raise ValueError("error_source must be null when outcome is 'success'")
        if self.shadow != (self.live_version is not None and self.agreed_rows is not None):
            raise ValueError(
                "live_version and agreed_rows are set on shadow records only, and both"
            )
        if self.agreed_rows is not None and self.agreed_rows > self.rows:
            raise ValueError(f"agreed_rows ({self.agreed_rows}) exceeds rows ({self.rows})")
        if len(self.labels) != len(self.confidences):
            raise ValueError(
                f"labels ({len(self.labels)}) and confidences ({len(self.confidences)}) "
                "differ in length"
            )
        return self


class PredictionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    records: list[PredictionRecord] = Field(min_length=1)


class Accepted(BaseModel):
    accepted: int


def parse_time(value: object) -> float:
    """Epoch seconds from a number, a numeric string or an ISO 8601 string (UTC when it has no
    offset). Raises ValueError naming the value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"{value!r} is neither ISO 8601 (2026-01-31T12:00:00Z) nor epoch seconds"
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    else:
        raise ValueError(f"{value!r} is not a time")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite time")
    return seconds


# A query's time bound as sent: parsed by parse_time (PredictionQuery._time); empty: none.
TimeBound = Annotated[
    float | None,
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "number"}],
            "description": "ISO 8601 (2026-01-31T12:00:00Z; UTC without an offset) or epoch "
            "seconds; empty: no bound.",
        }
    ),
]


class PredictionQuery(BaseModel):
    """Filters and page of GET /v1/predictions; results are newest first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Outcome | None = Field(None, description="success or error.")
    source: ErrorSource | None = Field(None, description="Error source (implies errors).")
    since: TimeBound = Field(None, description="From this time, inclusive.")
    until: TimeBound = Field(None, description="Before this time.")
    model_version: Text | None = Field(None, max_length=64)
    shadow: bool | None = Field(
        None, description="true: shadow records only; false: answers only; unset: both."
    )
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, value: Any) -> float | None:
        return None if value is None or value == "" else parse_time(value)

    @model_validator(mode="after")
    def _window(self) -> PredictionQuery:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since is after until")
        if self.status == "success" and self.source is not None:
            raise ValueError("an error source cannot be combined with status=success")
        return self


class PredictionPage(BaseModel):
    total: int
    items: list[dict[str, Any]]


class AliasMove(BaseModel):
    """Body of PUT /v1/models/{name}/aliases/{alias}."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    version: Annotated[
        str,
        Field(min_length=1, max_length=10, pattern=VERSION_DIGITS),
        AfterValidator(version_number),
    ]
    force: bool = Field(False, description="Move even when the signatures differ.")
    min_agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Refuse unless the version, shadowed beside the alias's current version, "
        "agreed with it on at least this share of rows (from the prediction log).",
    )
    min_rows: int = Field(
        100, ge=1, description="Shadowed rows min_agreement needs before it can pass."
    )


class Rollback(BaseModel):
    """Body of POST /v1/models/{name}/rollback (optional)."""

    model_config = ConfigDict(extra="forbid")

    alias: str = Field(contract.ALIAS_CHAMPION, min_length=1, max_length=256)


class ModelSummary(BaseModel):
    name: str
    description: str | None
    created: str | None = Field(description="ISO 8601, UTC.")
    updated: str | None
    aliases: dict[str, str] = Field(description="Alias → version.")


class ModelVersionView(BaseModel):
    version: str
    aliases: list[str]
    status: str
    created: str | None
    run_id: str | None
    metric: str | None = Field(description="The gate's metric for this version.")
    score: float | None = Field(description="The version's held-out value of `metric`.")
    decision: str | None = Field(description="The gate's decision (champion or challenger).")
    reason: str | None
    onnx: bool | None
    previous: dict[str, str] = Field(description="Alias → the version it held before this one.")


class Agreement(BaseModel):
    """How often a shadowed version agreed with the version that answered (prediction log)."""

    model_version: str
    live_version: str | None = Field(description="null: against every version that answered.")
    rows: int
    agreed_rows: int
    agreement: float | None = Field(description="agreed_rows / rows; null without rows.")


class ModelDetail(ModelSummary):
    versions: list[ModelVersionView] = Field(description="Newest first.")
    challenger_agreement: Agreement | None = Field(
        None,
        description="The challenger's live agreement with the champion, from its shadowed "
        "requests; null without both aliases or without the prediction log.",
    )


class BestRun(BaseModel):
    run_id: str
    run_name: str | None
    metric: str
    value: float
    candidate: str | None
    dataset: str | None
    decision: str | None
    started: str | None


class ExperimentView(BaseModel):
    experiment_id: str
    name: str
    created: str | None
    best_run: BestRun | None = Field(description="Round run with the best held-out metric.")


class AliasChange(BaseModel):
    model: str
    alias: str
    version: str = Field(description="The version the alias points to now.")
    previous: str | None = Field(description="The version it pointed to before.")
    changed: bool
    forced: bool = False


class Adoption(BaseModel):
    """What `mlstack adopt` (or POST /v1/models/{name}/versions/{version}/adopt) did."""

    model: str
    version: str
    changed: bool = Field(description="False when the version carried these extras already.")
    extras_uri: str | None = Field(description="Where the extras are (None: the round's own).")
    onnx: bool = Field(description="An ONNX export is served (parity held).")
    onnx_reason: str
    baseline_features: int
    metrics: dict[str, float] = Field(description="The version's metrics on the rows given.")
    reason: str


class TrainingJobView(BaseModel):
    id: str = Field(description="The Job's name.")
    state: Literal["pending", "running", "succeeded", "failed"]
    created: str | None
    started: str | None
    finished: str | None
    requested_by: str | None = Field(description="Who asked (api:<address> or the CLI user).")
    parameters: list[str] = Field(description="Training flags added to the template's.")
    # The round's result: the training container's termination message (read by id only).
    mlflow_run_id: str | None = Field(None, description="The round's MLflow run.")
    registered_version: str | None = Field(None, description="The version it registered.")
    decision: str | None = Field(None, description="The gate's decision: champion or challenger.")
    reason: str | None = Field(None, description="Why the gate decided so.")
    result_missing: str | None = Field(
        None,
        description="Why there is no result (no pod, not finished, or a termination message "
        "that is not a result); null when there is one, and in the list.",
    )
    log_tail: list[str] = Field(default_factory=list, description="Last log lines (by id only).")
    progress: str | None = Field(
        None,
        description="The round's latest progress line: a family started, its fits done with "
        "the time left, its result, or a skip (by id only; null for a custom command's Job "
        "until it prints one).",
    )
