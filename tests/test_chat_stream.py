"""POST /api/chat through the real app (both backends): the UI message stream (Vercel AI v6) a turn produces, what
the turn stores and files, the history the model is given (the server's, never the client's), tool errors, no model
configured, sign-in / CSRF / tenant isolation, and a client that disconnects in the middle of a reply."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from conftest import Org, make_org
from pydantic_ai.messages import ModelMessage, ModelRequest, RetryPromptPart, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo
from starlette.testclient import TestClient
from support.chat import (
    STREAM_HEADER,
    Call,
    Reply,
    ScriptedModel,
    chat_body,
    chunk_types,
    find,
    first,
    post_turn,
    response_texts,
    sse_chunks,
    streamed_text,
    tool_results,
    user_message,
    user_prompts,
)
from support.forum import call
from support.serving import uvicorn_thread
from support.web import sign_in

from fleetprompt.chat.agent import chat_key
from fleetprompt.chat.store import ConversationStore
from fleetprompt.platform import Platform
from fleetprompt.web.app import create_app

TENANT = "acme"
BASE_URL = "http://127.0.0.1:8000"
CREATE_NEWS = {"slug": "news", "name": "News", "wait_seconds": 5}


@contextmanager
def chat_client(platform: Platform, model: ScriptedModel | None, email: str) -> Iterator[tuple[TestClient, str]]:
    """The whole app with `model` as its chat model (None: no model configured), signed in as `email`."""
    app = create_app(platform, run_runner=False, chat_model=model.model() if model is not None else None)
    with TestClient(app, base_url=BASE_URL) as client:
        yield client, sign_in(client, email)


def store(platform: Platform, tenant: str = TENANT) -> ConversationStore:
    return ConversationStore(platform.db, tenant)


def directives(platform: Platform, tenant: str = TENANT) -> list[Any]:
    rows, cursor = platform.ledger.list(tenant, limit=500)
    assert cursor is None
    return rows


def category_slugs(platform: Platform, org: Org) -> list[str]:
    return [c.slug for c in call(platform, org.ctx("admin"), "forum_list_categories").items]


def seen_text(messages: list[ModelMessage]) -> str:
    """Everything the model was given, as one string (to look for text that must not be there)."""
    return "\n".join(repr(message) for message in messages)


# ---------------------------------------------------------------- 1. a turn: stream, ledger, store


def test_a_turn_streams_in_protocol_order_files_through_the_ledger_and_is_stored(platform: Platform, org: Org) -> None:
    script = ScriptedModel(
        [
            Call("forum_list_categories", {}, "c1"),
            Call("forum_create_category", CREATE_NEWS, "c2"),
            Reply("Created ", "the category."),
        ]
    )
    conversation = "conv-one"
    with chat_client(platform, script, "admin@acme.test") as (client, csrf):
        response = post_turn(client, csrf, conversation, "make a news category")
        assert response.status_code == 200, response.text
        assert response.headers[STREAM_HEADER] == "v1"
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = sse_chunks(response.text)  # ends with [DONE]
        api = client.get(f"/api/conversations/{conversation}")
    types = chunk_types(chunks)

    # The stream, in protocol order.
    assert types[0] == "start" and types[-1] == "finish", types
    assert "error" not in types and "tool-output-error" not in types, types
    order = [
        first(chunks, "tool-input-available", toolCallId="c1"),
        first(chunks, "tool-output-available", toolCallId="c1"),
        first(chunks, "tool-input-available", toolCallId="c2"),
        first(chunks, "tool-output-available", toolCallId="c2"),
        first(chunks, "data-directive"),
        first(chunks, "text-start"),
        *find(chunks, "text-delta"),
        first(chunks, "text-end"),
        len(chunks) - 1,  # finish
    ]
    assert order == sorted(order) and len(set(order)) == len(order), types
    assert chunks[order[2]]["toolName"] == "forum_create_category"
    assert chunks[order[2]]["input"] == CREATE_NEWS
    assert chunks[order[1]]["output"] == {"items": []}
    receipt = chunks[order[3]]["output"]
    assert receipt["status"] == "succeeded", receipt
    directive_id = uuid.UUID(receipt["directive_id"])
    updates = [chunks[i] for i in find(chunks, "data-directive")]
    assert len(updates) == 1, updates  # one update per change of status
    assert updates[0]["id"] == str(directive_id)
    assert updates[0]["data"]["directive_id"] == str(directive_id)
    assert updates[0]["data"]["status"] == "succeeded"
    assert updates[0]["data"]["type"] == "forum.category.create"
    assert updates[0]["data"]["url"] == f"/audit/directives/{directive_id}"
    assert streamed_text(chunks) == "Created the category."

    # What was done: one directive, succeeded, the category exists.
    assert [d.id for d in directives(platform)] == [directive_id]
    assert platform.ledger.get(TENANT, directive_id).status == "succeeded"
    assert category_slugs(platform, org) == ["news"]

    # What the API shows of the conversation.
    assert api.status_code == 200, api.text
    data = api.json()
    assert data["id"] == conversation and data["title"] == "make a news category"
    assert data["interrupted"] is False
    assert data["messages"][0]["role"] == "user"
    assert data["messages"][0]["parts"][0]["text"] == "make a news category"
    assert {m["role"] for m in data["messages"][1:]} == {"assistant"}
    parts = [part for m in data["messages"] for part in m["parts"]]
    [created] = [p for p in parts if p["type"] == "tool-forum_create_category"]
    assert created["toolCallId"] == "c2" and created["output"]["directive_id"] == str(directive_id)
    assert parts[-1]["type"] == "text" and parts[-1]["text"] == "Created the category."
    assert [(c["tool_call_id"], c["tool"], c["status"]) for c in data["tool_calls"]] == [
        ("c1", "forum_list_categories", "succeeded"),
        ("c2", "forum_create_category", "succeeded"),
    ]
    assert data["tool_calls"][0]["directive"] is None
    assert data["tool_calls"][1]["directive"]["directive_id"] == str(directive_id)
    assert data["tool_calls"][1]["directive"]["status"] == "succeeded"

    # What is stored: the person's message, then the run's messages, in order.
    messages = store(platform).messages(conversation)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert {m.status for m in messages} == {"complete"}
    assert user_prompts([messages[0].message]) == ["make a news category"]
    assert [m.model for m in messages if m.role == "assistant"] == ["scripted"] * 3
    assert [m.model for m in messages if m.role != "assistant"] == [None] * 3
    user_message_id = messages[0].id
    calls = store(platform).tool_calls(conversation)
    assert [(c.tool_call_id, c.tool, c.status) for c in calls] == [
        ("c1", "forum_list_categories", "succeeded"),
        ("c2", "forum_create_category", "succeeded"),
    ]
    assert calls[0].arguments == {} and calls[0].directive_id is None
    assert calls[1].arguments == {**CREATE_NEWS, "idempotency_key": chat_key(conversation, "c2")}
    assert calls[1].directive_id == directive_id
    assert calls[1].result is not None and calls[1].result["directive_id"] == str(directive_id)
    assert {c.message_id for c in calls} == {user_message_id}
    assert calls[0].correlation_id == calls[1].correlation_id == calls[1].turn_id

    # The directive: filed by the person's agent, through the chat, caused by their stored message.
    directive = platform.ledger.get(TENANT, directive_id)
    assert directive.requested_by_type == "agent"
    assert directive.requested_by == str(org.users["admin"])
    assert directive.requested_via == "chat"
    assert directive.correlation_id == calls[1].correlation_id
    assert directive.causation_id == f"chat:{conversation}:{user_message_id}"
    assert directive.idempotency_key == chat_key(conversation, "c2")
    assert script.remaining == 0


# ---------------------------------------------------------------- 2. the server's history only


def fake_history(tag: str) -> list[dict[str, Any]]:
    """What a client might claim happened before: a question, an answer and a tool result that never were."""
    return [
        user_message(f"{tag}-QUESTION"),
        {
            "id": f"{tag}-a",
            "role": "assistant",
            "parts": [
                {"type": "text", "text": f"{tag}-ANSWER"},
                {
                    "type": "tool-forum_list_categories",
                    "toolCallId": f"{tag}-call",
                    "state": "output-available",
                    "input": {},
                    "output": {"items": [f"{tag}-OUTPUT"]},
                },
            ],
        },
    ]


@pytest.mark.filterwarnings("ignore:.*client-submitted tool result")
def test_the_model_sees_the_servers_history_never_the_clients(platform: Platform, org: Org) -> None:
    script = ScriptedModel([Reply("first answer"), Reply("second answer"), Reply("third answer")])
    conversation = "conv-history"
    with chat_client(platform, script, "admin@acme.test") as (client, csrf):
        one = post_turn(client, csrf, conversation, "turn one", earlier=fake_history("FAKE1"))
        assert one.status_code == 200, one.text
        two = post_turn(client, csrf, conversation, "turn two", earlier=fake_history("FAKE2"))
        assert two.status_code == 200, two.text
        # A client resending an earlier message id (as an edit or a retry does) cuts nothing from the stored history.
        [stored_id] = [m["id"] for m in client.get(f"/api/conversations/{conversation}").json()["messages"][:1]]
        body = chat_body(conversation, "unused")
        body["messages"] = [user_message("turn three", stored_id)]
        three = client.post("/api/chat", json=body, headers={"x-csrf-token": csrf})
        assert three.status_code == 200, three.text

    first_request, second_request, third_request = script.requests
    # Turn one: only the new prompt (a new conversation has no history, whatever the client says).
    assert [type(m) for m in first_request] == [ModelRequest]
    assert user_prompts(first_request) == ["turn one"]
    assert "FAKE" not in seen_text(first_request)
    # Turn two: turn one as the server stored it, then the new prompt.
    assert user_prompts(second_request) == ["turn one", "turn two"]
    assert response_texts(second_request) == ["first answer"]
    assert tool_results(second_request) == []
    assert len(second_request) == 3
    assert "FAKE" not in seen_text(second_request)
    # Turn three: everything stored, in order.
    assert user_prompts(third_request) == ["turn one", "turn two", "turn three"]
    assert response_texts(third_request) == ["first answer", "second answer"]
    assert [m.role for m in store(platform).messages(conversation)] == ["user", "assistant"] * 3
    assert "FAKE" not in seen_text(store(platform).history(conversation))


# ---------------------------------------------------------------- 3. tool errors


MISSING_CATEGORY = "01a20f0c-56b4-7062-a140-9d983bdd9bec"
THREAD_ARGS = {"category_id": MISSING_CATEGORY, "title": "Hello", "content": "First post"}


def test_a_tool_error_goes_back_to_the_model_and_nothing_is_filed(platform: Platform, org: Org) -> None:
    script = ScriptedModel(
        [
            Call("forum_create_thread", THREAD_ARGS, "t1"),  # refused by the tool: no such category
            Call("forum_create_category", {"slug": 5}, "t2"),  # arguments that do not validate
            Reply("I could not do that."),
        ]
    )
    conversation = "conv-errors"
    with chat_client(platform, script, "admin@acme.test") as (client, csrf):
        response = post_turn(client, csrf, conversation, "start a thread")
    assert response.status_code == 200, response.text
    chunks = sse_chunks(response.text)
    types = chunk_types(chunks)
    assert types[-1] == "finish" and "error" not in types, types
    assert find(chunks, "tool-output-available") == [] and find(chunks, "data-directive") == [], types
    [missing] = [chunks[i] for i in find(chunks, "tool-output-error", toolCallId="t1")]
    assert missing["errorText"].startswith("not_found:") and MISSING_CATEGORY in missing["errorText"]
    [invalid] = [chunks[i] for i in find(chunks, "tool-output-error", toolCallId="t2")]
    assert invalid["errorText"].startswith("invalid_input:") and "slug" in invalid["errorText"]
    assert streamed_text(chunks) == "I could not do that."

    # The model was told, as a retry of its call.
    for index, (call_id, text) in enumerate([("t1", "not_found"), ("t2", "invalid_input")], start=1):
        [told] = [p for p in tool_results(script.requests[index][-1:]) if p.tool_call_id == call_id]
        assert isinstance(told, RetryPromptPart) or told.outcome == "retried", told
        assert text in str(told.content)

    assert directives(platform) == []
    assert category_slugs(platform, org) == []
    rows = {c.tool_call_id: c for c in store(platform).tool_calls(conversation)}
    assert (rows["t1"].status, rows["t1"].directive_id) == ("failed", None)
    assert rows["t1"].error == f"not_found: forum category {MISSING_CATEGORY} not found"
    assert (rows["t2"].status, rows["t2"].directive_id) == ("failed", None)
    assert rows["t2"].error is not None and rows["t2"].error.startswith("invalid_input: invalid arguments")
    assert {m.status for m in store(platform).messages(conversation)} == {"complete"}


def test_a_model_that_keeps_failing_a_tool_ends_the_turn_as_interrupted(platform: Platform, org: Org) -> None:
    script = ScriptedModel([Call("forum_create_thread", THREAD_ARGS, f"r{i}") for i in range(3)] + [Reply("Hi.")])
    conversation = "conv-retries"
    with chat_client(platform, script, "admin@acme.test") as (client, csrf):
        response = post_turn(client, csrf, conversation, "start a thread")
        assert response.status_code == 200, response.text
        chunks = sse_chunks(response.text)
        [error] = [chunks[i] for i in find(chunks, "error")]
        assert chunks[-1]["type"] == "finish"
        turn_id = store(platform).tool_calls(conversation)[0].turn_id
        # The failure's details stay in the server's log: the person (and the model) get a reference.
        assert error["errorText"] == f"The reply failed on our side; reference {turn_id}."
        messages = store(platform).messages(conversation)
        assert [(m.role, m.status) for m in messages] == [("user", "interrupted"), ("assistant", "interrupted")]
        [note] = response_texts([messages[-1].message])
        assert "interrupted" in note and "the model failed" in note and turn_id in note
        assert "retries" not in note
        # The conversation goes on from there.
        again = post_turn(client, csrf, conversation, "never mind")
        assert again.status_code == 200, again.text
    assert streamed_text(sse_chunks(again.text)) == "Hi."
    assert user_prompts(script.requests[-1]) == ["start a thread", "never mind"]
    assert directives(platform) == []


# ---------------------------------------------------------------- 4. no model configured


def test_without_a_model_the_chat_explains_how_to_configure_one(platform: Platform, org: Org) -> None:
    assert platform.ledger.settings.model is None
    conversation = "conv-unconfigured"
    with chat_client(platform, None, "admin@acme.test") as (client, csrf):
        response = post_turn(client, csrf, conversation, "create a category called news")
        page = client.get(f"/chat/{conversation}")
        index = client.get("/chat", follow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.headers[STREAM_HEADER] == "v1"
    chunks = sse_chunks(response.text)
    text = streamed_text(chunks)
    assert "No chat model is configured" in text and "FLEETPROMPT_MODEL" in text
    assert find(chunks, "tool-input-available") == [] and "error" not in chunk_types(chunks)
    assert directives(platform) == []
    assert page.status_code == 200
    assert "No chat model is configured" in page.text
    assert index.status_code == 303 and index.headers["location"].startswith("/chat/")
    messages = store(platform).messages(conversation)
    assert [(m.role, m.status, m.model) for m in messages] == [
        ("user", "complete", None),
        ("assistant", "complete", "not-configured"),
    ]


# ---------------------------------------------------------------- 5. sign-in, CSRF, requests, isolation


def test_a_turn_needs_a_session_and_its_csrf_token(platform: Platform, org: Org) -> None:
    script = ScriptedModel([Reply("should not run")])
    app = create_app(platform, run_runner=False, chat_model=script.model())
    with TestClient(app, base_url=BASE_URL) as client:
        anonymous = post_turn(client, None, "conv-auth", "hello")
        assert anonymous.status_code == 401 and "sign in" in anonymous.json()["error"]
        assert client.get("/api/conversations").status_code == 401
        assert client.get("/api/conversations/conv-auth").status_code == 401
        csrf = sign_in(client, "admin@acme.test")
        missing = post_turn(client, None, "conv-auth", "hello")
        wrong = post_turn(client, csrf[::-1], "conv-auth", "hello")
        other = post_turn(client, "x", "conv-auth", "hello")
    for refused in (missing, wrong, other):
        assert refused.status_code == 403, refused.text
        assert "CSRF" in refused.json()["error"]
    assert script.requests == []
    assert store(platform).list(org.users["admin"]) == []
    assert store(platform).messages("conv-auth") == []


def test_requests_that_are_not_chat_turns_are_refused_cleanly(platform: Platform, org: Org) -> None:
    script = ScriptedModel([Reply("should not run")])
    with chat_client(platform, script, "admin@acme.test") as (client, csrf):
        headers = {"x-csrf-token": csrf}

        def refused(status: int, **request: Any) -> str:
            response = client.post("/api/chat", headers={**headers, **request.pop("headers", {})}, **request)
            assert response.status_code == status, (request, response.status_code, response.text)
            assert response.headers["content-type"].startswith("application/json"), response.headers
            return response.json()["error"]

        assert "not a chat request" in refused(400, json={"hello": "world"})
        assert "not a chat request" in refused(400, json={"trigger": "submit-message", "id": "conv-bad"})
        assert "not a chat request" in refused(400, json=[1, 2, 3])
        refused(400, content=b"{not json", headers={"content-type": "application/json"})
        refused(415, content=b'{"trigger": "submit-message"}', headers={"content-type": "text/plain"})
        refused(415, data={"trigger": "submit-message", "id": "conv-bad"})
        regenerate = {**chat_body("conv-bad", "hi"), "trigger": "regenerate-message", "messageId": "m1"}
        assert "regenerat" in refused(400, json=regenerate)
        for bad_id in ("../x", "a" * 100, "with space", ""):
            assert "conversation id" in refused(400, json=chat_body(bad_id, "hello")), bad_id
        assert client.get(f"/api/conversations/{'a' * 100}").status_code == 404
    assert script.requests == []
    assert store(platform).list(org.users["admin"]) == []


def test_a_request_without_new_text_is_refused_and_creates_no_conversation(platform: Platform, org: Org) -> None:
    script = ScriptedModel([Reply("should not run")])
    with chat_client(platform, script, "admin@acme.test") as (client, csrf):
        for messages in ([user_message("   ")], [], fake_history("OLD")):
            body = {"trigger": "submit-message", "id": "conv-empty", "messages": messages}
            response = client.post("/api/chat", json=body, headers={"x-csrf-token": csrf})
            assert response.status_code == 400, (messages, response.text)
            assert "send a message" in response.json()["error"]
        listed = client.get("/api/conversations").json()["conversations"]
    assert script.requests == []
    assert store(platform).messages("conv-empty") == []
    # A refused request leaves nothing behind: no empty "New conversation" in the person's list.
    assert listed == []
    assert store(platform).list(org.users["admin"]) == []


def test_a_conversation_is_its_owners_alone(platform: Platform, org: Org) -> None:
    script = ScriptedModel([Reply("the admin's answer"), Reply("globex answer")])
    conversation = "conv-private"
    with chat_client(platform, script, "admin@acme.test") as (admin, admin_csrf):
        assert post_turn(admin, admin_csrf, conversation, "admin secret plans").status_code == 200
    assert len(script.requests) == 1
    before = [(m.id, m.role, m.status) for m in store(platform).messages(conversation)]
    assert len(before) == 2

    # Another member of the same organization: not found, whichever way they ask.
    with chat_client(platform, script, "member@acme.test") as (member, member_csrf):
        assert member.get(f"/api/conversations/{conversation}").status_code == 404
        assert member.get(f"/chat/{conversation}").status_code == 404
        into = post_turn(member, member_csrf, conversation, "let me in")
        assert into.status_code == 404, into.text
        assert "not found" in into.json()["error"]
        assert member.get("/api/conversations").json() == {"conversations": []}
    assert len(script.requests) == 1
    assert [(m.id, m.role, m.status) for m in store(platform).messages(conversation)] == before

    # Someone of another organization: the id means nothing there, and they start their own conversation with it.
    make_org(platform, "globex")
    with chat_client(platform, script, "owner@globex.test") as (outsider, outsider_csrf):
        assert outsider.get(f"/api/conversations/{conversation}").status_code == 404
        page = outsider.get(f"/chat/{conversation}")
        assert page.status_code == 200  # an id unknown here: a new, empty conversation of their own
        assert "New conversation" in page.text
        assert "admin secret plans" not in page.text and "the admin&#39;s answer" not in page.text
        own = post_turn(outsider, outsider_csrf, conversation, "globex question")
        assert own.status_code == 200, own.text
        assert streamed_text(sse_chunks(own.text)) == "globex answer"
        shown = outsider.get(f"/api/conversations/{conversation}").json()
    assert user_prompts(script.requests[-1]) == ["globex question"]
    assert "admin secret" not in seen_text(script.requests[-1])
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    assert "admin secret" not in str(shown)
    assert [m.role for m in store(platform, "globex").messages(conversation)] == ["user", "assistant"]
    assert [(m.id, m.role, m.status) for m in store(platform).messages(conversation)] == before


# ---------------------------------------------------------------- 6. the client disconnects mid-reply


@contextmanager
def serving(platform: Platform, model: ScriptedModel) -> Iterator[str]:
    """The app with `model`, served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    with uvicorn_thread(create_app(platform, run_runner=False, chat_model=model.model())) as port:
        yield f"http://127.0.0.1:{port}"


def wait_for(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(0.05)


def test_a_client_that_disconnects_mid_reply_leaves_a_consistent_conversation(platform: Platform, org: Org) -> None:
    closed = threading.Event()
    finished = threading.Event()

    async def slow_reply(_messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str]:
        yield "Filed it; "
        deadline = time.monotonic() + 10
        while not closed.is_set() and time.monotonic() < deadline:  # until the test has hung up
            await asyncio.sleep(0.02)
        for piece in range(40):  # then long enough for the server to notice
            await asyncio.sleep(0.1)
            yield f"more {piece} "
        finished.set()

    script = ScriptedModel([Call("forum_create_category", CREATE_NEWS, "d1"), slow_reply, Reply("Back again.")])
    conversation = "conv-disconnect"
    with serving(platform, script) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        csrf = sign_in(client, "admin@acme.test")  # type: ignore[arg-type]  # an httpx.Client, like TestClient
        seen: list[dict[str, Any]] = []
        body = chat_body(conversation, "make a news category")
        with client.stream("POST", "/api/chat", json=body, headers={"x-csrf-token": csrf}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    seen.extend(sse_chunks(line, require_done=False))
                if seen and seen[-1]["type"] == "text-delta":
                    break  # hang up in the middle of the reply
        closed.set()
        assert find(seen, "tool-output-available", toolCallId="d1"), chunk_types(seen)

        def interrupted() -> bool:
            messages = store(platform).messages(conversation)
            return bool(messages) and messages[-1].status == "interrupted"

        assert wait_for(interrupted), [(m.role, m.status) for m in store(platform).messages(conversation)]
        assert not finished.is_set(), "the reply ran to its end although nobody was listening"

        messages = store(platform).messages(conversation)
        assert [(m.role, m.status) for m in messages] == [("user", "interrupted"), ("assistant", "interrupted")]
        assert user_prompts([messages[0].message]) == ["make a news category"]
        [note] = response_texts([messages[-1].message])
        assert "interrupted" in note and "connection closed" in note

        # Filed exactly once, ran, and the note names it.
        [directive] = directives(platform)
        assert directive.status == "succeeded"
        assert str(directive.id) in note
        assert category_slugs(platform, org) == ["news"]
        [row] = store(platform).tool_calls(conversation)
        assert (row.tool_call_id, row.status, row.directive_id) == ("d1", "succeeded", directive.id)

        # The conversation goes on, and the model hears what happened.
        again = post_turn(client, csrf, conversation, "did it work?")
        assert again.status_code == 200, again.text
        assert streamed_text(sse_chunks(again.text)) == "Back again."
    last_request = script.requests[-1]
    assert user_prompts(last_request) == ["make a news category", "did it work?"]
    assert any("interrupted" in text and str(directive.id) in text for text in response_texts(last_request))
    assert not any(isinstance(p, (ToolReturnPart, RetryPromptPart)) for p in tool_results(last_request))
    assert isinstance(last_request[-1], ModelRequest)
    assert any(isinstance(p, UserPromptPart) for p in last_request[-1].parts)
    assert [(m.role, m.status) for m in store(platform).messages(conversation)][2:] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert len(directives(platform)) == 1


def test_a_client_that_disconnects_while_a_directive_tool_waits_still_learns_what_was_filed(
    platform: Platform, org: Org
) -> None:
    """The person hangs up while the tool that filed a directive is still waiting for its outcome: the turn's note
    (what the model reads next) must still name the directive, which exists exactly once."""
    script = ScriptedModel([Call("forum_create_category", {**CREATE_NEWS, "wait_seconds": 3}, "w1"), Reply("Done.")])
    conversation = "conv-disconnect-wait"
    huey = platform.runner.huey
    with serving(platform, script) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        csrf = sign_in(client, "admin@acme.test")  # type: ignore[arg-type]  # an httpx.Client, like TestClient
        huey.immediate = False  # filed, not run: the tool waits for an outcome that does not come
        try:
            body = chat_body(conversation, "make a news category")
            with client.stream("POST", "/api/chat", json=body, headers={"x-csrf-token": csrf}) as response:
                assert response.status_code == 200
                # Keep a reference: an abandoned line iterator is closed at once, and closing it hangs up.
                lines = response.iter_lines()
                for line in lines:
                    if '"tool-input-available"' in line:
                        break
                # Hang up once the tool has filed and waits for the outcome. A hang-up before the tool starts
                # rightly files nothing; how soon the server notices one is not what this test is about.
                assert wait_for(lambda: directives(platform), 5), "the directive was not filed"

            def settled() -> bool:
                messages = store(platform).messages(conversation)
                calls = store(platform).tool_calls(conversation)
                return bool(messages) and messages[-1].status == "interrupted" and calls[0].status != "running"

            assert wait_for(settled, 10), [(m.role, m.status) for m in store(platform).messages(conversation)]
        finally:
            huey.immediate = True
    [directive] = directives(platform)
    [row] = store(platform).tool_calls(conversation)
    assert (row.status, row.directive_id) == ("succeeded", directive.id)
    messages = store(platform).messages(conversation)
    [note] = response_texts([messages[-1].message])
    assert "interrupted" in note
    assert str(directive.id) in note, note


def test_a_second_turn_while_one_is_running_does_not_interleave_the_conversation(platform: Platform, org: Org) -> None:
    """Two turns in one conversation at once (a double submit, two tabs): the second is refused (409) or waits for
    the first; either way the stored conversation keeps each turn together, and no turn answers the other's prompt."""
    second_done = threading.Event()

    async def held_reply(_messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str]:
        deadline = time.monotonic() + 3
        while not second_done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        yield "first answer"

    script = ScriptedModel([held_reply, Reply("second answer")])
    conversation = "conv-concurrent"
    with chat_client(platform, script, "admin@acme.test") as (client, csrf):
        results: dict[str, httpx.Response] = {}
        first_turn = threading.Thread(
            target=lambda: results.setdefault("first", post_turn(client, csrf, conversation, "first question"))
        )
        first_turn.start()
        try:
            assert wait_for(lambda: script.requests, 5), "the first turn never reached the model"
            second = post_turn(client, csrf, conversation, "second question")
        finally:
            second_done.set()
            first_turn.join(timeout=30)
    assert results["first"].status_code == 200, results["first"].text
    assert streamed_text(sse_chunks(results["first"].text)) == "first answer"
    stored = store(platform).messages(conversation)
    if second.status_code == 409:
        assert [m.role for m in stored] == ["user", "assistant"]
        assert len(script.requests) == 1
    else:
        assert second.status_code == 200, second.text
        shown = [(m.role, *user_prompts([m.message]), *response_texts([m.message])) for m in stored]
        assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete")] * 2, shown
        assert user_prompts([stored[0].message, stored[2].message]) == ["first question", "second question"]
        assert response_texts([stored[1].message, stored[3].message]) == ["first answer", "second answer"]
        assert response_texts(script.requests[1]) == ["first answer"], user_prompts(script.requests[1])
