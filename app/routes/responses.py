"""The error answers of the routes as OpenAPI documents them: each status with when it is
answered and its body, `{"detail": "..."}` (Detail) on mlstack's own routes (/predict, /model,
/drift) and each protocol's own form on its routes (app.protocols.error_form)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kernel.errors import error_responses

Responses = dict[int | str, dict[str, Any]]

# What a route behind the API key can answer before it looks at anything else.
AUTH = {
    401: "Missing API key (when auth is on)",
    403: "Wrong API key",
    503: "The service's API key file cannot be read",
}


class Detail(BaseModel):
    detail: str


def errors(*tables: dict[int, str], model: type[BaseModel] = Detail) -> Responses:
    """OpenAPI `responses` for error statuses (status → when), each a `model` body."""
    return error_responses(model, *tables)
