"""structlog set-up: one JSON object per line, events named `noun.verb`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import BinaryIO

import orjson
import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str, stream: BinaryIO | None = None, quiet: Iterable[str] = ()) -> None:
    """Events at `level` and above go to `stream` (default stdout). Libraries that log through
    the standard library (uvicorn, alembic) go to stderr; the `quiet` ones only from WARNING,
    since they log every call they make and the services log what matters as events."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(stream or sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=LEVELS[level], stream=sys.stderr, format="%(message)s")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
