"""Open Inference Protocol V2 routes: server and model metadata, health, and the infer routes
as OpenAPI documents them.

The infer routes are served by the request pipeline (app.pipeline, parser and renderer in
app.protocols.v2), never by the functions below: FastAPI only describes them. Every route
here answers errors as `{"error": "..."}` (app.protocols.error_form). Health routes are open;
metadata needs the API key, as GET /model does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.deps import ApiKeyDep, SettingsDep, StoreDep
from app.model_store import LoadedModel, ModelStore
from app.pipeline import served_model
from app.protocols import v2
from app.routes.responses import AUTH, errors

router = APIRouter(tags=["Open Inference Protocol (V2)"])


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class Unready(BaseModel):
    ready: bool
    error: str


class ModelReady(BaseModel):
    name: str
    ready: bool


class Error(BaseModel):
    error: str


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(
        description="`tensor_input`: the single [N, n_features] input form; "
        "`max_batch_rows`: most rows per request; `example`: a request body to try the model "
        "with (from the version's input example)."
    )


class RequestInput(BaseModel):
    name: str = Field(description="A feature's name, or any other name for a single tensor.")
    shape: list[int] = Field(description="[N] or [N, 1] per feature; [N, n_features] single.")
    datatype: str = Field(description="FP32, FP64, INT32, INT64 or BOOL.")
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_size`: the input's bytes after the JSON header."
    )
    data: list[Any] | None = Field(None, description="Values, flat or nested, row-major.")


class RequestOutput(BaseModel):
    name: str = Field(description="`label` or `probabilities`.")
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data`: answer this output's data after the JSON header."
    )


class InferRequest(BaseModel):
    id: str | None = Field(None, description="Echoed in the response.")
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_output`: answer every output in binary."
    )
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(None, description="Both when absent.")


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


_NOT_SERVED = {404: "Another model or version"}
_NO_MODEL = {503: "No model loaded yet"}
_METADATA_RESPONSES = errors(AUTH, _NOT_SERVED, _NO_MODEL, model=Error)
_READY_RESPONSES = errors(_NOT_SERVED, _NO_MODEL, model=Error)
_INFER_RESPONSES = errors(
    {
        400: "Malformed JSON; wrong datatype, shape, data, feature names, outputs or binary "
        "sizes; a batch over MLSTACK_MAX_BATCH_ROWS",
        413: "Body over MLSTACK_MAX_BODY_BYTES",
        415: "Content type is not application/json (or application/octet-stream with "
        "Inference-Header-Content-Length)",
    },
    AUTH,
    _NOT_SERVED,
    _NO_MODEL,
    model=Error,
)
_BINARY_BODY = {
    "requestBody": {
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Binary tensor extension: header Inference-Header-Content-Length "
                "gives the length of the JSON request at the start of the body; the rest is "
                "the raw little-endian data of the inputs with parameters.binary_data_size, "
                "in input order.",
            }
        }
    }
}


def served(store: ModelStore, name: str, version: str | None = None) -> LoadedModel:
    params = {"name": name} if version is None else {"name": name, "version": version}
    return served_model(store, params)


@router.get("/v2", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(
        name="mlstack", version=request.app.version, extensions=list(v2.EXTENSIONS)
    )


@router.get("/v2/health/live", response_model=Live, summary="Liveness: the process answers")
async def server_live() -> Live:
    return Live(live=True)


@router.get(
    "/v2/health/ready",
    response_model=Ready,
    summary="Readiness: a model is loaded (503 otherwise)",
    responses={503: {"model": Unready, "description": "No model loaded yet"}},
)
async def server_ready(store: StoreDep) -> JSONResponse:
    if store.current is None:
        reason = store.last_error or "no model is loaded yet"
        return JSONResponse({"ready": False, "error": reason}, status_code=503)
    return JSONResponse({"ready": True})


@router.get(
    "/v2/models/{name}",
    response_model=ModelMetadata,
    response_model_exclude_none=True,
    summary="Model metadata: inputs from the signature, outputs from the classes",
    responses=_METADATA_RESPONSES,
)
async def model_metadata(
    name: str, store: StoreDep, settings: SettingsDep, _: ApiKeyDep
) -> dict[str, Any]:
    return v2.metadata(served(store, name), settings.max_batch_rows)


@router.get(
    "/v2/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    response_model_exclude_none=True,
    summary="Model metadata of the version being served",
    responses=_METADATA_RESPONSES,
)
async def version_metadata(
    name: str, version: str, store: StoreDep, settings: SettingsDep, _: ApiKeyDep
) -> dict[str, Any]:
    return v2.metadata(served(store, name, version), settings.max_batch_rows)


@router.get(
    "/v2/models/{name}/ready",
    response_model=ModelReady,
    summary="Model readiness",
    responses=_READY_RESPONSES,
)
async def model_ready(name: str, store: StoreDep) -> ModelReady:
    return ModelReady(name=served(store, name).ref.name, ready=True)


@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    response_model=ModelReady,
    summary="Readiness of the version being served",
    responses=_READY_RESPONSES,
)
async def version_ready(name: str, version: str, store: StoreDep) -> ModelReady:
    return ModelReady(name=served(store, name, version).ref.name, ready=True)


@router.post(
    "/v2/models/{name}/infer",
    response_model=InferResponse,
    response_model_exclude_none=True,
    summary="Infer: one [N, n_features] tensor, or one tensor per feature",
    responses=_INFER_RESPONSES,
    openapi_extra=_BINARY_BODY,
)
async def infer_docs(name: str, body: InferRequest) -> InferResponse:  # pragma: no cover
    """Inputs: ONE `[N, n_features]` tensor (any name that is not a feature's, columns in
    feature order) or one `[N]`/`[N, 1]` tensor per feature, named after it; FP32, FP64,
    INT32, INT64 or BOOL; `data` flat or nested, row-major. Outputs: `label` (BYTES `[N]`) and
    `probabilities` (FP32 `[N, n_classes]`, class order in its `parameters.classes`), both
    unless `outputs` says otherwise. Binary tensor extension supported (header
    `Inference-Header-Content-Length`). The response has header `x-model-version`."""
    raise NotImplementedError


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    response_model=InferResponse,
    response_model_exclude_none=True,
    summary="Infer on the version being served (404 for any other)",
    responses=_INFER_RESPONSES,
    openapi_extra=_BINARY_BODY,
)
async def version_infer_docs(
    name: str, version: str, body: InferRequest
) -> InferResponse:  # pragma: no cover
    """As POST /v2/models/{name}/infer, for the version being served only."""
    raise NotImplementedError
