"""/chat pages and the JSON and streaming endpoints behind them; every one needs a signed-in person."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fleetprompt.chat.endpoint import SDK_VERSION, STATUS_CODES, ChatService, chat_turn, error_response
from fleetprompt.chat.store import ConversationStore, ToolCallView
from fleetprompt.chat.turns import directive_status
from fleetprompt.errors import FleetPromptError
from fleetprompt.web.pages import render, to_sign_in
from fleetprompt.web.session import Person, check_csrf, current_person


def _service(request: Request) -> ChatService:
    return request.app.state.chat


def _store(request: Request, person: Person) -> ConversationStore:
    return ConversationStore(_service(request).ledger.db, person.who.org.slug)


async def api_chat(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return error_response(401, "sign in first (POST /signin)")
    try:
        await check_csrf(request)
    except FleetPromptError as exc:
        return error_response(403, exc.message)
    return await chat_turn(
        request, _service(request), person.context(via="web-chat"), person.agent_context(via="chat"), person.is_admin
    )


def _conversation_data(request: Request, person: Person, conversation_id: str) -> dict[str, Any]:
    """A stored conversation as the page and the API show it: UI messages (v6 parts) and the directives filed."""
    store = _store(request, person)
    conversation = store.visible(person.user_id, conversation_id)
    if conversation is None:
        return {"id": conversation_id, "title": "New conversation", "messages": [], "tool_calls": []}
    stored = store.messages(conversation_id)
    ui_messages = VercelAIAdapter.dump_messages([m.message for m in stored], sdk_version=SDK_VERSION)
    ledger = _service(request).ledger
    calls = []
    for call in store.tool_calls(conversation_id):
        calls.append(_tool_call_data(ledger, person, call))
    interrupted = any(m.status == "interrupted" for m in stored)
    messages = [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in ui_messages]
    # A directive's causation names the stored message (chat:<conversation>:<message id>): anchor it on the page.
    prompts = iter([str(m.id) for m in stored if m.role == "user"])
    for message in messages:
        if message["role"] == "user":
            message["anchor"] = next(prompts, message["id"])
    return {
        "id": conversation.id,
        "title": conversation.title,
        "interrupted": interrupted,
        "messages": messages,
        "tool_calls": calls,
    }


def _tool_call_data(ledger: Any, person: Person, call: ToolCallView) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tool_call_id": call.tool_call_id,
        "tool": call.tool,
        "status": call.status,
        "error": call.error,
        "directive": None,
    }
    if call.directive_id is not None:
        data["directive"] = directive_status(ledger, person.agent_context(via="chat"), call.directive_id).as_data()
    return data


async def api_conversations(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return error_response(401, "sign in first (POST /signin)")
    rows = await run_in_threadpool(_store(request, person).list, person.user_id)
    return JSONResponse(
        {"conversations": [{"id": c.id, "title": c.title, "updated_at": c.updated_at.isoformat()} for c in rows]}
    )


async def api_conversation(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return error_response(401, "sign in first (POST /signin)")
    try:
        data = await run_in_threadpool(_conversation_data, request, person, request.path_params["conversation_id"])
    except FleetPromptError as exc:
        return error_response(STATUS_CODES.get(exc.code, 400) if exc.code != "invalid_input" else 404, exc.message)
    if not data["messages"]:
        return error_response(404, f"conversation {data['id']!r} not found")
    return JSONResponse(data)


async def chat_index(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return to_sign_in(request)
    return RedirectResponse(f"/chat/{uuid.uuid4().hex}", status_code=303)


async def chat_page(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return to_sign_in(request)
    conversation_id = request.path_params["conversation_id"]
    store = _store(request, person)
    try:
        data = await run_in_threadpool(_conversation_data, request, person, conversation_id)
    except FleetPromptError as exc:
        return render(request, "error.html", person, 404, message=exc.message)
    conversations = await run_in_threadpool(store.list, person.user_id)
    return render(
        request,
        "chat.html",
        person,
        conversation=data,
        conversations=conversations,
        model_configured=_service(request).configured,
        calls_by_id={call["tool_call_id"]: call for call in data["tool_calls"]},
    )


routes = [
    Route("/api/chat", api_chat, methods=["POST"]),
    Route("/api/conversations", api_conversations, methods=["GET"]),
    Route("/api/conversations/{conversation_id}", api_conversation, methods=["GET"]),
    Route("/chat", chat_index, methods=["GET"]),
    Route("/chat/{conversation_id}", chat_page, methods=["GET"]),
]
