"""The prediction log's database: an engine for SQLite or PostgreSQL, and schema migrations.

SQLite is the default (a file on a PVC, one control-plane replica); PostgreSQL is chosen by
URI. The schema is Alembic's: `migrate()` brings any database to the newest revision and runs
at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, event, make_url, text

log = structlog.get_logger("control.database")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: two replicas starting together on PostgreSQL migrate one after the other.
_MIGRATION_LOCK = 7_302_455_118


class DatabaseError(Exception):
    """The database cannot be opened or migrated."""


def open_engine(url: str) -> Engine:
    """An engine for `url`. For SQLite the file's directory is created and the connection set
    up for one writer beside readers (WAL, a busy timeout instead of immediate lock errors)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the directory of {parsed.database}: {exc}") from exc
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def migrate(engine: Engine) -> str:
    """Upgrade the schema to the newest revision; returns it. Raises DatabaseError."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            before = MigrationContext.configure(connection).get_current_revision()
            if before != head:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                log.info("database.migrated", before=before, after=head)
    except Exception as exc:
        raise DatabaseError(f"migrating the prediction log to {head} failed: {exc}") from exc
    return str(head)


def describe(engine: Engine) -> str:
    """The engine's URL without its password, for logs."""
    return engine.url.render_as_string(hide_password=True)
