"""Confirmations of high-impact MCP calls (protocol 2026-07-28, rounds driven by hand): a confirmed round cannot be
replayed for a later filing, tampered or misbound request state files nothing, a confirmation in one organization is
never good in another, any process sharing the secret key continues a call (and no other), and an internal failure
reaches the caller as a reference only while the log keeps the exception under that reference."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import mcp.types as mt
import pytest
from conftest import build_platform, make_org
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from support.forum import directive_ids, signal_names
from support.mcp import run
from test_mcp_http import connect as http_connect
from test_mcp_http import serving

from fleetprompt.accounts.tokens import create_token
from fleetprompt.accounts.users import add_user
from fleetprompt.demo import demo_catalog
from fleetprompt.mcp_server import build_mcp_server
from fleetprompt.platform import Platform
from fleetprompt.runner.catalog import publish_package

TENANT = "acme"
OTHER = "globex"
WAIT = 5
UNINSTALL = "marketplace_uninstall_package"
DELETE = "forum_delete_post"
PACKAGE = "community-starter"
SECRET = "a-shared-secret-key-of-more-than-32-characters"
OTHER_SECRET = "another-secret-key-of-more-than-32-characters"


# ---------------------------------------------------------------- helpers


def token_for(platform: Platform, role: str = "admin", slug: str = TENANT, email: str | None = None) -> str:
    return create_token(platform.db, slug, email or f"{role}@{slug}.test")


def server_for(platform: Platform, role: str = "admin", slug: str = TENANT) -> MCPServer:
    return build_mcp_server(platform, token=token_for(platform, role, slug))


class Confirmer:
    """Declares the elicitation capability; answers yes and remembers what it was asked (when the SDK drives)."""

    def __init__(self) -> None:
        self.asked: list[mt.ElicitRequestParams] = []

    async def __call__(self, context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
        self.asked.append(params)
        return mt.ElicitResult(action="accept", content={"confirm": True})


def connect(server: MCPServer, confirmer: Confirmer | None = None) -> Client:
    """In-process client on protocol 2026-07-28 that can be asked questions."""
    return Client(server, mode="auto", elicitation_callback=confirmer or Confirmer())


def ok(result: mt.CallToolResult) -> dict[str, Any]:
    text = result.content[0].text if result.content else ""
    assert not result.is_error, text
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def failure(result: mt.CallToolResult) -> str:
    assert result.is_error, result.structured_content
    [content] = result.content
    assert isinstance(content, mt.TextContent) and content.text
    return content.text


def succeeded(receipt: dict[str, Any]) -> dict[str, Any]:
    assert (receipt["status"], receipt["finished"], receipt["error"]) == ("succeeded", True, None), receipt["summary"]
    assert isinstance(receipt["result"], dict)
    return receipt["result"]


def publish_catalog(platform: Platform) -> None:
    for spec in demo_catalog():
        publish_package(platform.db, spec)


async def forum_setup(c: Client) -> tuple[str, str, str]:
    """(thread id, post A, post B), made through the tools."""
    category = succeeded(
        ok(await c.call_tool("forum_create_category", {"slug": "general", "name": "General", "wait_seconds": WAIT}))
    )
    thread = succeeded(
        ok(
            await c.call_tool(
                "forum_create_thread",
                {"category_id": category["category_id"], "title": "Hello", "content": "A", "wait_seconds": WAIT},
            )
        )
    )
    reply = succeeded(
        ok(await c.call_tool("forum_reply", {"thread_id": thread["thread_id"], "content": "B", "wait_seconds": WAIT}))
    )
    return thread["thread_id"], thread["post_id"], reply["post_id"]


async def post_statuses(c: Client, thread_id: str) -> dict[str, str]:
    posts = ok(await c.call_tool("forum_get_thread", {"thread_id": thread_id}))["posts"]
    return {p["id"]: p["status"] for p in posts}


async def installed(c: Client) -> list[str]:
    return [i["package_slug"] for i in ok(await c.call_tool("marketplace_list_installations", {}))["items"]]


async def ask(c: Client, name: str, arguments: dict[str, Any], **extra: Any) -> Any:
    """One round by hand: a CallToolResult, or the InputRequiredResult the server answered with."""
    return await c.session.call_tool(name, arguments, allow_input_required=True, **extra)


def question(result: Any) -> str:
    """The one question of an InputRequiredResult."""
    assert isinstance(result, mt.InputRequiredResult), result
    assert result.request_state
    [request] = result.input_requests.values()
    assert isinstance(request, mt.ElicitRequest), request
    return request.params.message


def yes(result: mt.InputRequiredResult) -> dict[str, mt.ElicitResult]:
    """The person's answer to every question of a round: confirmed."""
    return {key: mt.ElicitResult(action="accept", content={"confirm": True}) for key in result.input_requests}


async def refused_or_asked_again(c: Client, name: str, arguments: dict[str, Any], **extra: Any) -> str:
    """A round that must not go through: an error (protocol or tool), or the question again. Returns what it got."""
    try:
        result = await ask(c, name, arguments, **extra)
    except MCPError as exc:
        return f"error: {exc.message}"
    if isinstance(result, mt.InputRequiredResult):
        return f"asked: {question(result)}"
    assert isinstance(result, mt.CallToolResult)
    assert result.is_error, f"the round went through: {result.structured_content}"
    return f"error: {failure(result)}"


# ---------------------------------------------------------------- 1. replay after the filing


def test_a_confirmed_round_replayed_after_its_filing_asks_again_and_files_nothing(platform: Platform) -> None:
    org = make_org(platform, TENANT)
    publish_catalog(platform)
    server = server_for(platform, "admin")
    person = str(org.users["admin"])
    arguments = {"slug": PACKAGE, "purge": True, "wait_seconds": WAIT}
    install = {"slug": PACKAGE, "wait_seconds": WAIT}

    async def main() -> None:
        async with connect(server) as c:
            succeeded(ok(await c.call_tool("marketplace_install_package", install)))

            first = await ask(c, UNINSTALL, arguments)
            asked = question(first)
            assert "'acme'" in asked and PACKAGE in asked and "(ref first)" in asked
            answers, state = yes(first), first.request_state
            done = await ask(c, UNINSTALL, arguments, input_responses=answers, request_state=state)
            assert isinstance(done, mt.CallToolResult)
            receipt = ok(done)
            assert succeeded(receipt)["purge"] is True
            purged_id = receipt["directive_id"]
            view = ok(await c.call_tool("directive_get", {"directive_id": purged_id}))
            assert (view["requested_by"], view["decided_by"]) == (person, person)
            assert await installed(c) == []

            # The same arguments are valid again: reinstall, then replay the captured confirmed round.
            succeeded(ok(await c.call_tool("marketplace_install_package", install)))
            filed, approvals = directive_ids(platform), signal_names(platform, name="directive.approved")
            replay = await refused_or_asked_again(c, UNINSTALL, arguments, input_responses=answers, request_state=state)
            assert directive_ids(platform) == filed, replay
            assert signal_names(platform, name="directive.approved") == approvals
            assert await installed(c) == [PACKAGE]
            if replay.startswith("asked: "):  # the new question names the filing that came since
                assert purged_id[-12:] in replay and "(ref first)" not in replay

            # The fresh question is answerable: exactly one new directive, approved by the person.
            again = await ask(c, UNINSTALL, arguments)
            assert f"(ref {purged_id[-12:]})" in question(again)
            fresh = await ask(c, UNINSTALL, arguments, input_responses=yes(again), request_state=again.request_state)
            assert isinstance(fresh, mt.CallToolResult)
            assert succeeded(ok(fresh))["purge"] is True
            assert len(directive_ids(platform)) == len(filed) + 1
            assert await installed(c) == []

    run(main)


# ---------------------------------------------------------------- 2. tampering


def test_answers_without_state_or_with_tampered_or_misbound_state_file_nothing(platform: Platform) -> None:
    make_org(platform, TENANT)
    server = server_for(platform, "admin")

    async def main() -> None:
        async with connect(server) as c:
            thread_id, post_a, post_b = await forum_setup(c)
            for_a = {"post_id": post_a, "wait_seconds": WAIT}
            for_b = {"post_id": post_b, "wait_seconds": WAIT}
            first = await ask(c, DELETE, for_a)
            assert post_a in question(first)
            answers, state = yes(first), first.request_state
            filed, approvals = directive_ids(platform), signal_names(platform, name="directive.approved")

            def nothing_filed(what: str) -> None:
                assert directive_ids(platform) == filed, what
                assert signal_names(platform, name="directive.approved") == approvals, what

            # Answers without the state: the question was never recorded as asked, so it is asked again.
            unstated = await ask(c, DELETE, for_a, input_responses=answers)
            assert post_a in question(unstated)
            nothing_filed("answers without request_state")

            # One character flipped: refused (or asked again), never accepted.
            middle = len(state) // 2
            flipped = state[:middle] + ("A" if state[middle] != "A" else "B") + state[middle + 1 :]
            outcome = await refused_or_asked_again(c, DELETE, for_a, input_responses=answers, request_state=flipped)
            nothing_filed(outcome)
            outcome = await refused_or_asked_again(c, DELETE, for_a, input_responses=answers, request_state=state + "x")
            nothing_filed(outcome)

            # Post A's confirmed round with post B's arguments: B is not deleted without its own question.
            outcome = await refused_or_asked_again(c, DELETE, for_b, input_responses=answers, request_state=state)
            nothing_filed(outcome)
            if outcome.startswith("asked: "):
                assert post_b in outcome
            assert await post_statuses(c, thread_id) == {post_a: "published", post_b: "published"}

            # The untouched round still goes through, once.
            done = await ask(c, DELETE, for_a, input_responses=answers, request_state=state)
            assert isinstance(done, mt.CallToolResult)
            assert succeeded(ok(done))["status"] == "deleted"
            assert len(directive_ids(platform)) == len(filed) + 1
            assert await post_statuses(c, thread_id) == {post_a: "deleted", post_b: "published"}

    run(main)


# ---------------------------------------------------------------- 3. across organizations


def _two_org_person(platform: Platform) -> tuple[str, str]:
    """admin@acme.test is also admin of globex: (token for acme, token for globex)."""
    make_org(platform, TENANT)
    make_org(platform, OTHER)
    add_user(platform.db, "admin@acme.test", OTHER, "admin")
    publish_catalog(platform)
    return token_for(platform, email="admin@acme.test"), token_for(platform, slug=OTHER, email="admin@acme.test")


def test_a_confirmation_in_one_organization_is_not_good_in_another_in_process(platform: Platform) -> None:
    token_a, token_b = _two_org_person(platform)
    server_a, server_b = build_mcp_server(platform, token=token_a), build_mcp_server(platform, token=token_b)
    arguments = {"slug": PACKAGE, "purge": True, "wait_seconds": WAIT}
    install = {"slug": PACKAGE, "wait_seconds": WAIT}

    async def main() -> None:
        async with connect(server_a) as a, connect(server_b) as b:
            succeeded(ok(await a.call_tool("marketplace_install_package", install)))
            succeeded(ok(await b.call_tool("marketplace_install_package", install)))
            first = await ask(a, UNINSTALL, arguments)
            assert "'acme'" in question(first)
            answers, state = yes(first), first.request_state
            done = await ask(a, UNINSTALL, arguments, input_responses=answers, request_state=state)
            assert isinstance(done, mt.CallToolResult) and succeeded(ok(done))["purge"] is True

            theirs = directive_ids(platform, OTHER)
            replay = await refused_or_asked_again(b, UNINSTALL, arguments, input_responses=answers, request_state=state)
            assert directive_ids(platform, OTHER) == theirs, replay
            assert await installed(b) == [PACKAGE]
            if replay.startswith("asked: "):
                assert "'globex'" in replay

    run(main)


@pytest.mark.slow  # uvicorn in a thread, like tests/test_mcp_http.py
def test_a_confirmation_in_one_organization_is_not_good_in_another_over_http(database_url: str, tmp_path: Path) -> None:
    platform = build_platform(database_url, tmp_path / "var", queue="auto")
    token_a, token_b = _two_org_person(platform)
    arguments = {"slug": PACKAGE, "purge": True, "wait_seconds": 20}
    install = {"slug": PACKAGE, "wait_seconds": 20}

    async def main(url: str) -> None:
        async with (
            http_connect(url, token_a, elicitation_callback=Confirmer()) as a,
            http_connect(url, token_b, elicitation_callback=Confirmer()) as b,
        ):
            assert a.protocol_version == b.protocol_version == "2026-07-28"
            succeeded(ok(await a.call_tool("marketplace_install_package", install)))
            succeeded(ok(await b.call_tool("marketplace_install_package", install)))
            first = await ask(a, UNINSTALL, arguments)
            assert "'acme'" in question(first)
            answers, state = yes(first), first.request_state
            done = await ask(a, UNINSTALL, arguments, input_responses=answers, request_state=state)
            assert isinstance(done, mt.CallToolResult) and succeeded(ok(done))["purge"] is True

            theirs = directive_ids(platform, OTHER)
            replay = await refused_or_asked_again(b, UNINSTALL, arguments, input_responses=answers, request_state=state)
            assert directive_ids(platform, OTHER) == theirs, replay
            assert await installed(b) == [PACKAGE]

            # Globex's own question, answered, goes through there.
            own = await ask(b, UNINSTALL, arguments)
            assert "'globex'" in question(own)
            done = await ask(b, UNINSTALL, arguments, input_responses=yes(own), request_state=own.request_state)
            assert isinstance(done, mt.CallToolResult) and succeeded(ok(done))["purge"] is True
            assert len(directive_ids(platform, OTHER)) == len(theirs) + 1

    with serving(platform) as port:
        run(lambda: main(f"http://127.0.0.1:{port}/mcp"))


# ---------------------------------------------------------------- 4. any process with the key continues


def test_a_process_with_the_same_secret_continues_the_call_and_one_without_it_cannot(
    database_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    one = build_platform(database_url, data_dir, secret_key=SECRET)
    two = build_platform(database_url, data_dir, secret_key=SECRET)
    stranger = build_platform(database_url, data_dir, secret_key=OTHER_SECRET)
    try:
        org = make_org(one, TENANT)
        person = str(org.users["admin"])
        server_a, server_b, server_c = (server_for(p) for p in (one, two, stranger))

        async def main() -> None:
            async with connect(server_a) as a, connect(server_b) as b, connect(server_c) as c:
                thread_id, post_a, post_b = await forum_setup(a)
                filed = directive_ids(one)

                # A different key: the state does not open, nothing is filed.
                first = await ask(a, DELETE, {"post_id": post_b, "wait_seconds": WAIT})
                outcome = await refused_or_asked_again(
                    c,
                    DELETE,
                    {"post_id": post_b, "wait_seconds": WAIT},
                    input_responses=yes(first),
                    request_state=first.request_state,
                )
                assert directive_ids(one) == filed, outcome

                # The same key: round 1 on one process, round 2 on another, filed and approved once.
                arguments = {"post_id": post_a, "wait_seconds": WAIT}
                first = await ask(a, DELETE, arguments)
                done = await ask(b, DELETE, arguments, input_responses=yes(first), request_state=first.request_state)
                assert isinstance(done, mt.CallToolResult)
                receipt = ok(done)
                assert succeeded(receipt)["status"] == "deleted"
                assert directive_ids(one) == [uuid.UUID(receipt["directive_id"]), *filed]
                view = one.ledger.get(TENANT, receipt["directive_id"])
                assert str(view.decided_by) == person
                assert signal_names(one, name="directive.approved") == ["directive.approved"]
                assert await post_statuses(c, thread_id) == {post_a: "deleted", post_b: "published"}

        run(main)
    finally:
        for p in (one, two, stranger):
            p.close()


# ---------------------------------------------------------------- 5. internal failures


def _break_threads_table(platform: Platform) -> None:
    """Rename acme's forum threads table, so reading threads fails inside the database."""
    engine = platform.db.tenant_engine(TENANT)
    table = "org_acme.forum_threads" if platform.db.is_postgres else "forum_threads"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {table} RENAME TO forum_threads_gone")
    platform.db.forget_tenant(TENANT)


def test_an_internal_failure_reaches_the_caller_as_a_reference_and_the_log_keeps_the_exception(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    make_org(platform, TENANT)
    server = server_for(platform, "admin")

    async def main() -> None:
        async with connect(server) as c:
            thread_id, _, _ = await forum_setup(c)
            [category] = ok(await c.call_tool("forum_list_categories", {}))["items"]
            _break_threads_table(platform)
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                for name, arguments in (
                    ("forum_get_thread", {"thread_id": thread_id}),
                    ("forum_list_threads", {"category_id": category["id"]}),
                    ("forum_reply", {"thread_id": thread_id, "content": "C", "wait_seconds": WAIT}),
                ):
                    caplog.clear()
                    result = await c.call_tool(name, arguments)
                    message = failure(result)
                    assert "internal_error: " in message and "failed on our side" in message, message
                    references = re.findall(r"\b[0-9a-f]{32}\b", message)
                    assert len(references) == 1, message
                    [reference] = references
                    for leak in ("forum_threads", "SELECT", "FROM ", "Traceback", "sqlite", "psycopg", "no such table"):
                        assert leak not in message, (leak, message)
                    logged = [r for r in caplog.records if reference in r.getMessage()]
                    assert logged, f"no log record carries {reference}: {[r.getMessage() for r in caplog.records]}"
                    assert any(r.exc_info and r.exc_info[0] is not None for r in logged), name
                    text = caplog.text
                    assert "forum_threads" in text  # the log keeps what the caller must not see

    run(main)
