"""Signed review decisions (issue #11): the workflow writes the audit row of each decision
it applies, once per decision token (its nonce is the row's ``ref``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("ref", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_audit_ref", ["withdrawal_id", "ref"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_ref", type_="unique")
        batch.drop_column("ref")
