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
        assert migrate(engine) == "0002"
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
            "ix_prediction_records_shadow_model_version_live_version_time_id",
        } <= indexes
    finally:
        engine.dispose()


def test_migrating_again_keeps_the_data(database_uri: str) -> None:
    engine = open_engine(database_uri)
    try:
        migrate(engine)
        store = PredictionLog(engine)
        store.add([PredictionRecord(**record("kept", time.time()))])
        assert migrate(engine) == "0002"
        total, items = store.query(PredictionQuery())
        assert total == 1 and items[0]["request_id"] == "kept"
    finally:
        engine.dispose()


def test_a_log_of_the_first_schema_upgrades_with_its_records_as_answers(database_uri: str) -> None:
    """A control plane of the previous release left a 0001 database with records: 0002 keeps
    them, flagged as answers (not shadow records), and they count in no agreement."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from control.database import MIGRATIONS

    engine = open_engine(database_uri)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(
                text(
                    "INSERT INTO prediction_records (request_id, time, model_version, status, "
                    "outcome, latency_ms, rows, labels, confidences) VALUES ('old', 1.0, '3', "
                    "200, 'success', 1.5, 1, '[\"a\"]', '[0.9]')"
                )
            )
        assert migrate(engine) == "0002"
        store = PredictionLog(engine)
        total, items = store.query(PredictionQuery(shadow=False))
        assert total == 1 and items[0]["request_id"] == "old" and items[0]["shadow"] is False
        assert store.query(PredictionQuery(shadow=True))[0] == 0
        assert store.agreement("3").rows == 0
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
