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


@router.get("/v1/models", response_model=Models, summary="KServe V1: the models served")
async def list_models(settings: SettingsDep, _: ApiKeyDep) -> Models:
    return Models(models=[settings.model_name])


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


@router.post(
    PREDICT_ROUTE,
    response_model=PredictResponse,
    summary="KServe V1 predict",
    responses={
        400: {
            "model": Error,
            "description": "Malformed JSON; missing, non-numeric or non-finite value; wrong row "
            "width; empty or oversized batch; bad parameters",
        },
        401: {"model": Error, "description": "Missing API key (when auth is on)"},
        403: {"model": Error, "description": "Wrong API key"},
        404: {"model": Error, "description": "Another model name"},
        413: {"model": Error, "description": "Body over MLSTACK_MAX_BODY_BYTES"},
        415: {"model": Error, "description": "Content type is not application/json"},
        503: {"model": Error, "description": "No model loaded yet"},
    },
)
async def predict_docs(name: str, body: PredictRequest) -> PredictResponse:  # pragma: no cover
    """Feature names and order come from the served model's signature (GET /model). The
    response has header `x-model-version`. Served by the request pipeline, never by this
    function."""
    raise NotImplementedError
