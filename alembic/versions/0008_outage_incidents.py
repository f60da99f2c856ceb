"""Outage incidents and the users told of them (issue #14 item 3).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outage_incident",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("signals", sa.String(40), nullable=False),
        sa.Column("config_version", sa.String(40), nullable=False),
    )
    op.create_index("ix_outage_incident_bank_code", "outage_incident", ["bank_code"])
    op.create_table(
        "outage_notice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("withdrawal_ids", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("incident_id", "user_id", "kind", name="uq_outage_notice"),
    )
    op.create_index("ix_outage_notice_incident_id", "outage_notice", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_outage_notice_incident_id", table_name="outage_notice")
    op.drop_table("outage_notice")
    op.drop_index("ix_outage_incident_bank_code", table_name="outage_incident")
    op.drop_table("outage_incident")
