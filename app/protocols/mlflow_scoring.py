"""Placeholder: the protocol lands in the next commits."""

from __future__ import annotations

from typing import Any

from app.pipeline import Protocol
from app.settings import ProtocolSettings


def routes(settings: ProtocolSettings) -> dict[str, Protocol[Any]]:
    """Route template → protocol instance for this protocol's POST prediction routes."""
    return {}
