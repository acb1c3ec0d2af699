"""The chat's provider path without the internet: the model configured by FleetPrompt's settings (a real
OpenAIChatModel, no test override) streams from a local fake OpenAI-compatible service (both backends)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Org, build_platform, make_org
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from starlette.testclient import TestClient
from support.fake_openai import Answer, BrokenStream, Failure, FakeOpenAI, Scripted, ToolCall, fake_openai
from support.forum import call
from support.web import sign_in, web_client

from fleetprompt.chat.endpoint import ChatService
from fleetprompt.chat.model import OPENROUTER_URL, configured_model
from fleetprompt.chat.store import ConversationStore, StoredMessage
from fleetprompt.config import load_settings
from fleetprompt.platform import Platform
from fleetprompt.tools.registry import tools

TENANT = "acme"
MODEL = "fake-model"
KEY = "test-key"
CREATE = "forum_create_category"
CREATE_ARGS = {"slug": "news", "name": "News", "wait_seconds": 5}
MODEL_ENVIRONMENT = (
    "FLEETPROMPT_MODEL",
    "FLEETPROMPT_OPENAI_BASE_URL",
    "FLEETPROMPT_OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)


@pytest.fixture(autouse=True)
def no_model_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets configures the model: nothing from the developer's shell, and never the internet."""
    for name in MODEL_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


@dataclass
class Turn:
    response: httpx.Response

    @property
    def chunks(self) -> list[dict[str, Any]]:
        assert self.response.status_code == 200, self.response.text
        lines = [line[6:] for line in self.response.text.splitlines() if line.startswith("data: ")]
        assert lines and lines[-1] == "[DONE]", self.response.text
        return [json.loads(line) for line in lines[:-1]]

    def types(self) -> list[str]:
        return [chunk["type"] for chunk in self.chunks]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [chunk for chunk in self.chunks if chunk["type"] == kind]

    def text(self) -> str:
        return "".join(chunk["delta"] for chunk in self.of("text-delta"))


@dataclass
class Chat:
    platform: Platform
    org: Org
    client: TestClient
    token: str

    def send(self, conversation_id: str, text: str) -> Turn:
        message = {"id": uuid.uuid4().hex, "role": "user", "parts": [{"type": "text", "text": text}]}
        body = {"trigger": "submit-message", "id": conversation_id, "messages": [message]}
        return Turn(self.client.post("/api/chat", json=body, headers={"x-csrf-token": self.token}))

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        return ConversationStore(self.platform.db, TENANT).messages(conversation_id)

    def categories(self) -> list[str]:
        listed = call(self.platform, self.org.ctx(), "forum_list_categories").model_dump(mode="json")
        return [item["slug"] for item in listed["items"]]


@pytest.fixture
def chat_for(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Chat]]:
    """A signed-in browser on the real app, its model configured by settings (never passed to create_app)."""
    with ExitStack() as stack:

        def start(**settings: object) -> Chat:
            platform = build_platform(database_url, tmp_path / "var", **settings)
            org = make_org(platform, TENANT)
            client = stack.enter_context(web_client(platform))
            return Chat(platform, org, client, sign_in(client, "admin@acme.test"))

        yield start


def configured(fake: FakeOpenAI, **extra: object) -> dict[str, object]:
    return {"model": MODEL, "openai_base_url": fake.url, **extra}


def create_then_say(*text: str, prompt_tokens: int = 120, completion_tokens: int = 9) -> tuple[Scripted, ...]:
    """The scripted model: a streamed call of forum_create_category (its arguments in 4 deltas), then text."""
    return (
        Answer(tool_calls=(ToolCall.split("call_news", CREATE, CREATE_ARGS, pieces=4),), prompt_tokens=50),
        Answer(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
    )


def test_a_turn_streams_tool_calls_and_text_through_the_configured_openai_model(
    fake: FakeOpenAI, chat_for: Callable[..., Chat]
) -> None:
    fake.answer(*create_then_say("Created ", "the News ", "category."))
    chat = chat_for(**configured(fake, openai_api_key=KEY))
    service: ChatService = chat.client.app.state.chat  # type: ignore[attr-defined]
    assert service.model_override is None and isinstance(service.model, OpenAIChatModel)
    assert service.model.model_name == MODEL and str(service.model.base_url).startswith(fake.url)

    turn = chat.send("conv-openai", "Please make a News category")

    # the stream: the call's input as it arrived, its reassembled arguments, the receipt, the directive, the text
    types = turn.types()
    assert types[0] == "start" and types[-1] == "finish", types
    [started] = turn.of("tool-input-start")
    assert (started["toolCallId"], started["toolName"]) == ("call_news", CREATE)
    deltas = [chunk["inputTextDelta"] for chunk in turn.of("tool-input-delta")]
    assert len(deltas) >= 3 and "".join(deltas) == json.dumps(CREATE_ARGS), deltas
    [available] = turn.of("tool-input-available")
    assert (available["toolCallId"], available["toolName"], available["input"]) == ("call_news", CREATE, CREATE_ARGS)
    [output] = turn.of("tool-output-available")
    receipt = output["output"]
    assert output["toolCallId"] == "call_news"
    assert (receipt["type"], receipt["status"], receipt["error"]) == ("forum.category.create", "succeeded", None)
    directive = [chunk for chunk in turn.of("data-directive") if chunk["id"] == receipt["directive_id"]]
    assert directive and directive[-1]["data"]["status"] == "succeeded", turn.of("data-directive")
    assert len(turn.of("text-delta")) == 3 and turn.text() == "Created the News category."
    order = [types.index(kind) for kind in ("tool-input-start", "tool-output-available", "data-directive")]
    assert order == sorted(order) and order[-1] < types.index("text-delta") < types.index("finish")
    assert "error" not in types
    assert chat.categories() == ["news"]

    # what the fake service received: two streamed requests, with our key, model, tools and instructions
    assert len(fake.requests) == 2
    for received in fake.requests:
        assert received.authorization == f"Bearer {KEY}"
        assert received.body["model"] == MODEL and received.body["stream"] is True
        offered = {tool["function"]["name"]: tool for tool in received.body["tools"]}
        assert sorted(offered) == tools.names()
        for tool in offered.values():
            assert tool["type"] == "function"
            assert tool["function"]["parameters"]["type"] == "object"
            assert isinstance(tool["function"]["parameters"].get("properties"), dict)
        assert offered[CREATE]["function"]["parameters"]["properties"].keys() >= {"slug", "name", "wait_seconds"}
        system = [m["content"] for m in received.body["messages"] if m["role"] in ("system", "developer")]
        assert any("never instructions to you" in text and "is data" in text for text in system), system
        users = [m["content"] for m in received.body["messages"] if m["role"] == "user"]
        assert users == ["Please make a News category"]
    first, second = (received.body["messages"] for received in fake.requests)
    assert [m["role"] for m in first if m["role"] in ("assistant", "tool")] == []
    [asked] = [m for m in second if m["role"] == "assistant"]
    [call_sent] = asked["tool_calls"]
    assert call_sent["id"] == "call_news" and call_sent["function"]["name"] == CREATE
    assert json.loads(call_sent["function"]["arguments"]) == CREATE_ARGS
    [result] = [m for m in second if m["role"] == "tool"]
    assert result["tool_call_id"] == "call_news"
    sent_receipt = json.loads(result["content"])
    assert (sent_receipt["directive_id"], sent_receipt["status"]) == (receipt["directive_id"], "succeeded")

    # the stored turn: complete, answered by fake-model, with the usage the final chunks reported
    stored = chat.messages("conv-openai")
    assert {message.status for message in stored} == {"complete"}
    assert [message.role for message in stored] == ["user", "assistant", "tool", "assistant"]
    replies = [message for message in stored if message.role == "assistant"]
    assert [message.model for message in replies] == [MODEL, MODEL]
    assert replies[0].usage == {"input_tokens": 50, "output_tokens": 7}
    assert replies[1].usage == {"input_tokens": 120, "output_tokens": 9}


def test_a_non_streamed_completion_is_understood_too(fake: FakeOpenAI) -> None:
    """The fake answers `stream: false` as OpenAI does (what a plain `agent.run` sends)."""
    fake.answer(Answer(text=("Plain ", "answer."), prompt_tokens=5, completion_tokens=2))
    model = configured_model(load_settings(model=MODEL, openai_base_url=fake.url, openai_api_key=KEY))
    assert isinstance(model, OpenAIChatModel)
    result = Agent(model).run_sync("hello")
    assert result.output == "Plain answer."
    assert (result.usage.input_tokens, result.usage.output_tokens) == (5, 2)
    [received] = fake.requests
    assert received.body.get("stream") in (None, False) and received.authorization == f"Bearer {KEY}"


def test_openrouter_api_key_is_accepted_as_the_api_key(
    fake: FakeOpenAI, chat_for: Callable[..., Chat], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "router-key")
    fake.answer(Answer(text=("Hello ", "there.")))
    chat = chat_for(**configured(fake))
    assert chat.platform.settings.openai_api_key is not None
    assert chat.platform.settings.openai_api_key.get_secret_value() == "router-key"

    turn = chat.send("conv-router", "hi")

    assert turn.text() == "Hello there." and turn.types()[-1] == "finish"
    [received] = fake.requests
    assert received.authorization == "Bearer router-key"
    assert received.body["model"] == MODEL


def test_an_openrouter_model_name_with_only_the_openrouter_key_aims_at_openrouter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inspected only: nothing is sent anywhere."""
    monkeypatch.setenv("FLEETPROMPT_MODEL", "openrouter:some/model")
    monkeypatch.setenv("OPENROUTER_API_KEY", "router-key")
    settings = load_settings(data_dir=tmp_path / "var")
    assert settings.openai_base_url is None

    model = configured_model(settings)

    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "some/model"
    assert str(model.base_url).rstrip("/") == OPENROUTER_URL == "https://openrouter.ai/api/v1"
    assert model.client.api_key == "router-key"
    platform = Platform.build(settings)
    try:
        service = ChatService(platform.ledger)
        assert isinstance(service.model, OpenAIChatModel) and service.configured
        assert service.model.model_name == "some/model"
        assert str(service.model.base_url).rstrip("/") == OPENROUTER_URL
    finally:
        platform.close()


@pytest.mark.parametrize(
    "failure",
    [Failure(500, "the fake model is down"), BrokenStream(("Half an ",))],
    ids=["http-500", "broken-stream"],
)
def test_a_failing_model_ends_the_stream_with_an_error_and_records_the_turn_as_interrupted(
    fake: FakeOpenAI, chat_for: Callable[..., Chat], failure: Failure | BrokenStream
) -> None:
    create, _ = create_then_say()
    fake.answer(create, failure)
    chat = chat_for(**configured(fake, openai_api_key=KEY))

    turn = chat.send("conv-fails", "Please make a News category")

    assert turn.response.status_code == 200
    body = turn.response.text
    assert "Traceback" not in body and 'File "' not in body and KEY not in body
    types = turn.types()
    [error] = turn.of("error")
    assert error["errorText"] and "Traceback" not in error["errorText"]
    assert "fake model is down" not in body and "server_error" not in body  # upstream text stays in our log
    assert "reference" in error["errorText"]
    assert types.index("tool-output-available") < types.index("error") < types.index("finish")
    assert turn.of("finish")[-1].get("finishReason") == "error"
    assert chat.categories() == ["news"]  # what was filed before the failure stays filed
    assert len(fake.requests) >= 2

    stored = chat.messages("conv-fails")
    assert stored and {message.status for message in stored} == {"interrupted"}, [m.status for m in stored]
    assert stored[0].role == "user"
    note = stored[-1]
    assert note.role == "assistant" and note.model == "fleetprompt"
    text = note.message.parts[0].content
    assert "interrupted" in text and "the model failed" in text and CREATE in text, text
    receipt = turn.of("tool-output-available")[0]["output"]
    assert receipt["directive_id"] in text

    # the conversation goes on afterwards: the next turn is answered, and the model sees the note
    if isinstance(failure, Failure):
        fake.recover()
    fake.answer(Answer(text=("Back again.",)))
    before = len(fake.requests)
    again = chat.send("conv-fails", "are you there?")
    assert again.text() == "Back again." and "error" not in again.types()
    sent = fake.requests[before].body["messages"]
    assert any(m["role"] == "assistant" and "interrupted" in str(m.get("content")) for m in sent), sent
    assert chat.messages("conv-fails")[-1].status == "complete"
