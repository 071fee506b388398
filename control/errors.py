"""Typed errors of the control plane and the one place that maps them to HTTP statuses."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

# The errors both services raise alike, re-exported: the control plane imports them from here.
from kernel.errors import Forbidden as Forbidden
from kernel.errors import InvalidInput as InvalidInput
from kernel.errors import KeyUnavailable as KeyUnavailable
from kernel.errors import MalformedJson as MalformedJson
from kernel.errors import PayloadTooLarge as PayloadTooLarge
from kernel.errors import ServiceError
from kernel.errors import Unauthorized as Unauthorized

log = structlog.get_logger("control.errors")


ControlError = ServiceError  # the base of every error the control plane answers with


class NotFound(ControlError):
    status = 404


class Conflict(ControlError):
    """The request is valid but the registry's state refuses it (signatures, no previous)."""

    status = 409


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
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = {"allow": _allowed(request)} if exc.status_code == 405 else exc.headers
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # The statement and its parameters (prediction records) stay out of the answer.
        log.error("database.failed", error=str(exc.orig)[:500])
        return JSONResponse(
            {"detail": f"the prediction log's database failed: {type(exc.orig).__name__}"},
            status_code=503,
        )


def _allowed(request: Request) -> str:
    """Every method the request's path takes, for a 405's `Allow` (Starlette's names only the
    first matching route's: POST alone for /v1/predictions, which takes GET too)."""
    scope = {**request.scope, "method": ""}  # no method: every route of the path matches partly
    methods = {
        method
        for route in request.app.router.routes
        if route.matches(scope)[0] is Match.PARTIAL
        for method in getattr(route, "methods", None) or ()
    }
    return ", ".join(sorted(methods))
