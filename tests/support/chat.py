"""Helpers for chat tests: request bodies as chat.js sends them, the UI message stream parsed back, and a model that
follows a script (pydantic-ai's FunctionModel) and keeps every request it receives.

    script = ScriptedModel([
        Call("forum_list_categories", {}, "c1"),            # 1st model request: one tool call
        [Call("a", {}, "c2"), Call("b", {}, "c3")],         # 2nd: two calls in one response
        Reply("Created ", "the category."),                  # 3rd: text, streamed piece by piece
    ])
    app = create_app(platform, run_runner=False, chat_model=script.model())
    ...
    response = post_turn(client, csrf, "conv-1", "make a news category")
    chunks = sse_chunks(response.text)                       # the `data:` payloads, up to [DONE]
    assert script.requests[0][-1] ...                        # what the model saw on its first request

Each model request takes the next step, whichever turn it belongs to (a conversation's second turn continues the
same script). A step may also be an async generator function `(messages, info) -> AsyncIterator[str | dict]`, for
anything else (a slow stream, waiting for the test). A request with no step left fails the turn (ScriptExhausted).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

STREAM_HEADER = "x-vercel-ai-ui-message-stream"
CSRF_HEADER = "x-csrf-token"


# ---------------------------------------------------------------- requests, as chat.js makes them


def user_message(text: str, message_id: str | None = None) -> dict[str, Any]:
    """One UI message (v6) from the person."""
    return {"id": message_id or f"u-{uuid.uuid4().hex[:12]}", "role": "user", "parts": [{"type": "text", "text": text}]}


def chat_body(conversation_id: str, text: str, *, earlier: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A submit-message request: `earlier` UI messages (what a client claims happened before), then the new text."""
    return {"trigger": "submit-message", "id": conversation_id, "messages": [*earlier, user_message(text)]}


def post_turn(
    client: httpx.Client,
    csrf: str | None,
    conversation_id: str,
    text: str,
    *,
    earlier: Sequence[dict[str, Any]] = (),
) -> httpx.Response:
    """POST /api/chat with the person's new message (`csrf` None sends no token). The whole stream is read."""
    headers = {CSRF_HEADER: csrf} if csrf is not None else {}
    return client.post("/api/chat", json=chat_body(conversation_id, text, earlier=earlier), headers=headers)


def answer_body(
    conversation_id: str, tool_name: str, tool_call_id: str, approved: bool, reason: str | None = None
) -> dict[str, Any]:
    """What chat.js sends to answer an approval prompt: an assistant message with the responded tool part."""
    approval: dict[str, Any] = {"id": tool_call_id, "approved": approved}
    if reason is not None:
        approval["reason"] = reason
    part = {
        "type": f"tool-{tool_name}",
        "toolCallId": tool_call_id,
        "state": "approval-responded",
        "input": {},
        "approval": approval,
    }
    message = {"id": f"answer-{tool_call_id}", "role": "assistant", "parts": [part]}
    return {"trigger": "submit-message", "id": conversation_id, "messages": [message]}


def answer(
    client: httpx.Client,
    csrf: str,
    conversation_id: str,
    tool_name: str,
    tool_call_id: str,
    approved: bool,
    reason: str | None = None,
) -> httpx.Response:
    """Approve or deny one waiting tool call, as the approval buttons of the chat page do."""
    body = answer_body(conversation_id, tool_name, tool_call_id, approved, reason)
    return client.post("/api/chat", json=body, headers={CSRF_HEADER: csrf})


# ---------------------------------------------------------------- the stream


def sse_chunks(response_text: str, *, require_done: bool = True) -> list[dict[str, Any]]:
    """The JSON chunks of a UI message stream (`data: ` lines), up to `[DONE]`, which must end it unless told."""
    chunks: list[dict[str, Any]] = []
    for line in response_text.splitlines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if data == "[DONE]":
            return chunks
        chunks.append(json.loads(data))
    assert not require_done, f"the stream did not end with [DONE]: {response_text[-500:]!r}"
    return chunks


def chunk_types(chunks: Iterable[dict[str, Any]]) -> list[str]:
    return [chunk["type"] for chunk in chunks]


def streamed_text(chunks: Iterable[dict[str, Any]]) -> str:
    """The assistant's text, joined from its text-delta chunks."""
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def find(chunks: Sequence[dict[str, Any]], kind: str, **fields: Any) -> list[int]:
    """Indexes of the chunks of type `kind` whose fields match (e.g. toolCallId="c1")."""
    return [
        i
        for i, chunk in enumerate(chunks)
        if chunk["type"] == kind and all(chunk.get(name) == value for name, value in fields.items())
    ]


def first(chunks: Sequence[dict[str, Any]], kind: str, **fields: Any) -> int:
    """Index of the first chunk of type `kind` matching `fields`; fails naming the types seen when there is none."""
    found = find(chunks, kind, **fields)
    assert found, f"no {kind} {fields or ''} chunk in {chunk_types(chunks)}"
    return found[0]


# ---------------------------------------------------------------- a scripted model


@dataclass(frozen=True)
class Call:
    """One tool call the model makes (its arguments are sent as JSON)."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    call_id: str = field(default_factory=lambda: f"call-{uuid.uuid4().hex[:8]}")


class Reply:
    """Text the model answers with, streamed one piece per chunk."""

    def __init__(self, *pieces: str) -> None:
        assert pieces, "a reply needs some text"
        self.pieces = pieces


StepFunction = Callable[[list[ModelMessage], AgentInfo], AsyncIterator[str | DeltaToolCalls]]
Step = Call | list[Call] | Reply | StepFunction


class ScriptExhausted(AssertionError):
    pass


@dataclass
class ScriptedModel:
    """A model that takes one step of `steps` per request and records each request's messages in `requests`."""

    steps: list[Step] = field(default_factory=list)
    model_name: str = "scripted"
    requests: list[list[ModelMessage]] = field(default_factory=list)

    def model(self) -> FunctionModel:
        return FunctionModel(stream_function=self._stream, model_name=self.model_name)

    @property
    def remaining(self) -> int:
        return len(self.steps) - len(self.requests)

    async def _stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        index = len(self.requests)
        self.requests.append(list(messages))
        if index >= len(self.steps):
            raise ScriptExhausted(f"the model was asked {index + 1} times; the script has {len(self.steps)} steps")
        step = self.steps[index]
        if isinstance(step, Reply):
            for piece in step.pieces:
                yield piece
        elif isinstance(step, (Call, list)):
            calls = [step] if isinstance(step, Call) else step
            yield {
                i: DeltaToolCall(name=c.tool, json_args=json.dumps(c.args), tool_call_id=c.call_id)
                for i, c in enumerate(calls)
            }
        else:
            async for item in step(messages, info):
                yield item


# ---------------------------------------------------------------- reading what the model saw


def user_prompts(messages: Iterable[ModelMessage]) -> list[str]:
    """Every user prompt in a history, in order (text prompts only)."""
    return [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]


def response_texts(messages: Iterable[ModelMessage]) -> list[str]:
    """The text of every model response in a history, one string per response that has text."""
    texts = []
    for message in messages:
        if isinstance(message, ModelResponse):
            text = "".join(part.content for part in message.parts if isinstance(part, TextPart))
            if text:
                texts.append(text)
    return texts


def tool_results(messages: Iterable[ModelMessage]) -> list[ToolReturnPart | RetryPromptPart]:
    """Every tool return and retry prompt in a history, in order."""
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, (ToolReturnPart, RetryPromptPart))
    ]
