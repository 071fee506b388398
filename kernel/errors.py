"""The error base of both services, and the errors they raise alike.

Each service maps errors to HTTP statuses in one module of its own (`app/main.py` and the
protocol renderers, `control/errors.py`); both build on `ServiceError`.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error with a message safe to return to the client.

    `status` is its HTTP status. `source` says what it blames, as the inference service's
    prediction log records it: `validation` (the request's content), `auth` (its
    credentials), `limit` (a size limit) or `model` (the served model); `service` (the
    default) is the service itself.
    """

    status = 500
    source = "service"


class MalformedJson(ServiceError):
    status = 400
    source = "validation"


class Unauthorized(ServiceError):
    status = 401
    source = "auth"


class Forbidden(ServiceError):
    status = 403
    source = "auth"


class PayloadTooLarge(ServiceError):
    status = 413
    source = "limit"


class InvalidInput(ServiceError):
    status = 422
    source = "validation"


class KeyUnavailable(ServiceError):
    """The service's own API key file has become unreadable or empty: requests that present a
    key are refused until it is readable again (never let through unchecked)."""

    status = 503
    source = "auth"


def error_responses(model: type, *tables: dict[int, str]) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for error statuses (each table: status → when it is answered), each
    with a `model` body; a status in several tables is described by each."""
    merged: dict[int, str] = {}
    for table in tables:
        for status, why in table.items():
            merged[status] = (
                f"{merged[status]}; or {why[0].lower()}{why[1:]}" if status in merged else why
            )
    return {status: {"model": model, "description": why} for status, why in merged.items()}
