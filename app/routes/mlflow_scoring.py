"""MLflow scoring server routes (`mlflow models serve`): GET /ping, /health and /version, and
POST /invocations as OpenAPI documents it.

/invocations is served by the request pipeline (app.pipeline, parser and renderer in
app.protocols.mlflow_scoring), never by the function below: FastAPI only describes it.
Errors of every route here take MLflow's form `{"error_code", "message"}`
(app.protocols.error_form). /ping, /health and /version are open, as probes are: MLflow's own
client (`ScoringServerClient`) calls them without headers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.deps import StoreDep
from app.errors import ModelNotFound, NotReady
from app.routes.responses import AUTH, errors

router = APIRouter(tags=["MLflow scoring server"])

Responses = dict[int | str, dict[str, Any]]


class MlflowError(BaseModel):
    error_code: str = Field(description="MLflow's error code, e.g. BAD_REQUEST.")
    message: str


class DataframeSplit(BaseModel):
    columns: list[str] = Field(description="Feature names, each once, in any order.")
    data: list[list[float]] = Field(description="Rows of values in `columns` order.")
    index: list[Any] | None = Field(None, description="Row labels (one per row), ignored.")


Params = Field(
    None,
    description="Inference parameters (an object): the scikit-learn flavour's predict takes "
    "none, so they change no answer. MLflow also checks them against a params schema of the "
    "signature; mlstack does not.",
)


class SplitBody(BaseModel):
    dataframe_split: DataframeSplit
    params: dict[str, Any] | None = Params


class RecordsBody(BaseModel):
    dataframe_records: list[dict[str, float]] = Field(description="Records of feature → value.")
    params: dict[str, Any] | None = Params


Rows = list[dict[str, float]] | dict[str, list[float]] | dict[str, float]
_ROWS = "Records of feature → value, an object of feature → values (one per row), or one record."


class InstancesBody(BaseModel):
    instances: Rows = Field(description=_ROWS)
    params: dict[str, Any] | None = Params


class InputsBody(BaseModel):
    inputs: Rows = Field(description=_ROWS)
    params: dict[str, Any] | None = Params


class Predictions(BaseModel):
    predictions: list[list[float]] | list[str | int | float | bool] = Field(
        description="What the version's pyfunc predict_fn answers: rows of class probabilities "
        "in class order (predict_proba) or the labels as the model holds them (predict)."
    )


_CSV_BODY = {
    "requestBody": {
        "content": {
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "A header row of feature names, then rows of unquoted "
                    "numbers, as DataFrame.to_csv(index=False) writes them.",
                }
            }
        }
    }
}
_NO_MODEL: Responses = {503: {"model": MlflowError, "description": "No model loaded yet"}}


@router.post(
    "/invocations",
    response_model=Predictions,
    summary="Score rows as `mlflow models serve` does",
    responses={
        400: {
            "model": MlflowError,
            "description": "Malformed JSON or CSV; not exactly one of dataframe_split, "
            "dataframe_records, instances, inputs; missing, unknown, non-numeric or "
            "non-finite feature, a fraction in an integer column; empty batch or one over "
            "MLSTACK_MAX_BATCH_ROWS",
        },
        **errors(AUTH, {503: "No model loaded yet"}, model=MlflowError),
        413: {"model": MlflowError, "description": "Body over MLSTACK_MAX_BODY_BYTES"},
        415: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Content type is not application/json or text/csv, or a charset "
            "other than UTF-8 (plain text, as MLflow answers it)",
        },
        501: {
            "model": MlflowError,
            "description": "The version's pyfunc answers neither predict nor predict_proba, or "
            "it is of the onnx flavour",
        },
    },
    openapi_extra=_CSV_BODY,
)
async def invocations_docs(
    body: SplitBody | RecordsBody | InstancesBody | InputsBody,
) -> Predictions:  # pragma: no cover
    """Feature names come from the served model's signature (see GET /model, whose `examples`
    holds a body to try). The response has header `x-model-version`. Served by the request
    pipeline, never by this function."""
    raise NotImplementedError


_PING_RESPONSES: Responses = {
    200: {"content": {"application/json": {"example": "\n"}}, "description": "A model is loaded"},
    404: {
        "model": MlflowError,
        "description": "No model loaded yet (as MLflow answers without one)",
    },
}


async def ping(store: StoreDep) -> Response:
    if store.current is None:
        reason = store.last_error or "the first version is still loading"
        raise ModelNotFound(f"no model is loaded yet: {reason}")
    return Response("\n", media_type="application/json")


router.add_api_route(
    "/ping",
    ping,
    methods=["GET"],
    summary="MLflow's health check: 200 once a model is loaded",
    response_class=Response,
    responses=_PING_RESPONSES,
)
router.add_api_route(
    "/health",
    ping,
    methods=["GET"],
    summary="MLflow's health check (as /ping)",
    response_class=Response,
    responses=_PING_RESPONSES,
)


@router.get(
    "/version",
    summary="The MLflow version that logged the served model",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {"example": "3.1.0"}}, "description": "Version"},
        404: {"model": MlflowError, "description": "The model's MLmodel names no MLflow version"},
        **_NO_MODEL,
    },
)
async def version(store: StoreDep) -> Response:
    """`mlflow models serve` answers the MLflow it runs, which serves a model in the model's own
    environment: the version that logged it. The body is the bare version text."""
    model = store.current
    if model is None:
        raise NotReady("no model is loaded yet")
    logged = model.files.mlflow_version
    if logged is None:
        raise ModelNotFound(
            f"v{model.version}'s MLmodel does not say which MLflow version logged it"
        )
    return Response(logged, media_type="application/json")
