"""The exception event record (issue #14, R27): one append-only row per fact of a
withdrawal's life (started, status transition, notice sent, notice read, unmapped code).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawal_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("withdrawal_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("bank_code", sa.String(16), nullable=True),
        sa.Column("amount_band", sa.String(16), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("delay_threshold_s", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("category", sa.String(40), nullable=True),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("notice_channel", sa.String(32), nullable=True),
        sa.Column("notice_key", sa.String(200), nullable=True),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("rung", sa.Integer(), nullable=True),
        sa.UniqueConstraint("key", name="uq_withdrawal_event_key"),
    )
    op.create_index("ix_withdrawal_event_withdrawal_id", "withdrawal_event", ["withdrawal_id"])
    op.create_index("ix_withdrawal_event_at", "withdrawal_event", ["at"])


def downgrade() -> None:
    op.drop_index("ix_withdrawal_event_at", table_name="withdrawal_event")
    op.drop_index("ix_withdrawal_event_withdrawal_id", table_name="withdrawal_event")
    op.drop_table("withdrawal_event")
