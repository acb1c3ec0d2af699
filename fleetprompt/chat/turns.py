"""What a turn does around the model: answer pending approvals through the ledger, close or interrupt turns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic_ai import ToolDenied
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)

from fleetprompt.accounts.context import RequestContext
from fleetprompt.chat.store import ConversationStore
from fleetprompt.errors import Conflict, Forbidden, InvalidState
from fleetprompt.ledger import Ledger
from fleetprompt.models.chat import ToolCallStatus, TurnStatus
from fleetprompt.tools import call_tool

SETTLED = {"succeeded", "failed", "canceled", "awaiting_approval"}


@dataclass(frozen=True)
class DirectiveStatus:
    """What the person sees of a directive as a turn goes on (the `data-directive` part)."""

    directive_id: str
    type: str
    status: str
    error: str | None
    url: str

    def as_data(self) -> dict[str, Any]:
        return {
            "directive_id": self.directive_id,
            "type": self.type,
            "status": self.status,
            "error": self.error,
            "url": self.url,
        }


def directive_status(ledger: Ledger, request: RequestContext, directive_id: uuid.UUID | str) -> DirectiveStatus:
    view: Any = call_tool(ledger, request, "directive_get", {"directive_id": str(directive_id)})
    return DirectiveStatus(str(view.id), view.type, view.status, view.error, f"/audit/directives/{view.id}")


def pending_calls(history: list[ModelMessage]) -> list[ToolCallPart]:
    """The tool calls of the last response that nothing after it answers (waiting for an approval)."""
    last = max((i for i, m in enumerate(history) if isinstance(m, ModelResponse)), default=-1)
    if last < 0:
        return []
    answered = {
        part.tool_call_id
        for message in history[last + 1 :]
        for part in message.parts
        if isinstance(part, (ToolReturnPart, RetryPromptPart))
    }
    calls = [part for part in history[last].parts if isinstance(part, ToolCallPart)]
    return [call for call in calls if call.tool_call_id not in answered]


def decide(
    ledger: Ledger,
    person: RequestContext,
    person_is_admin: bool,
    store: ConversationStore,
    conversation_id: str,
    decisions: dict[str, bool | ToolDenied],
    waiting: set[str],
) -> dict[str, bool | ToolDenied]:
    """Apply the signed-in person's approve/deny answers to the directives the calls filed, as that person.

    Only this session's person counts (never the client's copy of the conversation); approving needs the role the
    ledger asks for, checked here first so a refusal changes nothing, and again by the ledger itself."""
    rows = {}
    for call_id in decisions:
        row = store.tool_call(conversation_id, call_id) if call_id in waiting else None
        if row is None or row.directive_id is None:
            raise Conflict(
                f"tool call {call_id!r} is not waiting for an approval in this conversation; reload the conversation"
            )
        rows[call_id] = row
    if any(answer is True for answer in decisions.values()) and not person_is_admin:
        raise Forbidden(
            "approving needs the admin role; ask an owner or admin of this organization to approve it "
            "(they can also do it on the directive's audit page)"
        )
    answers: dict[str, bool | ToolDenied] = {}
    for call_id, answer in decisions.items():
        row = rows[call_id]
        assert row.directive_id is not None
        ctx = RequestContext(
            org=person.org,
            actor=person.actor,
            correlation_id=row.correlation_id,
            causation_id=f"chat:{conversation_id}:{row.message_id}" if row.message_id else None,
        )
        approved = answer is True
        reason = answer.message if isinstance(answer, ToolDenied) else None
        try:
            if approved:
                ledger.approve(ctx, row.directive_id)
            elif person_is_admin:
                ledger.reject(ctx, row.directive_id, reason or "denied in the chat")
            else:
                ledger.cancel(ctx, row.directive_id, reason or "denied in the chat")
        except InvalidState:
            # Decided meanwhile (the audit page, the CLI): the chat follows what the ledger says.
            current = ledger.get(person.org.slug, row.directive_id)
            approved = current.status not in ("canceled", "awaiting_approval")
            reason = f"the directive was {current.status} meanwhile"
        if approved:
            answers[call_id] = True
        else:
            store.tool_call_finished(
                conversation_id, call_id, ToolCallStatus.denied, error=reason, directive_id=row.directive_id
            )
            answers[call_id] = ToolDenied(reason or "The person denied this action; the directive was canceled.")
    return answers


def close_pending(
    ledger: Ledger, request: RequestContext, store: ConversationStore, conversation_id: str, turn_id: str
) -> None:
    """The person moved on without answering a pending approval: tell the model where each directive stands.
    (The directive keeps waiting; it can still be approved on its audit page.)"""
    history = store.history(conversation_id)
    request_message = _current_states(ledger, request, store, conversation_id, pending_calls(history))
    if request_message is not None:
        store.finish_turn(conversation_id, f"{turn_id}-pending", [request_message], model=None)


def interrupt(
    ledger: Ledger, request: RequestContext, store: ConversationStore, conversation_id: str, turn_id: str, why: str
) -> None:
    """End a turn that did not finish (client gone, model failed) so the conversation stays consistent: the
    prompt is kept, pending calls are answered with their directives' states, and a note says what happened."""
    history = store.history(conversation_id)
    messages: list[ModelMessage] = []
    closing = _current_states(ledger, request, store, conversation_id, pending_calls(history))
    if closing is not None:
        messages.append(closing)
    filed = []
    for call in store.tool_calls(conversation_id, turn_id):
        directive_id = call.directive_id
        key = call.arguments.get("idempotency_key")
        if directive_id is None and isinstance(key, str):
            # The tool may still be waiting for its directive's outcome: it was filed if its key is in the ledger.
            found = ledger.find_by_key(request.org.slug, key)
            directive_id = found.id if found is not None else None
        if directive_id is not None:
            filed.append(f"{call.tool} -> directive {directive_id}")
    note = f"(This reply was interrupted: {why.rstrip('.')}.)"
    if filed:
        note += " Directives filed before that: " + "; ".join(filed)
    messages.append(ModelResponse(parts=[TextPart(note)], model_name="fleetprompt"))
    store.finish_turn(conversation_id, turn_id, messages, model=None, status=TurnStatus.interrupted)


def _current_states(
    ledger: Ledger,
    request: RequestContext,
    store: ConversationStore,
    conversation_id: str,
    calls: list[ToolCallPart],
) -> ModelRequest | None:
    if not calls:
        return None
    parts = []
    for call in calls:
        row = store.tool_call(conversation_id, call.tool_call_id)
        content: dict[str, Any] = {"note": "no answer was given to this call; it did not run"}
        if row is not None and row.directive_id is not None:
            state = directive_status(ledger, request, row.directive_id)
            content = {"note": "the conversation moved on before this was approved", **state.as_data()}
        parts.append(ToolReturnPart(tool_name=call.tool_name, content=content, tool_call_id=call.tool_call_id))
    return ModelRequest(parts=parts)
