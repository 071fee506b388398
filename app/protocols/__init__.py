"""The wire protocols of the prediction routes: each a parser and a renderer (app.pipeline).

`prediction_routes` is the one table of which POST route speaks which protocol."""

from __future__ import annotations

from typing import Any

from app.pipeline import Protocol
from app.protocols.native import Native
from app.settings import ProtocolSettings


def prediction_routes(settings: ProtocolSettings) -> dict[str, Protocol[Any]]:
    """Route template → protocol, for every POST route the pipeline serves."""
    native = Native()
    return {"/predict": native}
