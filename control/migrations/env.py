"""Alembic environment of the prediction log.

`control.database.migrate()` passes its own connection in `config.attributes["connection"]`;
run by hand (`alembic -c control/migrations/alembic.ini ...`), the URL comes from the settings
(`MLSTACK_CONTROL_DATABASE_URI` or `MLSTACK_CONTROL_SQLITE_PATH`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from control.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from control.database import open_engine
    from control.settings import ControlSettings

    engine = open_engine(ControlSettings().database_url())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run against a database")
_online()
