"""Shadow records: the shadow alias's predictions beside the answers, with their agreement.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "prediction_records"
INDEX = f"ix_{TABLE}_shadow_model_version_live_version_time_id"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(
            sa.Column("shadow", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("live_version", sa.String(64), nullable=True))
        batch.add_column(sa.Column("agreed_rows", sa.Integer(), nullable=True))
    op.create_index(INDEX, TABLE, ["shadow", "model_version", "live_version", "time", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("agreed_rows")
        batch.drop_column("live_version")
        batch.drop_column("shadow")
