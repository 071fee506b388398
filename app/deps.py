"""FastAPI dependencies as typed aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.model_store import ModelStore
from app.pipeline import Protocol
from app.settings import Settings
from kernel.keys import ApiKeyCheck


def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_protocols(request: Request) -> dict[str, Protocol[Any]]:
    """POST route template → protocol (app.protocols.prediction_routes)."""
    protocols: dict[str, Protocol[Any]] = request.app.state.protocols
    return protocols


def require_api_key(request: Request) -> None:
    auth: ApiKeyCheck = request.app.state.auth
    auth.check(request.scope["headers"])


StoreDep = Annotated[ModelStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ApiKeyDep = Annotated[None, Depends(require_api_key)]
ProtocolsDep = Annotated[dict[str, Protocol[Any]], Depends(get_protocols)]
