"""Operators' tables (issue #3): the outcome of each parked callback (applied, late,
redelivered) and the unmapped codes seen from the channels.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parked_callback") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))
    op.create_table(
        "unmapped_code",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("raw_status", sa.String(64), nullable=False),
        sa.Column("raw_code", sa.String(64), nullable=False),
        sa.Column("subtype", sa.String(40), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_withdrawal_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("channel", "raw_status", "raw_code", name="uq_unmapped_code"),
    )


def downgrade() -> None:
    op.drop_table("unmapped_code")
    with op.batch_alter_table("parked_callback") as batch:
        batch.drop_column("outcome")
