"""The prediction log's table, as SQLAlchemy 2 declarative models.

The schema is created and changed by the Alembic migrations in `control/migrations/` only; a
test checks that the migrations' result and these models agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints and indexes: migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite makes an INTEGER PRIMARY KEY the rowid (auto-increment, no extra index); PostgreSQL
# gets a BIGINT identity.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PredictionRow(Base):
    """One /predict request. `time` is epoch seconds (the sender's clock), `id` the order of
    arrival: newest first is `time DESC, id DESC`, and every index ends with both so that a
    filtered page is read from the index in order and stops after `limit` rows."""

    __tablename__ = "prediction_records"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128))
    time: Mapped[float] = mapped_column(Float(precision=53))
    model_name: Mapped[str | None] = mapped_column(String(256))
    model_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(SmallInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    error_source: Mapped[str | None] = mapped_column(String(16))
    latency_ms: Mapped[float] = mapped_column(Float(precision=53))
    rows: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list[str]] = mapped_column(JSON)
    confidences: Mapped[list[float]] = mapped_column(JSON)
    features: Mapped[list[list[float]] | None] = mapped_column(JSON)
    # A shadow prediction (the shadow alias's version beside `live_version`), not an answer.
    shadow: Mapped[bool] = mapped_column(Boolean, server_default=false())
    live_version: Mapped[str | None] = mapped_column(String(64))
    agreed_rows: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        # A batch the sender retries after a lost answer is stored once.
        Index(None, "request_id", "time", unique=True),
        Index(None, "time", "id"),
        Index(None, "outcome", "time", "id"),
        Index(None, "error_source", "time", "id"),
        Index(None, "model_version", "time", "id"),
        Index(None, "shadow", "model_version", "live_version", "time", "id"),
    )
