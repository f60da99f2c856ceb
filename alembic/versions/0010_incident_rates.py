"""An outage incident's rates as data (issue #14 items 3 and 5): each signal's rate, baseline
rate and p-value when it fired, for the operations console and ``GET /v1/ops/incidents``
(before: only the summary sentence of the alert). Incidents recorded before it have none.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outage_incident") as batch:
        batch.add_column(sa.Column("rates", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outage_incident") as batch:
        batch.drop_column("rates")
