"""Periodic review reports with their charts, and the spot-check queue (issue #14 items 5
and 6; R23, R30).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spot_check",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("withdrawal_id", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("bank_code", sa.String(16), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("right_category", sa.String(40), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("reviewer", sa.String(64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("event_key", name="uq_spot_check_event_key"),
    )
    op.create_index("ix_spot_check_day", "spot_check", ["day"])
    op.create_index("ix_spot_check_withdrawal_id", "spot_check", ["withdrawal_id"])
    op.create_table(
        "review_report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary_json", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("emailed_to", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="uq_review_report_key"),
    )
    op.create_index("ix_review_report_since", "review_report", ["since"])
    op.create_table(
        "review_chart",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("report_id", sa.Integer(), sa.ForeignKey("review_report.id"), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("report_id", "name", name="uq_review_chart_name"),
    )
    op.create_index("ix_review_chart_report_id", "review_chart", ["report_id"])


def downgrade() -> None:
    op.drop_index("ix_review_chart_report_id", table_name="review_chart")
    op.drop_table("review_chart")
    op.drop_index("ix_review_report_since", table_name="review_report")
    op.drop_table("review_report")
    op.drop_index("ix_spot_check_withdrawal_id", table_name="spot_check")
    op.drop_index("ix_spot_check_day", table_name="spot_check")
    op.drop_table("spot_check")
