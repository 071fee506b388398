"""structlog set-up: one JSON object per line, events named `noun.verb`.

The service logs to stdout; the command logs its audit events to stderr so that its tables and
`--json` output on stdout stay clean.
"""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO

import orjson
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str, stream: BinaryIO | None = None) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(stream or sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (uvicorn, alembic) go to stderr.
    logging.basicConfig(level=_LEVELS[level], stream=sys.stderr, format="%(message)s")
    # MLflow's client and httpx log every call; the control plane logs what matters as events.
    for noisy in ("httpx", "urllib3", "mlflow", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
