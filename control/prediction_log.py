"""The prediction log store: append batches, read filtered newest-first pages, apply retention.

Synchronous SQLAlchemy: the service calls it from worker threads (it is not a hot path), the
benchmark and the tests call it directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Engine, Select, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from control import metrics
from control.schemas import Agreement, PredictionQuery, PredictionRecord
from control.tables import PredictionRow

log = structlog.get_logger("control.prediction_log")

_T = PredictionRow
_COLUMNS = tuple(_T.__table__.columns)
_NEWEST_FIRST = (_T.time.desc(), _T.id.desc())
_DAY = 86_400.0


class PredictionLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        if dialect == "sqlite":
            self._insert: Any = sqlite.insert
        elif dialect == "postgresql":
            self._insert = postgresql.insert
        else:
            raise ValueError(f"the prediction log supports SQLite and PostgreSQL, not {dialect}")

    def add(self, records: Sequence[PredictionRecord]) -> None:
        """Store a batch in one transaction. A record already stored (same request id and
        time: a batch sent again after a lost answer) is skipped, not duplicated."""
        if not records:
            return
        rows = [r.model_dump() for r in records]
        statement = self._insert(_T).on_conflict_do_nothing(index_elements=["request_id", "time"])
        with self.engine.begin() as connection:
            connection.execute(statement, rows)

    def query(self, q: PredictionQuery) -> tuple[int, list[dict[str, Any]]]:
        """(total matching, the requested page newest first), read in one connection."""
        with self.engine.connect() as connection:
            total = connection.execute(count_statement(q)).scalar_one()
            rows = connection.execute(page_statement(q))
            return int(total), [dict(row._mapping) for row in rows]

    def agreement(
        self, model_version: str, live_version: str | None = None, since: float | None = None
    ) -> Agreement:
        """How often `model_version`'s shadow records agreed with the answers (beside
        `live_version` only, when given; from `since`, when given)."""
        where = [_T.shadow.is_(True), _T.model_version == model_version]
        if live_version is not None:
            where.append(_T.live_version == live_version)
        if since is not None:
            where.append(_T.time >= since)
        statement = select(
            func.coalesce(func.sum(_T.rows), 0), func.coalesce(func.sum(_T.agreed_rows), 0)
        ).where(*where)
        with self.engine.connect() as connection:
            total, matched = connection.execute(statement).one()
        rows, agreed = int(total or 0), int(matched or 0)
        return Agreement(
            model_version=model_version,
            live_version=live_version,
            rows=rows,
            agreed_rows=agreed,
            agreement=agreed / rows if rows else None,
        )

    def purge(self, before: float, chunk: int = 10_000) -> int:
        """Delete records older than `before` (epoch seconds) in chunks, each its own short
        transaction so that writers are never blocked for long. Returns how many went."""
        deleted = 0
        while True:
            oldest = select(_T.id).where(_T.time < before).order_by(_T.time).limit(chunk)
            with self.engine.begin() as connection:
                result = connection.execute(delete(_T).where(_T.id.in_(oldest.scalar_subquery())))
            deleted += result.rowcount
            if result.rowcount < chunk:
                return deleted

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def count_statement(q: PredictionQuery) -> Select[int]:
    return select(func.count()).select_from(_T).where(*_conditions(q))


def page_statement(q: PredictionQuery) -> Select[Any]:
    # The page's ids come from an index alone (every filter index ends with time, id), so
    # skipping `offset` entries touches no table rows; only the page's rows are read.
    ids = (
        select(_T.id)
        .where(*_conditions(q))
        .order_by(*_NEWEST_FIRST)
        .limit(q.limit)
        .offset(q.offset)
    )
    return select(*_COLUMNS).where(_T.id.in_(ids.scalar_subquery())).order_by(*_NEWEST_FIRST)


def _conditions(q: PredictionQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if q.status is not None:
        where.append(_T.outcome == q.status)
    if q.source is not None:
        where.append(_T.error_source == q.source)
    if q.model_version is not None:
        where.append(_T.model_version == q.model_version)
    if q.shadow is not None:
        where.append(_T.shadow.is_(q.shadow))
    if q.since is not None:
        where.append(_T.time >= q.since)
    if q.until is not None:
        where.append(_T.time < q.until)
    return where


async def apply_retention(store: PredictionLog, days: float, interval_seconds: float) -> None:
    """Every `interval_seconds`, delete records older than `days` (first run at once).
    Runs until cancelled; a failed run is logged and counted, and retried next interval."""
    while True:
        started = time.monotonic()
        cutoff = time.time() - days * _DAY
        try:
            deleted = await asyncio.to_thread(store.purge, cutoff)
        except Exception as exc:  # the database may be away: the next run tries again
            metrics.RETENTION_RUNS.labels("failed").inc()
            log.error("retention.failed", error=str(exc))
        else:
            metrics.RETENTION_RUNS.labels("success").inc()
            metrics.RETENTION_DELETED.inc(deleted)
            metrics.RETENTION_LAST_SUCCESS.set(time.time())
            log.info(
                "retention.applied",
                deleted=deleted,
                cutoff=cutoff,
                seconds=round(time.monotonic() - started, 3),
            )
        await asyncio.sleep(interval_seconds)
