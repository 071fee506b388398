"""KServe's V1 protocol routes, as KServe's ModelServer answers them.

`GET /` is the V1 server liveness (what `InferenceRESTClient.is_server_live` calls),
`GET /v1/models/{name}` the model readiness (`is_model_ready`); both are open, like /livez
and /readyz. `GET /v1/models` names the served model and needs the API key. The prediction
route is served by the request pipeline (app.protocols.kserve_v1), never by the function
below: FastAPI only describes it.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.deps import ApiKeyDep, SettingsDep, StoreDep
from app.pipeline import served_model
from app.protocols.kserve_v1 import PREDICT_ROUTE
from app.routes.responses import AUTH, errors

router = APIRouter(tags=["KServe V1"])


class Live(BaseModel):
    status: str = Field(description='"alive" while the process answers.')


class Models(BaseModel):
    models: list[str]


class ModelReady(BaseModel):
    name: str
    ready: bool


class Parameters(BaseModel):
    probabilities: bool | None = Field(
        None,
        description="Answer class probabilities (true) or labels (false); unset: "
        "MLSTACK_V1_PROBABILITIES decides.",
    )


class PredictRequest(BaseModel):
    instances: list[list[float]] | list[dict[str, float]] | None = Field(
        None,
        description="Rows as arrays in the signature's feature order, or as objects of feature "
        "name → number (at most MLSTACK_MAX_BATCH_ROWS).",
    )
    inputs: list[list[float]] | list[dict[str, float]] | None = Field(
        None, description='Taken in place of "instances", as KServe takes it.'
    )
    parameters: Parameters | None = None


class PredictResponse(BaseModel):
    predictions: list[str | int | float | bool] | list[list[float]] = Field(
        description="One label per row, as the model holds its classes; or, when asked, one "
        "row of class probabilities per row, columns in the order of GET /model `classes`."
    )


class Error(BaseModel):
    error: str


@router.get("/", response_model=Live, summary="KServe V1 server liveness")
async def server_live() -> Live:
    return Live(status="alive")


@router.get(
    "/v1/models",
    response_model=Models,
    summary="KServe V1: the models served",
    responses=errors(AUTH, model=Error),
)
async def list_models(settings: SettingsDep, _: ApiKeyDep) -> Models:
    return Models(models=[settings.model_name])


# Declared before the readiness route, whose `{name}` also matches `iris:predict`: the router
# answers another method on the predict path from the first route matching it (405, `Allow`).
@router.post(
    PREDICT_ROUTE,
    response_model=PredictResponse,
    summary="KServe V1 predict",
    responses=errors(
        {
            400: "Malformed JSON; missing, non-numeric or non-finite value; wrong row width; "
            "empty or oversized batch; bad parameters",
        },
        AUTH,
        {
            404: "Another model name",
            413: "Body over MLSTACK_MAX_BODY_BYTES",
            415: "Content type is not application/json",
            503: "No model loaded yet",
        },
        model=Error,
    ),
)
async def predict_docs(name: str, body: PredictRequest) -> PredictResponse:  # pragma: no cover
    """Feature names and order come from the served model's signature (GET /model). The
    response has header `x-model-version`. Served by the request pipeline, never by this
    function."""
    raise NotImplementedError


@router.get(
    "/v1/models/{name}",
    response_model=ModelReady,
    summary="KServe V1 model readiness",
    responses={
        404: {"model": Error, "description": "Another model name"},
        503: {"model": Error, "description": "No model loaded yet"},
    },
)
async def model_ready(name: str, store: StoreDep) -> ModelReady:
    served_model(store, {"name": name}, not_ready=f"model {name!r} is not loaded yet")
    return ModelReady(name=name, ready=True)
