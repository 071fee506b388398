"""POST /predict, as OpenAPI documents it.

The route is served by the request pipeline (app.pipeline, parser and renderer in
app.protocols.native), never by the function below: FastAPI only describes it.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.routes.responses import AUTH, errors


class Prediction(BaseModel):
    label: str = Field(description="Most probable class.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Prediction]


class SplitResponse(BaseModel):
    model_name: str
    model_version: str
    classes: list[str]
    labels: list[str]
    probabilities: list[list[float]]


class Batch(BaseModel):
    instances: list[dict[str, float]] = Field(
        description="Records of feature name → number (at most MLSTACK_MAX_BATCH_ROWS)."
    )


class SplitBatch(BaseModel):
    columns: list[str] = Field(description="Feature names, each once, in any order.")
    data: list[list[float]] = Field(
        description="Rows of values in `columns` order (at most MLSTACK_MAX_BATCH_ROWS). "
        "The answer is columnar: `classes`, `labels`, `probabilities`."
    )


docs_router = APIRouter()


@docs_router.post(
    "/predict",
    response_model=PredictResponse | SplitResponse,
    summary="Predict one record or a batch",
    responses=errors(
        {400: "Malformed JSON"},
        AUTH,
        {
            413: "Body over MLSTACK_MAX_BODY_BYTES",
            415: "Content type is not application/json",
            422: "Missing, unknown, non-numeric or non-finite feature; empty or oversized batch",
            503: "No model loaded yet",
        },
    ),
)
async def predict_docs(
    body: dict[str, float] | Batch | SplitBatch,
) -> PredictResponse | SplitResponse:  # pragma: no cover
    """Feature names come from the served model's signature (see GET /model). The response
    has header `x-model-version`. Served by the request pipeline, never by this function."""
    raise NotImplementedError
