"""Time the prediction log's queries at a million rows: `python -m bench.log_queries`.

Fills a fresh database through the store's own ingest path (batches of 1000 records, 30 days
of traffic: 95% successes, errors of every source, five model versions in turn), then times
each query the API serves — the page and the total, the two statements GET /v1/predictions
runs — and a day of retention. SQLite by default (a temporary file); `--database-uri` for any
database, or `--postgres` for a throwaway PostgreSQL server (a repository checkout with
Debian's postgresql).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from control.database import describe, migrate, open_engine
from control.prediction_log import PredictionLog, count_statement, page_statement
from control.render import table
from control.schemas import ErrorSource, PredictionQuery, PredictionRecord

DAY = 86_400.0
# Error source, HTTP status, share of all requests.
_ERRORS: tuple[tuple[ErrorSource, int, float], ...] = (
    ("validation", 422, 0.03),
    ("auth", 401, 0.01),
    ("limit", 413, 0.005),
    ("model", 500, 0.005),
)
_LABELS = ("setosa", "versicolor", "virginica")


def _records(rows: int, end: float, seed: int) -> Iterator[list[PredictionRecord]]:
    """`rows` records spread evenly over the 30 days before `end`, oldest first, in batches."""
    rng = random.Random(seed)
    start = end - 30 * DAY
    step = (end - start) / rows
    batch: list[PredictionRecord] = []
    for i in range(rows):
        moment = start + i * step
        version = str(1 + int((moment - start) // (6 * DAY)))
        draw = rng.random()
        status: int = 200
        source: ErrorSource | None = None
        edge = 0.0
        for name, code, share in _ERRORS:
            edge += share
            if draw < edge:
                status, source = code, name
                break
        success = source is None
        batch.append(
            PredictionRecord(
                request_id=f"{i:016x}",
                time=moment,
                model_name="mlstack-classifier",
                model_version=version,
                status=status,
                outcome="success" if success else "error",
                error_source=source,
                latency_ms=rng.uniform(0.5, 5.0),
                rows=1 if success else 0,
                labels=[rng.choice(_LABELS)] if success else [],
                confidences=[rng.uniform(0.5, 1.0)] if success else [],
            )
        )
        if len(batch) == 1000:
            yield batch
            batch = []
    if batch:
        yield batch


def _queries(end: float) -> list[tuple[str, PredictionQuery]]:
    return [
        ("newest page", PredictionQuery()),
        ("errors", PredictionQuery(status="error")),
        ("successes", PredictionQuery(status="success")),
        ("validation errors", PredictionQuery(source="validation")),
        ("one version", PredictionQuery(model_version="3")),
        ("last hour", PredictionQuery(since=end - 3600)),
        (
            "errors of v5, last day",
            PredictionQuery(status="error", model_version="5", since=end - DAY),
        ),
        ("1000 per page", PredictionQuery(limit=1000)),
        ("page at offset 10k", PredictionQuery(status="success", offset=10_000)),
        ("page at offset 500k", PredictionQuery(offset=500_000)),
    ]


def _median_ms(engine: Engine, statement: Any, repeat: int) -> tuple[float, Any]:
    """Median wall time of `statement` over `repeat` runs after a warm-up, and its result."""
    timings = []
    with engine.connect() as connection:
        result = connection.execute(statement).all()  # warm: steady state is what users see
        for _ in range(repeat):
            started = time.perf_counter()
            result = connection.execute(statement).all()
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


def _plan(engine: Engine, statement: Any) -> str:
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        rows = connection.execute(text(prefix + sql)).all()
    return "\n".join(f"    {row[-1]}" for row in rows)


def run(uri: str, rows: int, repeat: int, explain: bool) -> None:
    engine = open_engine(uri)
    migrate(engine)
    store = PredictionLog(engine)
    with engine.connect() as connection:
        existing = connection.execute(text("SELECT count(*) FROM prediction_records")).scalar()
    if existing:
        raise SystemExit(f"error: {describe(engine)} already holds {existing} records")
    end = time.time()
    print(f"database {describe(engine)} ({engine.dialect.name})", flush=True)
    started = time.perf_counter()
    for n, batch in enumerate(_records(rows, end, seed=8), start=1):
        store.add(batch)
        if n % 100 == 0:
            print(f"  ingested {n * 1000} records", flush=True)
    seconds = time.perf_counter() - started
    print(f"ingest: {rows} records in {seconds:.1f} s ({rows / seconds:,.0f} records/s)")
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE prediction_records"))
    else:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))

    rows_out: list[tuple[Any, ...]] = []
    plans = []
    for name, query in _queries(end):
        page_ms, page = _median_ms(engine, page_statement(query), repeat)
        count_ms, count = _median_ms(engine, count_statement(query), repeat)
        assert len(page) == min(query.limit, max(count[0][0] - query.offset, 0))
        rows_out.append(
            (
                name,
                f"{count[0][0]:,}",
                f"{page_ms:.1f}",
                f"{count_ms:.1f}",
                f"{page_ms + count_ms:.1f}",
            )
        )
        if explain:
            plans.append(
                f"{name}\n  page:\n{_plan(engine, page_statement(query))}"
                f"\n  count:\n{_plan(engine, count_statement(query))}"
            )
    print()
    headers = ("QUERY (limit 50 unless named)", "TOTAL", "PAGE MS", "COUNT MS", "API MS")
    print(table(headers, rows_out))
    if plans:
        print("\nplans:\n" + "\n".join(plans))
    started = time.perf_counter()
    deleted = store.purge(end - 29 * DAY)
    print(
        f"\nretention: deleted the oldest day ({deleted:,} records) in "
        f"{time.perf_counter() - started:.2f} s"
    )
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.log_queries", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="records to ingest")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each query")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-uri", help="an empty database (default: temporary SQLite)")
    where.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL server"
    )
    args = parser.parse_args(argv)
    if args.database_uri:
        run(args.database_uri, args.rows, args.repeat, args.explain)
    elif args.postgres:
        from devsupport.processes import start_postgres

        server = start_postgres()
        try:
            run(server.uri, args.rows, args.repeat, args.explain)
        finally:
            server.stop()
    else:
        with tempfile.TemporaryDirectory(prefix="mlstack-bench-log-") as tmp:
            run(f"sqlite:///{Path(tmp) / 'predictions.db'}", args.rows, args.repeat, args.explain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
