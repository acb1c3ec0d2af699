"""POST /api/chat: one turn in the Vercel AI UI message stream protocol (v6), with the server's history only."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import ValidationError
from pydantic_ai import DeferredToolResults, ToolDenied
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.models import Model
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from pydantic_ai.ui.vercel_ai.request_types import SubmitMessage, TextUIPart
from pydantic_ai.ui.vercel_ai.response_types import BaseChunk, DataChunk, ErrorChunk
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fleetprompt.accounts.context import RequestContext
from fleetprompt.chat.agent import ChatDeps, build_agent
from fleetprompt.chat.model import configured_model, not_configured_model
from fleetprompt.chat.store import ConversationStore
from fleetprompt.chat.turns import SETTLED, close_pending, decide, directive_status, interrupt, pending_calls
from fleetprompt.errors import FleetPromptError, InvalidInput
from fleetprompt.ledger import Ledger

log = logging.getLogger(__name__)

SDK_VERSION = 6
FOLLOW_SECONDS = 10.0  # how long a turn keeps reporting the status of what it filed before it finishes
TOOL_START_GRACE = 0.5
TOOL_SETTLE_SECONDS = 5.0  # after a disconnect, how long to wait for tools that are filing before the note
STATUS_CODES = {"not_found": 404, "forbidden": 403, "conflict": 409, "invalid_state": 409, "invalid_input": 400}


class ServerHistoryAdapter(VercelAIAdapter[ChatDeps, Any]):
    """The Vercel AI adapter, minus trust in the client: approvals it sends are requests, decided by the server."""

    @cached_property
    def deferred_tool_results(self) -> DeferredToolResults | None:
        return None

    def client_decisions(self) -> dict[str, bool | ToolDenied]:
        """The approve/deny answers the client asks for (applied only after the session's person is checked)."""
        answers = VercelAIAdapter.deferred_tool_results.func(self)  # type: ignore[attr-defined]
        if answers is None:
            return {}
        return {call_id: (True if answer is True else _denial(answer)) for call_id, answer in answers.approvals.items()}

    def new_prompt(self) -> str | None:
        """The person's new message: user text after the client's last assistant message (older text is ignored)."""
        messages = self.run_input.messages
        last_assistant = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
        texts = [
            part.text
            for message in messages[last_assistant + 1 :]
            if message.role == "user"
            for part in message.parts
            if isinstance(part, TextUIPart)
        ]
        text = "\n".join(t for t in texts if t.strip())
        return text or None


def _denial(answer: Any) -> ToolDenied:
    return answer if isinstance(answer, ToolDenied) else ToolDenied("The person denied this action.")


@dataclass
class ChatService:
    """The chat agent and its model for one process (a test passes its own model)."""

    ledger: Ledger
    model_override: Model | None = None
    agent: Any = field(default_factory=build_agent)
    model: Model = field(init=False)

    def __post_init__(self) -> None:
        # Resolved at start-up: a model that cannot be set up stops `serve` with a ConfigError naming the variable.
        self.model = self.model_override or configured_model(self.ledger.settings) or not_configured_model()

    @property
    def configured(self) -> bool:
        return self.model_override is not None or self.ledger.settings.model is not None


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def chat_turn(
    request: Request, service: ChatService, person_request: RequestContext, agent_request: RequestContext, admin: bool
) -> Response:
    """Run one turn for the signed-in person (`person_request` acts as them, `agent_request` as their agent)."""
    try:
        adapter = await ServerHistoryAdapter.from_request(
            request, agent=service.agent, sdk_version=SDK_VERSION, manage_message_history="server"
        )
    except ValidationError as exc:
        return error_response(400, f"not a chat request: {exc.error_count()} problem(s), e.g. {_first(exc)}")
    except HTTPException as exc:
        return error_response(exc.status_code, str(exc.detail))
    if not isinstance(adapter.run_input, SubmitMessage):
        return error_response(400, "regenerating a message is not supported; send it again as a new message")
    conversation_id = adapter.run_input.id
    store = ConversationStore(service.ledger.db, person_request.org.slug)
    decisions = adapter.client_decisions()
    prompt = adapter.new_prompt()
    if decisions and prompt is not None:
        return error_response(400, "answer the pending approval first, then send your next message")
    if not decisions and prompt is None:
        return error_response(400, "send a message: the request carries no new user text and no approval answer")
    turn_id = uuid.uuid4().hex
    try:  # one trip to a thread: claim the conversation (someone else's is not found), then prepare the turn
        prepared = await run_in_threadpool(
            _open_turn, service.ledger, person_request, agent_request, admin, store, conversation_id, turn_id,
            decisions, prompt,
        )  # fmt: skip
    except FleetPromptError as exc:
        return error_response(STATUS_CODES.get(exc.code, 400), exc.message)
    if prepared is None:
        return error_response(409, "a reply is still being written in this conversation; wait for it, then send")
    history, deferred, cause_message, decided = prepared
    turn_request = RequestContext(
        org=agent_request.org,
        actor=agent_request.actor,
        correlation_id=turn_id,
        causation_id=f"chat:{conversation_id}:{cause_message}" if cause_message else None,
    )
    deps = ChatDeps(
        ledger=service.ledger,
        request=turn_request,
        store=store,
        conversation_id=conversation_id,
        turn_id=turn_id,
        message_id=cause_message,
        filed=decided,
    )
    turn = _Turn(service, deps)
    stream = adapter.run_stream(
        message_history=history,
        deferred_tool_results=deferred,
        deps=deps,
        model=service.model,
        on_complete=turn.completed,
    )
    return adapter.streaming_response(turn.relay(stream))


def _open_turn(
    ledger: Ledger,
    person_request: RequestContext,
    agent_request: RequestContext,
    admin: bool,
    store: ConversationStore,
    conversation_id: str,
    turn_id: str,
    decisions: dict[str, bool | ToolDenied],
    prompt: str | None,
) -> tuple[list[Any], DeferredToolResults | None, uuid.UUID | None, list[uuid.UUID]] | None:
    """Claim the conversation (None while another turn holds it), then apply the person's answers, or record the
    new prompt (closing pending calls first). Returns the history to run on, the deferred results, the causing
    message and the decided directives. A turn that cannot be prepared gives its claim back."""
    if not store.begin_turn(person_request.actor.user_id, conversation_id, turn_id):
        return None
    try:
        history = store.history(conversation_id)
        waiting = {call.tool_call_id for call in pending_calls(history)}
        if decisions:
            if waiting - set(decisions) and not set(decisions) - waiting:
                raise InvalidInput("answer every pending approval of this conversation in one request")
            answers = decide(ledger, person_request, admin, store, conversation_id, decisions, waiting)
            answered = [store.tool_call(conversation_id, call_id) for call_id in answers]
            decided = [row.directive_id for row in answered if row is not None and row.directive_id is not None]
            cause = answered[0].message_id if answered and answered[0] else None
            return history, DeferredToolResults(approvals=answers), cause, decided
        assert prompt is not None
        if waiting:
            close_pending(ledger, agent_request, store, conversation_id, turn_id)
            history = store.history(conversation_id)
        return history, None, store.start_turn(conversation_id, turn_id, prompt), []
    except BaseException:
        store.end_turn(conversation_id, turn_id)
        raise


@dataclass
class _Turn:
    """Relays the adapter's chunks, adds `data-directive` parts, and makes sure the turn is recorded either way."""

    service: ChatService
    deps: ChatDeps
    saved: bool = False
    reported: dict[str, str] = field(default_factory=dict)

    async def completed(self, result: AgentRunResult[Any]) -> None:
        await run_in_threadpool(
            self.deps.store.finish_turn,
            self.deps.conversation_id,
            self.deps.turn_id,
            result.new_messages(),
            model=result.response.model_name,
        )  # each response keeps its own usage
        self.saved = True

    async def relay(self, chunks: AsyncIterator[BaseChunk]) -> AsyncIterator[BaseChunk]:
        why = "the connection closed before the reply finished"
        try:
            async for chunk in chunks:
                if isinstance(chunk, ErrorChunk):
                    # What an upstream service says stays in our log; the person and the model get a reference.
                    log.warning("chat turn %s failed: %s", self.deps.turn_id, chunk.error_text)
                    why = f"the model failed (reference {self.deps.turn_id})"
                    chunk = ErrorChunk(error_text=f"The reply failed on our side; reference {self.deps.turn_id}.")
                if chunk.type == "finish":
                    async for update in self._follow():
                        yield update
                yield chunk
                if chunk.type in ("tool-output-available", "tool-output-denied", "tool-approval-request"):
                    for update in await run_in_threadpool(self._changes):
                        yield update
        except asyncio.CancelledError:
            # The client is gone. Tools still running in their threads may be filing right now: record the
            # interruption from a thread once they have filed (or given up), so the note names what they filed.
            threading.Thread(target=self._interrupted, args=(why, TOOL_SETTLE_SECONDS), daemon=True).start()
            self.saved = True
            raise
        finally:
            if not self.saved:
                self._interrupted(why, 0)

    def _interrupted(self, why: str, settle_seconds: float) -> None:
        deps = self.deps
        deadline = time.monotonic() + settle_seconds
        try:
            if settle_seconds:
                time.sleep(TOOL_START_GRACE)  # a tool call the model just made may not have recorded itself yet
            while time.monotonic() < deadline and any(
                call.status == "running" and not self._filed(call.arguments.get("idempotency_key"))
                for call in deps.store.tool_calls(deps.conversation_id, deps.turn_id)
            ):
                time.sleep(0.05)
            interrupt(self.service.ledger, deps.request, deps.store, deps.conversation_id, deps.turn_id, why)
        except Exception:
            log.exception("chat: could not record the interrupted turn %s", deps.turn_id)
            deps.store.end_turn(deps.conversation_id, deps.turn_id)

    def _filed(self, key: object) -> bool:
        return isinstance(key, str) and self.service.ledger.find_by_key(self.deps.request.org.slug, key) is not None

    def _changes(self) -> list[DataChunk]:
        updates = []
        for directive_id in list(self.deps.filed):
            state = directive_status(self.service.ledger, self.deps.request, directive_id)
            if self.reported.get(state.directive_id) != state.status:
                self.reported[state.directive_id] = state.status
                updates.append(DataChunk(type="data-directive", id=state.directive_id, data=state.as_data()))
        return updates

    async def _follow(self) -> AsyncIterator[DataChunk]:
        """Before the turn ends, report what its directives did (succeeded, failed...) for a little while."""
        deadline = time.monotonic() + FOLLOW_SECONDS
        delay = 0.05
        while True:
            for update in await run_in_threadpool(self._changes):
                yield update
            if all(status in SETTLED for status in self.reported.values()) or time.monotonic() >= deadline:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
