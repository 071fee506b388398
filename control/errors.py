"""Typed errors of the control plane and the one place that maps them to HTTP statuses."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

log = structlog.get_logger("control.errors")


class ControlError(Exception):
    """An error with a message safe to return to the client."""

    status = 500


class MalformedJson(ControlError):
    status = 400


class Unauthorized(ControlError):
    status = 401


class Forbidden(ControlError):
    status = 403


class NotFound(ControlError):
    status = 404


class Conflict(ControlError):
    """The request is valid but the registry's state refuses it (signatures, no previous)."""

    status = 409


class PayloadTooLarge(ControlError):
    status = 413


class InvalidInput(ControlError):
    status = 422


class ClusterUnavailable(ControlError):
    """The Kubernetes API cannot be reached, or refused what the control plane asked."""

    status = 503


class RegistryUnavailable(ControlError):
    """MLflow could not be reached or answered with an error of its own."""

    status = 502


def location(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """`('records', 3, 'status')` → `records[3].status`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(errors: list[Any], limit: int = 5) -> str:
    """One line naming each failing field (pydantic error list), the first `limit` of them."""
    parts = []
    for error in errors[:limit]:
        where = location([p for p in error["loc"] if p != "body"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    """Register the handlers: every error leaves as `{"detail": "..."}` with its status."""

    @app.exception_handler(ControlError)
    async def control_error(_: Request, exc: ControlError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe(list(exc.errors()))}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # The statement and its parameters (prediction records) stay out of the answer.
        log.error("database.failed", error=str(exc.orig)[:500])
        return JSONResponse(
            {"detail": f"the prediction log's database failed: {type(exc.orig).__name__}"},
            status_code=503,
        )
