"""Benchmark 3: one chat turn (one tool call, then 200 tokens of text) through POST /api/chat, versus raw.

FleetPrompt: the web app (bench/chat_server.py, a uvicorn subprocess) signed in through the /signin form, each turn
in a new conversation. Raw: the same agent (`build_agent()`), model, tool and dependencies streamed in this process
through pydantic-ai's own VercelAIAdapter, encoded to the same SSE text, without HTTP, session, history or turn
persistence. Time to first byte is when the first byte of the response body arrives (raw: the first encoded event).
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic_ai.ui.vercel_ai import VercelAIAdapter

from bench import common, world
from bench.chat_server import TEXT_TOKENS, scripted_model
from bench.common import Table
from fleetprompt.chat.agent import ChatDeps, build_agent
from fleetprompt.chat.endpoint import SDK_VERSION
from fleetprompt.chat.store import ConversationStore

TURNS, QUICK_TURNS = 30, 5
WARMUP = 3
PROMPT = "Which threads are there?"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass(frozen=True)
class Turn:
    ttfb: float
    first_text: float
    total: float


def body(conversation_id: str) -> dict[str, Any]:
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": PROMPT}]}
    return {"trigger": "submit-message", "id": conversation_id, "messages": [message]}


def _check(text: str) -> None:
    deltas = text.count('"type":"text-delta"')
    if deltas != TEXT_TOKENS or '"type":"finish"' not in text or '"tool-output-available"' not in text:
        raise RuntimeError(f"unexpected chat stream ({deltas} text deltas): {text[-500:]}")


# ---------------------------------------------------------------------------------------------- over HTTP


def _csrf(client: httpx.Client, path: str) -> str:
    response = client.get(path, follow_redirects=True)
    found = CSRF_META.search(response.text)
    if response.status_code != 200 or not found:
        raise RuntimeError(f"GET {path}: {response.status_code}, no CSRF token")
    return found.group(1)


def sign_in(client: httpx.Client, email: str) -> str:
    """The /signin form, as a person uses it; returns the signed-in page's CSRF token."""
    form = {"email": email, "password": world.PASSWORD, "org": "", "csrf_token": _csrf(client, "/signin")}
    response = client.post("/signin", data={**form, "next": "/chat"}, follow_redirects=False)
    if response.status_code != 303:
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:300]}")
    return _csrf(client, "/chat")


def http_turn(client: httpx.Client, csrf: str) -> Turn:
    started = time.perf_counter()
    first = first_text = 0.0
    chunks: list[bytes] = []
    request = body(uuid.uuid4().hex)
    with client.stream("POST", "/api/chat", json=request, headers={"x-csrf-token": csrf}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"/api/chat: {response.status_code} {response.read()[:300]!r}")
        for chunk in response.iter_raw():
            now = time.perf_counter()
            first = first or now
            if not first_text and b'"text-delta"' in chunk:
                first_text = now
            chunks.append(chunk)
    total = time.perf_counter() - started
    _check(b"".join(chunks).decode())
    return Turn(first - started, first_text - started, total)


def http_turns(port: int, email: str, count: int) -> list[Turn]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        csrf = sign_in(client, email)
        for _ in range(WARMUP):
            http_turn(client, csrf)
        return [http_turn(client, csrf) for _ in range(count)]


# ---------------------------------------------------------------------------------------------- raw


async def _raw_turn(store: ConversationStore, agent: Any, deps: ChatDeps) -> Turn:
    adapter = VercelAIAdapter(
        agent=agent,
        run_input=VercelAIAdapter.build_run_input(json.dumps(body(deps.conversation_id)).encode()),
        sdk_version=SDK_VERSION,
    )
    started = time.perf_counter()
    first = first_text = 0.0
    parts: list[str] = []
    async for text in adapter.encode_stream(adapter.run_stream(deps=deps, model=scripted_model())):
        now = time.perf_counter()
        first = first or now
        if not first_text and '"text-delta"' in text:
            first_text = now
        parts.append(text)
    total = time.perf_counter() - started
    _check("".join(parts))
    return Turn(first - started, first_text - started, total)


def raw_turns(database_url: str, data_dir: Path, member: world.Member, count: int) -> list[Turn]:
    platform = world.build(database_url, data_dir, queue="memory")
    agent = build_agent()
    store = ConversationStore(platform.db, member.org.slug)

    def deps() -> ChatDeps:
        """The conversation and the turn exist before the clock starts: that part is the endpoint's work."""
        conversation, turn = uuid.uuid4().hex, uuid.uuid4().hex
        store.begin_turn(member.user_id, conversation, turn)
        message = store.start_turn(conversation, turn, PROMPT)
        request = member.ctx(kind="agent", via="chat")
        return ChatDeps(
            ledger=platform.ledger,
            request=request,
            store=store,
            conversation_id=conversation,
            turn_id=turn,
            message_id=message,
        )

    async def turns() -> list[Turn]:
        for _ in range(WARMUP):
            await _raw_turn(store, agent, deps())
        return [await _raw_turn(store, agent, deps()) for _ in range(count)]

    try:
        return asyncio.run(turns())
    finally:
        platform.close()


# ---------------------------------------------------------------------------------------------- benchmark


def run(quick: bool, log_dir: Path) -> Table:
    count = QUICK_TURNS if quick else TURNS
    http_runs: list[list[Turn]] = []
    raw_runs: list[list[Turn]] = []
    with world.fresh_database("chat") as url, tempfile.TemporaryDirectory(prefix="bench-chat-") as data_dir:
        platform = world.build(url, Path(data_dir), queue="memory")
        try:
            member = world.new_member(platform, "bench")
            world.new_thread(platform, member, threads=10)
        finally:
            platform.close()
        port = common.free_port()
        env = common.child_env(**world.process_env(url, Path(data_dir)))
        server = common.start(
            "chat-server", [common.PYTHON, "-m", "bench.chat_server", "--port", str(port)], env, log_dir
        )
        try:
            server.wait_for_port(port)
            for attempt in range(common.RUNS):
                common.log(f"chat: run {attempt + 1}/{common.RUNS} ({count} turns each way)")
                http_runs.append(http_turns(port, member.email, count))
                raw_runs.append(raw_turns(url, Path(data_dir), member, count))
        finally:
            server.stop()
    return table(http_runs, raw_runs, count)


def _median_of_medians(runs: list[list[Turn]], field: str) -> list[float]:
    return [common.median([getattr(turn, field) for turn in run]) for run in runs]


def table(http_runs: list[list[Turn]], raw_runs: list[list[Turn]], count: int) -> Table:
    out = Table(
        "chat",
        f"3. Chat turn: one tool call + {TEXT_TOKENS} text tokens (FunctionModel), {count} turns per run",
        [
            "path",
            "time to first byte",
            "time to first text",
            "total",
            "TTFB vs raw (goal ≤ 1.2x)",
            "first text vs raw",
            "total vs raw",
        ],
    )
    figures = {
        name: {f: _median_of_medians(runs, f) for f in ("ttfb", "first_text", "total")}
        for name, runs in (("http", http_runs), ("raw", raw_runs))
    }
    raw = {f: common.median(v) for f, v in figures["raw"].items()}
    for name, label in (
        ("http", "FleetPrompt POST /api/chat (uvicorn)"),
        ("raw", "pydantic-ai VercelAIAdapter, no HTTP"),
    ):
        f = figures[name]
        ttfb_ratio = common.ratio(common.median(f["ttfb"]), raw["ttfb"])
        text_ratio = common.ratio(common.median(f["first_text"]), raw["first_text"])
        total_ratio = common.ratio(common.median(f["total"]), raw["total"])
        out.add(
            label,
            common.spread(f["ttfb"], common.ms),
            common.spread(f["first_text"], common.ms),
            common.spread(f["total"], common.ms),
            "1.00x" if name == "raw" else f"{common.times(ttfb_ratio)} ({common.verdict(ttfb_ratio <= 1.2)})",
            "1.00x" if name == "raw" else common.times(text_ratio),
            "1.00x" if name == "raw" else common.times(total_ratio),
        )
    out.notes += [
        "Each turn starts a new conversation. Per run: the median over its turns; shown: the median of 3 runs "
        "(range in brackets).",
        "Raw runs FleetPrompt's own agent and tools (each tool call still records itself in the conversation store) "
        "on the same database; it skips what the endpoint adds: HTTP, session and CSRF checks, opening the "
        "conversation, loading history, recording the turn, and the directive-status relay.",
        "Raw's first byte is the stream's `start` event, produced before any work; FleetPrompt's comes after the "
        "session lookup and the conversation writes. Time to first text (first token on screen) is the figure a "
        "person notices.",
    ]
    return out
