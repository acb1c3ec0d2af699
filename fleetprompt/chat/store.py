"""Conversations, their messages and tool calls, kept in the tenant's own tables (the server's copy is the truth)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelRequest, ModelResponse, UserPromptPart
from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from fleetprompt.db.engine import Database
from fleetprompt.errors import InvalidInput, NotFound
from fleetprompt.models.base import utcnow, uuid7
from fleetprompt.models.chat import (
    ChatConversation,
    ChatMessage,
    ChatToolCall,
    MessageRole,
    ToolCallStatus,
    TurnStatus,
)

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TITLE_LENGTH = 80
TURN_LEASE = timedelta(minutes=10)  # a turn still "running" after this died with its process


@dataclass(frozen=True)
class ConversationView:
    id: str
    owner_id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ToolCallView:
    tool_call_id: str
    tool: str
    arguments: dict[str, Any]
    status: str
    result: dict[str, Any] | None
    error: str | None
    directive_id: uuid.UUID | None
    message_id: uuid.UUID | None
    turn_id: str
    correlation_id: str


@dataclass(frozen=True)
class StoredMessage:
    id: uuid.UUID
    role: str
    status: str
    message: ModelMessage
    model: str | None
    usage: dict[str, Any] | None


def check_conversation_id(conversation_id: str) -> str:
    if not isinstance(conversation_id, str) or not CONVERSATION_ID.fullmatch(conversation_id):
        raise InvalidInput("conversation id must be 1-64 letters, digits, '-' or '_'")
    return conversation_id


def _view(row: ChatConversation) -> ConversationView:
    return ConversationView(row.id, row.owner_id, row.title, row.created_at, row.updated_at)


def _tool_view(row: ChatToolCall) -> ToolCallView:
    return ToolCallView(
        row.tool_call_id, row.tool, row.arguments, row.status, row.result, row.error, row.directive_id,
        row.message_id, row.turn_id, row.correlation_id,
    )  # fmt: skip


def _dump(message: ModelMessage) -> dict[str, Any]:
    return ModelMessagesTypeAdapter.dump_python([message], mode="json")[0]


def _load(parts: dict[str, Any]) -> ModelMessage:
    return ModelMessagesTypeAdapter.validate_python([parts])[0]


def role_of(message: ModelMessage) -> MessageRole:
    if isinstance(message, ModelResponse):
        return MessageRole.assistant
    if any(isinstance(part, UserPromptPart) for part in message.parts):
        return MessageRole.user
    return MessageRole.tool


class ConversationStore:
    """One tenant's chats. Every read is scoped to the organization (its own tables) and to the owner."""

    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant

    # ------------------------------------------------------------------ conversations

    def begin_turn(self, owner_id: uuid.UUID, conversation_id: str, turn_id: str) -> bool:
        """Create the owner's conversation if new, and claim it for this turn. False while another turn runs
        (a double submit, a second tab): turns never interleave. A claim older than TURN_LEASE is stale."""
        check_conversation_id(conversation_id)
        now = utcnow()
        try:
            with self.db.transaction(self.tenant) as session:
                row = session.get(ChatConversation, conversation_id)
                if row is None:
                    session.add(
                        ChatConversation(id=conversation_id, owner_id=owner_id, running_turn=turn_id, running_since=now)
                    )
                    return True
                if row.owner_id != owner_id:
                    raise NotFound(f"conversation {conversation_id!r} not found")
                claimed = session.execute(
                    update(ChatConversation)
                    .where(
                        ChatConversation.id == conversation_id,  # type: ignore[arg-type]
                        or_(
                            col(ChatConversation.running_turn).is_(None),
                            col(ChatConversation.running_since) < now - TURN_LEASE,
                        ),
                    )
                    .values(running_turn=turn_id, running_since=now)
                )
                return claimed.rowcount == 1
        except IntegrityError:
            return False  # created by a concurrent first turn, which holds it

    def end_turn(self, conversation_id: str, turn_id: str) -> None:
        """Release the claim (only this turn's)."""
        with self.db.transaction(self.tenant) as session:
            session.execute(_release(conversation_id, turn_id))

    def visible(self, owner_id: uuid.UUID, conversation_id: str) -> ConversationView | None:
        """The owner's conversation, None when no conversation has this id yet; someone else's is not found."""
        check_conversation_id(conversation_id)
        with self.db.reading(self.tenant) as session:
            row = session.get(ChatConversation, conversation_id)
        if row is not None and row.owner_id != owner_id:
            raise NotFound(f"conversation {conversation_id!r} not found")
        return _view(row) if row is not None else None

    def list(self, owner_id: uuid.UUID, limit: int = 50) -> list[ConversationView]:
        with self.db.reading(self.tenant) as session:
            rows = session.exec(
                select(ChatConversation)
                .where(ChatConversation.owner_id == owner_id)
                .order_by(col(ChatConversation.updated_at).desc())
                .limit(limit)
            ).all()
        return [_view(row) for row in rows]

    # ------------------------------------------------------------------ messages

    def start_turn(self, conversation_id: str, turn_id: str, prompt: str | None) -> uuid.UUID | None:
        """Record the person's message before the model sees it, so a turn that dies still shows what was asked.
        Returns the message id (the cause of whatever the turn files), or None for a turn without a prompt."""
        if prompt is None:
            return None
        message = ModelRequest(parts=[UserPromptPart(prompt)])
        with self.db.transaction(self.tenant) as session:
            row = ChatMessage(
                id=uuid7(),
                conversation_id=conversation_id,
                seq=self._next_seq(session, conversation_id),
                turn_id=turn_id,
                role=MessageRole.user.value,
                parts=_dump(message),
                status=TurnStatus.running.value,
            )
            session.add(row)
            conversation = session.get(ChatConversation, conversation_id)
            if conversation is not None:
                if conversation.title == "New conversation" and prompt.strip():
                    conversation.title = _title(prompt)
                conversation.updated_at = utcnow()
            return row.id

    def finish_turn(
        self,
        conversation_id: str,
        turn_id: str,
        messages: list[ModelMessage],
        *,
        model: str | None,
        status: TurnStatus = TurnStatus.complete,
    ) -> None:
        """Store what the turn added. The prompt recorded by start_turn is replaced by the run's own request."""
        with self.db.transaction(self.tenant) as session:
            started = session.exec(
                select(ChatMessage).where(
                    ChatMessage.conversation_id == conversation_id,
                    ChatMessage.turn_id == turn_id,
                    ChatMessage.role == MessageRole.user.value,
                )
            ).first()
            pending = list(messages)
            if started is not None:
                if pending and role_of(pending[0]) == MessageRole.user:
                    started.parts = _dump(pending.pop(0))
                started.status = status.value
            seq = self._next_seq(session, conversation_id)
            for index, message in enumerate(pending):
                is_response = isinstance(message, ModelResponse)
                session.add(
                    ChatMessage(
                        conversation_id=conversation_id,
                        seq=seq + index,
                        turn_id=turn_id,
                        role=role_of(message).value,
                        parts=_dump(message),
                        model=(message.model_name or model) if is_response else None,
                        usage=_usage_of(message) if is_response else None,
                        status=status.value,
                    )
                )
            session.execute(
                update(ChatConversation).where(ChatConversation.id == conversation_id).values(updated_at=utcnow())
            )
            session.execute(_release(conversation_id, turn_id))

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        with self.db.reading(self.tenant) as session:
            rows = session.exec(
                select(ChatMessage).where(ChatMessage.conversation_id == conversation_id).order_by(ChatMessage.seq)
            ).all()
        return [StoredMessage(r.id, r.role, r.status, _load(r.parts), r.model, r.usage) for r in rows]

    def history(self, conversation_id: str) -> list[ModelMessage]:
        """What the model sees: every stored message in order (an interrupted turn ends with its note)."""
        return [stored.message for stored in self.messages(conversation_id)]

    @staticmethod
    def _next_seq(session: Any, conversation_id: str) -> int:
        current = session.exec(
            select(func.max(ChatMessage.seq)).where(ChatMessage.conversation_id == conversation_id)
        ).one()
        return (current or 0) + 1

    # ------------------------------------------------------------------ tool calls

    def tool_call_started(
        self,
        conversation_id: str,
        turn_id: str,
        message_id: uuid.UUID | None,
        tool_call_id: str,
        tool: str,
        arguments: dict[str, Any],
        correlation_id: str,
    ) -> None:
        """Recorded before the tool runs (a repeat of the same call, after an approval, keeps the first record)."""
        with self.db.transaction(self.tenant) as session:
            existing = session.exec(
                select(ChatToolCall).where(
                    ChatToolCall.conversation_id == conversation_id, ChatToolCall.tool_call_id == tool_call_id
                )
            ).first()
            if existing is None:
                session.add(
                    ChatToolCall(
                        conversation_id=conversation_id,
                        turn_id=turn_id,
                        message_id=message_id,
                        tool_call_id=tool_call_id,
                        tool=tool,
                        arguments=arguments,
                        correlation_id=correlation_id,
                    )
                )

    def tool_call_finished(
        self,
        conversation_id: str,
        tool_call_id: str,
        status: ToolCallStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        directive_id: uuid.UUID | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status.value, "result": result, "error": error, "updated_at": utcnow()}
        if directive_id is not None:
            values["directive_id"] = directive_id
        with self.db.transaction(self.tenant) as session:
            session.execute(
                update(ChatToolCall)
                .where(
                    ChatToolCall.conversation_id == conversation_id,  # type: ignore[arg-type]
                    ChatToolCall.tool_call_id == tool_call_id,  # type: ignore[arg-type]
                )
                .values(**values)
            )

    def tool_calls(self, conversation_id: str, turn_id: str | None = None) -> list[ToolCallView]:
        with self.db.reading(self.tenant) as session:
            query = select(ChatToolCall).where(ChatToolCall.conversation_id == conversation_id)
            if turn_id is not None:
                query = query.where(ChatToolCall.turn_id == turn_id)
            rows = session.exec(query.order_by(ChatToolCall.created_at, ChatToolCall.id)).all()
        return [_tool_view(row) for row in rows]

    def tool_call(self, conversation_id: str, tool_call_id: str) -> ToolCallView | None:
        with self.db.reading(self.tenant) as session:
            row = session.exec(
                select(ChatToolCall).where(
                    ChatToolCall.conversation_id == conversation_id, ChatToolCall.tool_call_id == tool_call_id
                )
            ).first()
        return _tool_view(row) if row is not None else None


def _release(conversation_id: str, turn_id: str) -> Any:
    return (
        update(ChatConversation)
        .where(ChatConversation.id == conversation_id, ChatConversation.running_turn == turn_id)  # type: ignore[arg-type]
        .values(running_turn=None, running_since=None)
    )


def _title(prompt: str) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"


def _usage_of(response: ModelResponse) -> dict[str, Any] | None:
    usage = response.usage
    values = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }
    return {k: v for k, v in values.items() if v} or None
