"""Push addresses (issue #5): each user's device tokens for FCM and JPush.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("token", sa.String(512), nullable=False),
        sa.Column("platform", sa.String(16), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invalid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invalid_reason", sa.String(200), nullable=True),
        sa.UniqueConstraint("provider", "token", name="uq_device_token"),
    )
    op.create_index("ix_device_token_user_id", "device_token", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_device_token_user_id", table_name="device_token")
    op.drop_table("device_token")
