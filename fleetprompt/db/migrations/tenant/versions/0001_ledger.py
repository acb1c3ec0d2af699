"""Tenant ledger tables: signals, directives, signal_deliveries.

Revision ID: t0001
Revises:

Tenant migrations name no schema: they run with the tenant's schema as search_path (PostgreSQL)
or on the tenant's own file (SQLite).
"""

import sqlalchemy as sa
from alembic import op

from fleetprompt.models.base import JSONType, UTCDateTime

revision = "t0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(512), nullable=False),
        sa.Column("actor_type", sa.String(64), nullable=True),
        sa.Column("actor_id", sa.String(255), nullable=True),
        sa.Column("subject_type", sa.String(64), nullable=True),
        sa.Column("subject_id", sa.String(255), nullable=True),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("causation_id", sa.String(255), nullable=True),
        sa.Column("metadata", JSONType, nullable=False),
        sa.UniqueConstraint("dedupe_key", name="uq_signals_dedupe_key"),
    )
    op.create_index("ix_signals_subject", "signals", ["subject_type", "subject_id", "occurred_at"])
    op.create_index("ix_signals_name_occurred", "signals", ["name", "occurred_at"])
    op.create_index("ix_signals_occurred", "signals", ["occurred_at"])
    op.create_index("ix_signals_correlation", "signals", ["correlation_id"])

    op.create_table(
        "directives",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("idempotency_key", sa.String(512), nullable=False),
        sa.Column("args_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("scheduled_at", UTCDateTime(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_number", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(255), nullable=True),
        sa.Column("requested_by_type", sa.String(32), nullable=False),
        sa.Column("requested_via", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("subject_type", sa.String(64), nullable=True),
        sa.Column("subject_id", sa.String(255), nullable=True),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("causation_id", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_directives_idempotency_key"),
        sa.CheckConstraint(
            "status IN ('awaiting_approval', 'requested', 'running', 'succeeded', 'failed', 'canceled')",
            name="ck_directives_status",
        ),
    )
    op.create_index("ix_directives_due", "directives", ["status", "scheduled_at"])
    op.create_index("ix_directives_subject", "directives", ["subject_type", "subject_id", "created_at"])
    op.create_index("ix_directives_name", "directives", ["name", "created_at"])
    op.create_index("ix_directives_created", "directives", ["created_at"])
    op.create_index("ix_directives_args", "directives", ["args_hash"])

    op.create_table(
        "signal_deliveries",
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("handler", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("signal_id", "handler"),
    )
    op.create_index("ix_signal_deliveries_pending", "signal_deliveries", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_table("signal_deliveries")
    op.drop_table("directives")
    op.drop_table("signals")
