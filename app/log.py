"""structlog set-up: one JSON object per line on stdout, events named `noun.verb`."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (uvicorn) go to stderr as before.
    logging.basicConfig(level=_LEVELS[level], stream=sys.stderr, format="%(message)s")
    # httpx logs every MLflow call at INFO; the model store logs what matters as events.
    logging.getLogger("httpx").setLevel(logging.WARNING)
