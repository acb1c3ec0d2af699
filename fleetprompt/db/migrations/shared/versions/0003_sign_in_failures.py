"""Failed web sign-ins, counted per email and per client address to limit password guessing.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from fleetprompt.models.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_sign_in_failures_email", "sign_in_failures", ["email"])
    op.create_index("ix_sign_in_failures_client_ip", "sign_in_failures", ["client_ip"])
    op.create_index("ix_sign_in_failures_occurred_at", "sign_in_failures", ["occurred_at"])


def downgrade() -> None:
    op.drop_table("sign_in_failures")
