"""Tenant chat tables: conversations, messages (pydantic-ai messages as JSON, model, usage) and tool calls.

Revision ID: t0003
Revises: t0002
"""

import sqlalchemy as sa
from alembic import op

from fleetprompt.models.base import JSONType, UTCDateTime

revision = "t0003"
down_revision = "t0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("running_turn", sa.String(64), nullable=True),
        sa.Column("running_since", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_chat_conversations_owner_id", "chat_conversations", ["owner_id"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("turn_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("parts", JSONType, nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("usage", JSONType, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_chat_messages_seq"),
    )
    op.create_index("ix_chat_messages_conversation_id", "chat_messages", ["conversation_id"])
    op.create_index("ix_chat_messages_turn_id", "chat_messages", ["turn_id"])
    op.create_table(
        "chat_tool_calls",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("turn_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("tool_call_id", sa.String(200), nullable=False),
        sa.Column("tool", sa.String(100), nullable=False),
        sa.Column("arguments", JSONType, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("directive_id", sa.Uuid(), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("conversation_id", "tool_call_id", name="uq_chat_tool_calls_call"),
    )
    op.create_index("ix_chat_tool_calls_conversation_id", "chat_tool_calls", ["conversation_id"])
    op.create_index("ix_chat_tool_calls_directive_id", "chat_tool_calls", ["directive_id"])


def downgrade() -> None:
    op.drop_table("chat_tool_calls")
    op.drop_table("chat_messages")
    op.drop_table("chat_conversations")
