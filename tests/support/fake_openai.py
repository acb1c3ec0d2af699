"""A fake OpenAI-compatible service on 127.0.0.1: `POST /v1/chat/completions`, streamed (SSE chunks, tool-call
arguments split over several deltas) or not, answering from a per-test script and keeping every request it got."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from support.serving import uvicorn_thread


@dataclass(frozen=True)
class ToolCall:
    """One function call, its arguments' JSON text streamed in `fragments` (the first goes with the name)."""

    id: str
    name: str
    fragments: tuple[str, ...]

    @classmethod
    def split(cls, call_id: str, name: str, arguments: dict[str, Any], pieces: int = 3) -> ToolCall:
        text = json.dumps(arguments)
        size = max(1, -(-len(text) // pieces))
        return cls(call_id, name, tuple(text[i : i + size] for i in range(0, len(text), size)))

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


@dataclass(frozen=True)
class Answer:
    """A successful completion: text deltas and/or tool calls, and the usage the final chunk reports."""

    text: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 11
    completion_tokens: int = 7

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": total}


@dataclass(frozen=True)
class Failure:
    """An HTTP error in OpenAI's error shape. With `repeat`, every later request gets it too (the SDK retries)."""

    status: int = 500
    message: str = "the fake model is down"
    repeat: bool = True


@dataclass(frozen=True)
class BrokenStream:
    """A streamed answer that starts (these text deltas) and then loses its connection mid-body."""

    text: tuple[str, ...] = ("Let me ",)


Scripted = Answer | Failure | BrokenStream


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class _Dropped(Exception):
    """Raised inside a streamed body: uvicorn then closes the connection without ending the chunked body."""


@dataclass
class FakeOpenAI:
    """The script (answered in order) and what was received. `url` is the base URL to configure (…/v1)."""

    port: int = 0
    script: deque[Scripted] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    _sticky: Failure | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, *responses: Scripted) -> None:
        with self._lock:
            self.script.extend(responses)

    def _next(self) -> Scripted:
        with self._lock:
            if self._sticky is not None:
                return self._sticky
            if not self.script:
                return Failure(500, "fake OpenAI: no scripted response left", repeat=False)
            item = self.script.popleft()
            if isinstance(item, Failure) and item.repeat:
                self._sticky = item
            return item

    def recover(self) -> None:
        """Stop repeating a failure: later requests are answered from the script again."""
        with self._lock:
            self._sticky = None

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append(Received(body, {k.lower(): v for k, v in request.headers.items()}))
        item = self._next()
        model = str(body.get("model", "unknown"))
        if isinstance(item, Failure):
            error = {"error": {"message": item.message, "type": "server_error", "param": None, "code": None}}
            return JSONResponse(error, status_code=item.status, headers={"retry-after-ms": "10"})
        if not body.get("stream"):
            if isinstance(item, BrokenStream):
                return Response(b'{"id": "chatcmpl-broken", "choi', media_type="application/json")
            return JSONResponse(_completion(model, item))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _stream(model, item, include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _completion(model: str, answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.text) or None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in answer.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason, "logprobs": None}],
        "usage": answer.usage,
    }


async def _stream(model: str, item: Answer | BrokenStream, include_usage: bool) -> AsyncIterator[str]:
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    created = int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }
        if include_usage:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": "" if item.text else None})
    for text in item.text:
        await asyncio.sleep(0.01)  # separate network writes, as a real service sends them
        yield chunk({"content": text})
    if isinstance(item, BrokenStream):
        await asyncio.sleep(0.01)
        raise _Dropped("the fake OpenAI service dropped the connection on purpose")
    for index, call in enumerate(item.tool_calls):
        first, *rest = call.fragments or ("",)
        function = {"name": call.name, "arguments": first}
        yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function", "function": function}]})
        for fragment in rest:
            await asyncio.sleep(0.01)
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, finish=item.finish_reason)
    if include_usage:
        yield chunk(None, usage=item.usage)
    yield "data: [DONE]\n\n"


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    """The fake service, served by uvicorn in a thread on a port of its own; stopped on exit."""
    fake = FakeOpenAI()
    with uvicorn_thread(fake.app(), lifespan="off") as port:
        fake.port = port
        yield fake
