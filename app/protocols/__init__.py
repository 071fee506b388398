"""The wire protocols of the prediction routes: each a parser and a renderer (app.pipeline).

`prediction_routes` is the one table of which POST route speaks which protocol, and
`error_form` says in which protocol's form any other route of a protocol answers an error.
"""

from __future__ import annotations

from typing import Any

from app.pipeline import Protocol
from app.protocols import kserve_v1, mlflow_scoring, v2
from app.protocols.native import Native
from app.settings import ProtocolSettings


def prediction_routes(settings: ProtocolSettings) -> dict[str, Protocol[Any]]:
    """Route template → protocol, for every POST route the pipeline serves."""
    native = Native()
    routes: dict[str, Protocol[Any]] = {"/predict": native}
    for protocol in (v2, kserve_v1, mlflow_scoring):
        routes.update(protocol.routes(settings))
    return routes


def error_form(route: str, routes: dict[str, Protocol[Any]]) -> Protocol[Any] | None:
    """The protocol whose error body a non-prediction route answers with (e.g. the V2 model
    metadata route answers `{"error": ...}`), None for mlstack's own routes (`{"detail"}`)."""
    best: tuple[int, Protocol[Any]] | None = None
    for protocol in routes.values():
        for prefix in protocol.route_prefixes:
            if route.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), protocol)
    return None if best is None else best[1]
