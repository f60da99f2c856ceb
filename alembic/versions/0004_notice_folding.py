"""Folding (issue #5): a batched notice keeps when its window ends and the withdrawal
status it speaks of, so the digest leaves out what is no longer true.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notice_delivery") as batch:
        batch.add_column(sa.Column("send_after", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("notice_status", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notice_delivery") as batch:
        batch.drop_column("notice_status")
        batch.drop_column("send_after")
