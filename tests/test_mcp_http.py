"""/mcp over real HTTP (uvicorn on a free port, embedded runner): bearer tokens, tenant isolation, roles, Host and
Origin checks, body limits, directives with progress and confirmation in both protocol eras, and a pydantic-ai
agent that uses FleetPrompt as its toolset."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp
import pytest
from conftest import Org, build_platform, make_org
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlmodel import select
from support.forum import new_category, new_thread, reply
from support.serving import uvicorn_thread

from fleetprompt.accounts.tokens import create_token, hash_token, revoke_token
from fleetprompt.accounts.users import add_user, set_membership
from fleetprompt.models.base import utcnow
from fleetprompt.models.forum import ForumCategory, ForumPost
from fleetprompt.models.tenancy import ApiToken
from fleetprompt.platform import Platform
from fleetprompt.web.app import create_app

pytestmark = pytest.mark.slow

LEGACY = "2025-11-25"  # the initialize handshake and a session
MODERN = "2026-07-28"  # stateless requests, each carrying its own envelope
ACCEPT = "application/json, text/event-stream"
WAIT = 20  # seconds a directive tool may wait for the embedded runner
ONE_MIB = 1024 * 1024  # the documented limit on a request body


# ---------------------------------------------------------------------------------------------- the server


@contextmanager
def serving(platform: Platform) -> Iterator[int]:
    """create_app(platform) with its embedded runner, served by uvicorn in a thread; yields the port."""
    try:
        with uvicorn_thread(create_app(platform, run_runner=True, workers=2)) as port:
            yield port
    finally:
        platform.close()  # the app's lifespan closes it too; again is harmless when the server never started


@dataclass
class Served:
    platform: Platform
    port: int
    acme: Org

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def token(self, role: str = "admin", org: str = "acme", **options: Any) -> str:
        return create_token(self.platform.db, org, f"{role}@{org}.test", **options)

    def directives(self, org: str = "acme") -> list[uuid.UUID]:
        rows, cursor = self.platform.ledger.list(org, limit=500)
        assert cursor is None
        return [d.id for d in rows]


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """A fresh platform with a real queue and the organization acme, served on a free port."""
    platform = build_platform(database_url, tmp_path / "var", queue="auto")
    acme = make_org(platform, "acme")
    with serving(platform) as port:
        yield Served(platform, port, acme)


# ---------------------------------------------------------------------------------------------- clients


@asynccontextmanager
async def connect(url: str, token: str, *, mode: str = "auto", **options: Any) -> AsyncIterator[mcp.Client]:
    """The MCP SDK's own client over Streamable HTTP, sending the token as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60)) as http,
        mcp.Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        yield client


def text(result: CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


def receipt_of(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


def envelope() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def modern_request(name: str, arguments: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of one stateless 2026-07-28 tools/call: a single POST that would run the tool."""
    headers = {
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": envelope()},
    }
    return headers, body


def raw_call(
    url: str, token: str | None, name: str, arguments: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    base, body = modern_request(name, arguments)
    if token is not None:
        base["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=body, headers=base | (headers or {}), timeout=60)


def rpc(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response in a JSON or an SSE answer (notifications before it are skipped)."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        messages = [json.loads(d) for d in data if d]
        return next(m for m in messages if "id" in m and ("result" in m or "error" in m))
    return response.json()


def tool_result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text)
    message = rpc(response)
    assert "result" in message, message
    return message["result"]


def legacy_session(url: str, token: str) -> dict[str, str]:
    """A 2025-11-25 session opened by hand: the headers that continue it."""
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT, "Content-Type": "application/json"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "1"}},
    }
    response = httpx.post(url, json=initialize, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    headers |= {"Mcp-Session-Id": response.headers["mcp-session-id"], "MCP-Protocol-Version": LEGACY}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(url, json=initialized, headers=headers, timeout=30).status_code == 202
    return headers


def legacy_call(url: str, headers: dict[str, str], name: str, arguments: dict[str, Any]) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    return httpx.post(url, json=body, headers=headers, timeout=60)


def token_row(platform: Platform, token: str) -> ApiToken:
    with platform.db.reading() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()
    return row


def post_status(platform: Platform, post_id: uuid.UUID) -> str:
    with platform.db.reading("acme") as session:
        post = session.get(ForumPost, post_id)
        assert post is not None
        return post.status


# ---------------------------------------------------------------------------------------------- tenancy


def test_each_organization_sees_only_its_own_data(served: Served) -> None:
    platform, url = served.platform, served.url
    make_org(platform, "globex")
    acme_token, globex_token = served.token(), served.token(org="globex")

    async def scenario() -> None:
        async with connect(url, acme_token, mode="legacy") as acme, connect(url, globex_token) as globex:
            mine = receipt_of(
                await acme.call_tool("forum_create_category", {"slug": "acme-only", "name": "A", "wait_seconds": WAIT})
            )
            theirs = receipt_of(
                await globex.call_tool(
                    "forum_create_category", {"slug": "globex-only", "name": "G", "wait_seconds": WAIT}
                )
            )
            assert (mine["status"], theirs["status"]) == ("succeeded", "succeeded")
            their_category = theirs["result"]["category_id"]
            thread = receipt_of(
                await globex.call_tool(
                    "forum_create_thread",
                    {
                        "category_id": their_category,
                        "title": "Secret plans",
                        "content": "Globex only",
                        "wait_seconds": WAIT,
                    },
                )
            )
            their_thread = thread["result"]["thread_id"]

            for client, own in ((acme, "acme-only"), (globex, "globex-only")):
                listing = receipt_of(await client.call_tool("forum_list_categories", {}))
                assert [c["slug"] for c in listing["items"]] == [own]

            for name, arguments in (
                ("directive_get", {"directive_id": theirs["directive_id"]}),
                ("forum_get_thread", {"thread_id": their_thread}),
                ("forum_list_threads", {"category_id": their_category}),
                ("audit_timeline", {"subject_type": "forum.thread", "subject_id": their_thread}),
            ):
                result = await acme.call_tool(name, arguments)
                assert result.is_error, (name, text(result))
                assert "not_found: " in text(result), text(result)
                assert "Secret plans" not in text(result)
            search = receipt_of(await acme.call_tool("forum_search", {"query": "secret plans"}))
            assert search["hits"] == []
            assert receipt_of(await globex.call_tool("forum_search", {"query": "secret plans"}))["hits"]

            own = await acme.read_resource(f"fleetprompt://directives/{mine['directive_id']}")
            assert json.loads(own.contents[0].text)["id"] == mine["directive_id"]  # type: ignore[union-attr]
            with pytest.raises(MCPError, match="not_found"):
                await acme.read_resource(f"fleetprompt://directives/{theirs['directive_id']}")
            with pytest.raises(MCPError, match="not_found"):
                await acme.read_resource(f"fleetprompt://audit/forum.thread/{their_thread}")

    anyio.run(scenario)
    assert len(served.directives("acme")) == 1 and len(served.directives("globex")) == 2

    # A session belongs to the user who opened it: another user's token cannot continue it.
    acme_session = legacy_session(url, acme_token)
    assert tool_result(legacy_call(url, acme_session, "forum_list_categories", {}))["isError"] is False
    hijack = legacy_call(url, acme_session | {"Authorization": f"Bearer {globex_token}"}, "forum_list_categories", {})
    assert hijack.status_code == 404, hijack.text
    # A person in both organizations may continue their session with their other token: the token presented
    # decides the organization (refusing is fine too); the session never carries acme's data over.
    add_user(platform.db, "admin@acme.test", "globex", "member")
    second_token = create_token(platform.db, "globex", "admin@acme.test")
    continued = legacy_call(
        url, acme_session | {"Authorization": f"Bearer {second_token}"}, "forum_list_categories", {}
    )
    if continued.status_code == 200:
        slugs = [c["slug"] for c in tool_result(continued)["structuredContent"]["items"]]
        assert slugs == ["globex-only"]
    else:
        assert 400 <= continued.status_code < 500


# ---------------------------------------------------------------------------------------------- tokens


def test_bearer_tokens_are_required_checked_and_tracked(served: Served) -> None:
    platform, url = served.platform, served.url
    filing = ("forum_create_category", {"slug": "never", "name": "Never", "wait_seconds": 5})

    anonymous = raw_call(url, None, *filing)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")

    unknown = "fp_" + secrets.token_urlsafe(32)
    for authorization in (
        "Bearer not-a-token",
        "Bearer fp_short",
        f"Bearer {'fp_' + 'x' * 300}",
        f"Basic {base64.b64encode(b'admin@acme.test:password-123').decode()}",
        f"Bearer {unknown}",
        unknown,
    ):
        refused = raw_call(url, None, *filing, headers={"Authorization": authorization})
        assert refused.status_code == 401, authorization
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")

    expired = served.token(expires_at=utcnow() - timedelta(seconds=1))
    assert raw_call(url, expired, *filing).status_code == 401

    disabled = served.token("member")
    assert tool_result(raw_call(url, disabled, "forum_list_categories", {}))["isError"] is False
    set_membership(platform.db, served.acme.ref.id, served.acme.users["member"], status="disabled")
    assert raw_call(url, disabled, *filing).status_code == 401

    # A valid token works and records when it was used (at most once a minute).
    token = served.token()
    assert token_row(platform, token).last_used_at is None
    before = utcnow()
    assert tool_result(raw_call(url, token, "forum_list_categories", {}))["isError"] is False
    used = token_row(platform, token).last_used_at
    assert used is not None and before <= used <= utcnow()
    assert tool_result(raw_call(url, token, "forum_list_categories", {}))["isError"] is False
    assert token_row(platform, token).last_used_at == used

    # Revoked in the middle of a session: the very next request is refused.
    session = legacy_session(url, token)
    assert tool_result(legacy_call(url, session, "forum_list_categories", {}))["isError"] is False
    revoke_token(platform.db, token_row(platform, token).id)
    revoked = legacy_call(url, session, *filing)
    assert revoked.status_code == 401
    assert revoked.headers["WWW-Authenticate"].startswith("Bearer")
    assert raw_call(url, token, *filing).status_code == 401

    assert served.directives() == []


# ---------------------------------------------------------------------------------------------- roles


def test_a_member_token_cannot_use_admin_tools(served: Served) -> None:
    platform, url = served.platform, served.url
    admin = served.acme.ctx("admin")
    category = new_category(platform, admin)
    thread, post = new_thread(platform, admin, category)
    before = served.directives()
    asked: list[str] = []

    async def confirm(_context: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async def scenario() -> dict[str, Any]:
        async with connect(url, served.token("member"), elicitation_callback=confirm) as client:
            denied = await client.call_tool(
                "forum_create_category", {"slug": "nope", "name": "Nope", "wait_seconds": 5}
            )
            assert denied.is_error
            assert "forbidden" in text(denied) and "admin role" in text(denied) and "member" in text(denied)
            high_impact = await client.call_tool("forum_delete_post", {"post_id": str(post), "wait_seconds": 5})
            assert high_impact.is_error
            assert "forbidden" in text(high_impact) and "admin role" in text(high_impact)
            assert served.directives() == before
            # The same token does what members may.
            return receipt_of(
                await client.call_tool("forum_reply", {"thread_id": str(thread), "content": "Hi", "wait_seconds": WAIT})
            )

    answered = anyio.run(scenario)
    assert asked == []  # refused before anyone was asked to confirm
    assert answered["status"] == "succeeded"
    assert set(served.directives()) == {*before, uuid.UUID(answered["directive_id"])}
    assert post_status(platform, post) == "published"


# ---------------------------------------------------------------------------------------------- transport checks


def test_a_foreign_host_or_origin_is_refused_even_with_a_valid_token(served: Served) -> None:
    url, token = served.url, served.token()
    filing = ("forum_create_category", {"slug": "rebound", "name": "Rebound", "wait_seconds": WAIT})

    for host in ("evil.example", f"evil.example:{served.port}", f"127.0.0.1.evil.example:{served.port}"):
        refused = raw_call(url, token, *filing, headers={"Host": host})
        assert refused.status_code == 421, (host, refused.status_code, refused.text)
    for origin in ("http://evil.example", f"http://127.0.0.1.evil.example:{served.port}", "null"):
        refused = raw_call(url, token, *filing, headers={"Origin": origin})
        assert refused.status_code == 403, (origin, refused.status_code, refused.text)
    assert served.directives() == []

    # The same request from the server's own origin is carried out.
    accepted = raw_call(url, token, *filing, headers={"Origin": f"http://127.0.0.1:{served.port}"})
    assert tool_result(accepted)["structuredContent"]["status"] == "succeeded"
    assert len(served.directives()) == 1


def test_configured_allowed_hosts_replace_the_local_defaults(database_url: str, tmp_path: Path) -> None:
    platform = build_platform(database_url, tmp_path / "var", queue="auto", allowed_hosts=["fleet.example.com"])
    make_org(platform, "acme")
    token = create_token(platform.db, "acme", "admin@acme.test")
    with serving(platform) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        public = {"Host": "fleet.example.com"}
        assert tool_result(raw_call(url, token, "forum_list_categories", {}, public))["isError"] is False
        proxied = public | {"Origin": "https://fleet.example.com"}
        assert tool_result(raw_call(url, token, "forum_list_categories", {}, proxied))["isError"] is False
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "fleet.example.com.evil.example"):
            assert raw_call(url, token, "forum_list_categories", {}, {"Host": host}).status_code == 421, host
        foreign = public | {"Origin": "http://evil.example"}
        assert raw_call(url, token, "forum_list_categories", {}, foreign).status_code == 403
        filing = {"slug": "blocked", "name": "Blocked", "wait_seconds": 5}
        assert raw_call(url, token, "forum_create_category", filing, {"Host": f"127.0.0.1:{port}"}).status_code == 421
        rows, _ = platform.ledger.list("acme", limit=500)
        assert rows == []


def test_oversize_and_malformed_requests_are_refused_and_the_server_keeps_serving(served: Served) -> None:
    url, token = served.url, served.token()
    headers, body = modern_request(
        "forum_create_category", {"slug": "big", "name": "Big", "description": "x" * ONE_MIB}
    )
    headers["Authorization"] = f"Bearer {token}"
    payload = json.dumps(body).encode()
    assert ONE_MIB < len(payload) < ONE_MIB + 1024

    declared = httpx.post(url, content=payload, headers=headers, timeout=60)
    assert declared.status_code == 413
    chunks = (payload[i : i + 64 * 1024] for i in range(0, len(payload), 64 * 1024))
    streamed = httpx.post(url, content=chunks, headers=headers, timeout=60)  # chunked: no Content-Length
    assert streamed.status_code == 413

    truncated = httpx.post(url, content=b'{"jsonrpc": "2.0", "id": 1, "method": ', headers=headers, timeout=30)
    assert truncated.status_code == 400
    assert truncated.json()["error"]["code"] == -32700  # parse error
    for junk in (b"[1, 2, 3]", b'"hello"', b'{"jsonrpc": "2.0", "id": 1}'):
        refused = httpx.post(url, content=junk, headers=headers, timeout=30)
        assert 400 <= refused.status_code < 500, (junk, refused.status_code, refused.text)
        assert "error" in refused.json()
    assert served.directives() == []

    # Still serving: a normal call through the raw protocol and through the SDK's client.
    after = raw_call(url, token, "forum_create_category", {"slug": "after", "name": "After", "wait_seconds": WAIT})
    assert tool_result(after)["structuredContent"]["status"] == "succeeded"

    async def scenario() -> None:
        async with connect(url, token) as client:
            unknown = await client.call_tool("forum_no_such_tool", {})
            assert unknown.is_error and "forum_no_such_tool" in text(unknown)
            for arguments, named in (
                ({"tenant": "globex"}, "tenant"),
                ({"slug": "Not a slug!", "name": "Bad"}, "slug"),
                ({"slug": "nul", "name": "a\x00b"}, "NUL"),
                ({"slug": "late", "name": "Late", "wait_seconds": 31}, "wait_seconds"),
                ({"name": "No slug"}, "slug"),
            ):
                tool = "forum_list_categories" if "tenant" in arguments else "forum_create_category"
                result = await client.call_tool(tool, arguments)
                assert result.is_error, arguments
                assert named in text(result), text(result)
            listing = receipt_of(await client.call_tool("forum_list_categories", {}))
            assert [c["slug"] for c in listing["items"]] == ["after"]

    anyio.run(scenario)
    assert len(served.directives()) == 1


# ---------------------------------------------------------------------------------------------- directives


def test_directive_tools_wait_for_the_runner_and_report_progress_in_both_protocol_eras(served: Served) -> None:
    platform, url, token = served.platform, served.url, served.token()

    async def scenario(mode: str, version: str) -> None:
        updates: list[tuple[float, str | None]] = []

        async def progress(value: float, _total: float | None, message: str | None) -> None:
            updates.append((value, message))

        async with connect(url, token, mode=mode) as client:
            assert client.protocol_version == version
            result = await client.call_tool(
                "forum_create_category",
                {"slug": f"eng-{mode}", "name": "Engineering", "wait_seconds": WAIT},
                progress_callback=progress,
            )
        receipt = receipt_of(result)
        assert (receipt["status"], receipt["finished"], receipt["error"]) == ("succeeded", True, None)
        assert receipt["type"] == "forum.category.create"
        assert receipt["result"]["slug"] == f"eng-{mode}"
        assert receipt["directive_id"] in text(result)
        directive = platform.ledger.get("acme", receipt["directive_id"])
        assert (directive.status, directive.requested_by_type, directive.requested_via) == (
            "succeeded",
            "agent",
            "mcp-http",
        )
        with platform.db.reading("acme") as session:
            category = session.get(ForumCategory, uuid.UUID(receipt["result"]["category_id"]))
            assert category is not None and category.slug == f"eng-{mode}"
        assert updates, f"no progress notifications in {mode} mode"
        assert updates[-1][1] == "forum.category.create: succeeded"
        values = [value for value, _ in updates]
        assert values == sorted(set(values))

    anyio.run(scenario, "legacy", LEGACY)
    anyio.run(scenario, "auto", MODERN)
    assert len(served.directives()) == 2


def test_high_impact_tools_ask_the_person_over_http_in_both_protocol_eras(served: Served) -> None:
    platform, url, token = served.platform, served.url, served.token()
    admin = served.acme.ctx("admin")
    thread, _ = new_thread(platform, admin, new_category(platform, admin))
    posts = {
        mode: (reply(platform, admin, thread, f"{mode} one"), reply(platform, admin, thread, f"{mode} two"))
        for mode in ("legacy", "auto")
    }
    admin_id = str(served.acme.users["admin"])

    async def scenario(mode: str) -> None:
        confirmed, unasked = posts[mode]
        answers: list[ElicitResult] = [
            ElicitResult(action="decline"),
            ElicitResult(action="cancel"),
            ElicitResult(action="accept", content={"confirm": False}),
            ElicitResult(action="accept", content={"confirm": True}),
        ]
        asked: list[str] = []

        async def person(_context: Any, params: ElicitRequestParams) -> ElicitResult:
            asked.append(params.message)
            return answers[len(asked) - 1]

        arguments = {"post_id": str(confirmed), "wait_seconds": WAIT}
        async with connect(url, token, mode=mode, elicitation_callback=person) as client:
            before = served.directives()
            for _ in range(3):  # declined, canceled, not confirmed
                refused = await client.call_tool("forum_delete_post", arguments)
                assert refused.is_error and "declined" in text(refused), text(refused)
                assert served.directives() == before
                assert post_status(platform, confirmed) == "published"
            receipt = receipt_of(await client.call_tool("forum_delete_post", arguments))
        assert len(asked) == 4
        assert all("Delete a post" in message and str(confirmed) in message for message in asked)
        assert (receipt["status"], receipt["result"]["status"]) == ("succeeded", "deleted")
        assert post_status(platform, confirmed) == "deleted"
        directive = platform.ledger.get("acme", receipt["directive_id"])
        assert (directive.requested_by_type, directive.decided_by) == ("agent", admin_id)

        # A client that cannot ask its person: the directive waits for an approval given elsewhere.
        async with connect(url, token, mode=mode) as client:
            waiting = receipt_of(await client.call_tool("forum_delete_post", {"post_id": str(unasked)}))
        assert waiting["status"] == "awaiting_approval"
        assert waiting["approval"]["web_url"].endswith(f"/audit/directives/{waiting['directive_id']}")
        assert post_status(platform, unasked) == "published"

    anyio.run(scenario, "legacy")
    anyio.run(scenario, "auto")


# ---------------------------------------------------------------------------------------------- arguments


def test_text_arguments_reach_the_tool_verbatim(served: Served) -> None:
    """A description is text even when it looks like JSON: what the agent sent is what gets filed and stored."""
    url, token = served.url, served.token()
    descriptions = {"literal-null": "null", "json-list": '["beta", "internal"]', "json-object": '{"owner": "ops"}'}

    async def scenario() -> tuple[dict[str, str], dict[str, str | None]]:
        refused: dict[str, str] = {}
        async with connect(url, token) as client:
            for slug, description in descriptions.items():
                arguments = {"slug": slug, "name": slug, "description": description, "wait_seconds": WAIT}
                result = await client.call_tool("forum_create_category", arguments)
                if result.is_error:
                    refused[slug] = text(result)
                else:
                    assert receipt_of(result)["status"] == "succeeded"
            listing = receipt_of(await client.call_tool("forum_list_categories", {}))
        return refused, {c["slug"]: c["description"] for c in listing["items"]}

    refused, stored = anyio.run(scenario)
    assert refused == {}
    assert stored == descriptions


# ---------------------------------------------------------------------------------------------- pydantic-ai


def test_a_pydantic_ai_agent_uses_fleetprompt_over_http(served: Served) -> None:
    """Another agent using FleetPrompt programmatically: MCPToolset with a bearer token, a model that calls a tool
    and then answers from the tool's result."""
    platform, url, token = served.platform, served.url, served.token()
    turns: list[list[str]] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turns.append(sorted(tool.name for tool in info.function_tools))
        returned = [part for part in messages[-1].parts if isinstance(part, ToolReturnPart)]
        if not returned:
            arguments = {"slug": "agent-notes", "name": "Agent notes", "wait_seconds": WAIT}
            return ModelResponse(parts=[ToolCallPart("forum_create_category", arguments)])
        receipt = returned[0].content
        assert isinstance(receipt, dict), receipt
        return ModelResponse(parts=[TextPart(f"Category {receipt['result']['category_id']} is {receipt['status']}")])

    agent = Agent(FunctionModel(model), toolsets=[MCPToolset(url, headers={"Authorization": f"Bearer {token}"})])
    run = agent.run_sync("Make a forum category for agent notes.")

    with platform.db.reading("acme") as session:
        categories = session.exec(select(ForumCategory)).all()
    assert [c.slug for c in categories] == ["agent-notes"]
    assert run.output == f"Category {categories[0].id} is succeeded"
    assert len(turns) == 2
    assert {"forum_create_category", "forum_list_categories", "directive_get"} <= set(turns[0])
    [directive_id] = served.directives()
    directive = platform.ledger.get("acme", directive_id)
    assert (directive.requested_by_type, directive.requested_via) == ("agent", "mcp-http")
