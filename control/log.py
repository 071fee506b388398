"""The control plane's log set-up (`kernel.log`), with the libraries it quiets.

The service logs to stdout; the command logs its audit events to stderr so that its tables and
`--json` output on stdout stay clean.
"""

from __future__ import annotations

from typing import BinaryIO

from kernel import log

# MLflow's client and httpx log every call; the control plane logs what matters as events.
QUIET = ("httpx", "urllib3", "mlflow", "alembic.runtime.migration")


def configure(level: str, stream: BinaryIO | None = None) -> None:
    log.configure(level, stream, QUIET)
