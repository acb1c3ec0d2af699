"""Tenant chat tables: conversations, their messages (pydantic-ai messages as JSON) and the tool calls they made."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleetprompt.models.base import TENANT_SCHEMA, JSONType, UTCDateTime, utcnow, uuid7

CONVERSATION_ID_MAX = 64


class MessageRole(StrEnum):
    user = "user"  # a request carrying the person's prompt
    tool = "tool"  # a request carrying tool results (or approval outcomes) back to the model
    assistant = "assistant"  # a model response


class TurnStatus(StrEnum):
    running = "running"  # the turn is being answered
    complete = "complete"
    interrupted = "interrupted"  # the client went away or the run failed: the turn ends here, consistently


class ToolCallStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"  # the tool answered (a directive tool: it filed; the directive has its own status)
    failed = "failed"  # the tool refused (a caller's mistake) or failed on our side
    awaiting_approval = "awaiting_approval"  # filed, waiting for a person to approve it
    denied = "denied"  # the person denied it in the chat: the directive was canceled


class ChatConversation(SQLModel, table=True):
    __tablename__ = "chat_conversations"
    __table_args__ = {"schema": TENANT_SCHEMA}

    id: str = Field(primary_key=True, max_length=CONVERSATION_ID_MAX)
    owner_id: uuid.UUID = Field(index=True)
    title: str = Field(default="New conversation", max_length=200)
    # The turn being answered now: one at a time per conversation (a stale claim expires, see the store).
    running_turn: str | None = Field(default=None, max_length=64)
    running_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_chat_messages_seq"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    conversation_id: str = Field(index=True, max_length=CONVERSATION_ID_MAX)
    seq: int
    turn_id: str = Field(max_length=64, index=True)
    role: str = Field(max_length=16)
    # One pydantic-ai ModelMessage (ModelMessagesTypeAdapter's JSON form): the history the model sees next turn.
    parts: dict[str, Any] = Field(sa_column=Column("parts", JSONType, nullable=False))
    model: str | None = Field(default=None, max_length=200)
    usage: dict[str, Any] | None = Field(default=None, sa_column=Column("usage", JSONType, nullable=True))
    status: str = Field(default=TurnStatus.complete.value, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ChatToolCall(SQLModel, table=True):
    __tablename__ = "chat_tool_calls"
    __table_args__ = (
        UniqueConstraint("conversation_id", "tool_call_id", name="uq_chat_tool_calls_call"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    conversation_id: str = Field(index=True, max_length=CONVERSATION_ID_MAX)
    turn_id: str = Field(max_length=64)
    # The person's message whose turn made this call: the directive's causation points here.
    message_id: uuid.UUID | None = None
    tool_call_id: str = Field(max_length=200)
    tool: str = Field(max_length=100)
    arguments: dict[str, Any] = Field(sa_column=Column("arguments", JSONType, nullable=False))
    status: str = Field(default=ToolCallStatus.running.value, max_length=24)
    result: dict[str, Any] | None = Field(default=None, sa_column=Column("result", JSONType, nullable=True))
    error: str | None = Field(default=None, sa_column=Column("error", Text, nullable=True))
    directive_id: uuid.UUID | None = Field(default=None, index=True)
    correlation_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
