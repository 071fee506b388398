"""Create the prediction log: one row per /predict request, indexed for newest-first pages.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE = "prediction_records"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("time", sa.Float(precision=53), nullable=False),
        sa.Column("model_name", sa.String(256), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_source", sa.String(16), nullable=True),
        sa.Column("latency_ms", sa.Float(precision=53), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("confidences", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
    )
    op.create_index(f"ix_{TABLE}_request_id_time", TABLE, ["request_id", "time"], unique=True)
    for columns in (
        ["time"],
        ["outcome", "time"],
        ["error_source", "time"],
        ["model_version", "time"],
    ):
        op.create_index(f"ix_{TABLE}_{'_'.join(columns)}_id", TABLE, [*columns, "id"])


def downgrade() -> None:
    op.drop_table(TABLE)
