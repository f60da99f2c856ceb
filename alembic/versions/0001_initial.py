"""Initial schema, as the foundation created it with ``create_all``: notice deliveries,
inbox, parked callbacks, withdrawal records (the projection), risk hits, audit log. A
database made before migrations existed is stamped with this revision (store.db.migrate)
and upgraded from here.

Written out with plain SQLAlchemy types (no imports from the application) so that this
file keeps meaning what it meant when later migrations change store/tables.py.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notice_delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        _str("key", 200),
        _str("withdrawal_id", 64),
        _str("user_id", 64),
        _str("channel", 32),
        _str("provider", 32),
        _str("stage", 32),
        _str("category", 40, True),
        _str("severity", 16),
        _str("template_id", 120, True),
        _str("policy_version", 40, True),
        _str("text_sha256", 64, True),
        _str("status", 16),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _str("provider_message_id", 200, True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("key", name="uq_notice_delivery_key"),
    )
    op.create_index("ix_notice_delivery_user_id", "notice_delivery", ["user_id"])
    op.create_index("ix_notice_delivery_withdrawal_id", "notice_delivery", ["withdrawal_id"])

    op.create_table(
        "inbox_message",
        sa.Column("id", sa.Integer(), primary_key=True),
        _str("key", 200),
        _str("user_id", 64),
        _str("withdrawal_id", 64),
        _str("stage", 32),
        _str("severity", 16),
        _str("locale", 8),
        _str("title", 200),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("read_at", True),
        sa.UniqueConstraint("key", name="uq_inbox_message_key"),
    )
    op.create_index("ix_inbox_message_user_id", "inbox_message", ["user_id"])
    op.create_index("ix_inbox_message_withdrawal_id", "inbox_message", ["withdrawal_id"])

    op.create_table(
        "parked_callback",
        sa.Column("id", sa.Integer(), primary_key=True),
        _str("channel", 32),
        _str("event_id", 128),
        _str("withdrawal_id", 64),
        sa.Column("observation_json", sa.Text(), nullable=False),
        _ts("received_at"),
        _ts("delivered_at", True),
        sa.UniqueConstraint("channel", "event_id", name="uq_parked_callback_event"),
    )
    op.create_index("ix_parked_callback_withdrawal_id", "parked_callback", ["withdrawal_id"])

    op.create_table(
        "withdrawal_record",
        _str("withdrawal_id", 64),
        _str("user_id", 64),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        _str("currency", 3),
        _str("channel", 32),
        _str("bank_code", 16),
        _str("card_last4", 4),
        _str("payee_fingerprint", 64),
        _str("locale", 8),
        _str("status", 16),
        _str("category", 40, True),
        _str("severity", 16),
        _str("reason_code", 64, True),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        _ts("review_since", True),
        _str("assignee", 64, True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("withdrawal_id"),
    )
    for column in ("created_at", "needs_review", "payee_fingerprint", "status", "user_id"):
        op.create_index(f"ix_withdrawal_record_{column}", "withdrawal_record", [column])

    op.create_table(
        "risk_hit",
        sa.Column("id", sa.Integer(), primary_key=True),
        _str("withdrawal_id", 64),
        _str("rule_id", 48),
        _str("rule_version", 40),
        sa.Column("detail", sa.Text(), nullable=False),
        _ts("at"),
    )
    op.create_index("ix_risk_hit_withdrawal_id", "risk_hit", ["withdrawal_id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ts("at"),
        _str("actor", 64),
        _str("role", 32),
        _str("action", 48),
        _str("withdrawal_id", 64, True),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_withdrawal_id", "audit_log", ["withdrawal_id"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "risk_hit",
        "withdrawal_record",
        "parked_callback",
        "inbox_message",
        "notice_delivery",
    ):
        op.drop_table(table)  # drops its indexes too
