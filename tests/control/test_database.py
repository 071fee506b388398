"""The prediction log's schema and store on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import time

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from control.database import migrate, open_engine
from control.prediction_log import PredictionLog
from control.schemas import PredictionQuery, PredictionRecord
from control.tables import Base, PredictionRow
from tests.control.records import record


def test_migrations_build_exactly_the_schema_the_models_describe(database_uri: str) -> None:
    engine = open_engine(database_uri)
    try:
        assert migrate(engine) == "0001"
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        indexes = {i["name"] for i in inspect(engine).get_indexes(PredictionRow.__tablename__)}
        assert {
            "ix_prediction_records_time_id",
            "ix_prediction_records_outcome_time_id",
            "ix_prediction_records_error_source_time_id",
            "ix_prediction_records_model_version_time_id",
            "ix_prediction_records_request_id_time",
        } <= indexes
    finally:
        engine.dispose()


def test_migrating_again_keeps_the_data(database_uri: str) -> None:
    engine = open_engine(database_uri)
    try:
        migrate(engine)
        store = PredictionLog(engine)
        store.add([PredictionRecord(**record("kept", time.time()))])
        assert migrate(engine) == "0001"
        total, items = store.query(PredictionQuery())
        assert total == 1 and items[0]["request_id"] == "kept"
    finally:
        engine.dispose()


def test_purge_deletes_only_older_records_across_chunks(database_uri: str) -> None:
    engine = open_engine(database_uri)
    try:
        migrate(engine)
        store = PredictionLog(engine)
        cutoff = 1_700_000_000.0
        old = [PredictionRecord(**record(f"old-{i}", cutoff - 1 - i)) for i in range(7)]
        new = [PredictionRecord(**record(f"new-{i}", cutoff + i)) for i in range(3)]
        store.add(old + new)
        assert store.purge(cutoff, chunk=3) == 7
        total, items = store.query(PredictionQuery())
        assert total == 3
        assert [i["request_id"] for i in items] == ["new-2", "new-1", "new-0"]
        assert store.purge(cutoff, chunk=3) == 0
    finally:
        engine.dispose()
