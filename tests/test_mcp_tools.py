"""The MCP server generated from the tool registry, through a real MCP client (in-process, both protocol modes):
tool listing and annotations, structured output against the advertised schemas for every tool, errors as tool
results, progress, elicitation for high-impact directives, resources, tenancy and token revocation (both backends)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import jsonschema
import mcp.types as mt
import pytest
from conftest import make_org
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from support.forum import directive_ids, signal_ids
from support.mcp import run

from fleetprompt.accounts.tokens import authenticate_token, create_token, revoke_token
from fleetprompt.demo import DEMO_OWNER, DEMO_SLUG, demo_catalog, seed_demo
from fleetprompt.ledger import SignalFilter
from fleetprompt.mcp_server import build_mcp_server
from fleetprompt.platform import Platform
from fleetprompt.runner.catalog import publish_package
from fleetprompt.tools import ToolKind, tools

TENANT = "acme"
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])
PROTOCOL = {"auto": "2026-07-28", "legacy": "2025-11-25"}
WAIT = 5
W = {"wait_seconds": WAIT}  # directive tools: wait for the outcome (the test queue runs each directive at once)
HIGH_IMPACT = {"forum_delete_post", "marketplace_uninstall_package"}


# ---------------------------------------------------------------- helpers


def token_for(platform: Platform, role: str = "admin", slug: str = TENANT) -> str:
    return create_token(platform.db, slug, f"{role}@{slug}.test")


def server_for(platform: Platform, role: str = "admin", slug: str = TENANT) -> MCPServer:
    return build_mcp_server(platform, token=token_for(platform, role, slug))


class Confirmer:
    """An elicitation callback that answers every question the same way and remembers what it was asked."""

    def __init__(self, action: str = "accept", confirm: bool = True) -> None:
        self.action = action
        self.confirm = confirm
        self.asked: list[mt.ElicitRequestParams] = []

    async def __call__(self, context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult:
        self.asked.append(params)
        if self.action == "accept":
            return mt.ElicitResult(action="accept", content={"confirm": self.confirm})
        return mt.ElicitResult(action=self.action)  # type: ignore[arg-type]


def connect(server: MCPServer, mode: str, confirmer: Confirmer | None = None) -> Client:
    if confirmer is None:
        return Client(server, mode=mode)  # declares no elicitation capability
    return Client(server, mode=mode, elicitation_callback=confirmer)


def ok(result: mt.CallToolResult) -> dict[str, Any]:
    text = result.content[0].text if result.content else ""
    assert not result.is_error, text
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def failure(result: mt.CallToolResult) -> str:
    """The error message of a tool error result."""
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    [content] = result.content
    assert isinstance(content, mt.TextContent) and content.text
    return content.text


def succeeded(receipt: dict[str, Any]) -> dict[str, Any]:
    assert (receipt["status"], receipt["finished"], receipt["error"]) == ("succeeded", True, None), receipt["summary"]
    assert isinstance(receipt["result"], dict)
    return receipt["result"]


def signal_names(platform: Platform, tenant: str = TENANT, **filters: Any) -> list[str]:
    rows, cursor = platform.ledger.signals(tenant, SignalFilter(**filters), limit=500)
    assert cursor is None
    return [s.name for s in rows]


def publish_catalog(platform: Platform) -> None:
    for spec in demo_catalog():
        publish_package(platform.db, spec)


async def forum_setup(c: Client, content: str = "First post") -> tuple[str, str, str]:
    """(category id, thread id, first post id), made through the tools."""
    category = succeeded(ok(await c.call_tool("forum_create_category", {"slug": "general", "name": "General"} | W)))
    thread = succeeded(
        ok(
            await c.call_tool(
                "forum_create_thread",
                {"category_id": category["category_id"], "title": "Hello", "content": content} | W,
            )
        )
    )
    return category["category_id"], thread["thread_id"], thread["post_id"]


# ---------------------------------------------------------------- 1. listing


@MODES
def test_every_registry_tool_is_listed_in_order_with_its_schemas_and_honest_annotations(
    platform: Platform, mode: str
) -> None:
    make_org(platform, TENANT)
    registry = {t.name: t for t in tools.all()}
    assert len(registry) == 26

    async def main() -> None:
        async with connect(server_for(platform, "member"), mode) as c:
            assert c.protocol_version == PROTOCOL[mode]
            listed = (await c.list_tools()).tools
        assert [t.name for t in listed] == [t.name for t in tools.all()] == tools.names()
        for tool in listed:
            entry = registry[tool.name]
            hints = entry.annotations
            assert tool.title == hints.title and tool.title
            assert tool.description == entry.description and tool.description
            assert tool.input_schema == entry.input_model.model_json_schema(by_alias=True), tool.name
            assert tool.input_schema["type"] == "object"
            assert tool.input_schema["additionalProperties"] is False, tool.name
            assert tool.output_schema is not None and tool.output_schema["type"] == "object", tool.name
            assert tool.output_schema == entry.output_model.model_json_schema(mode="serialization"), tool.name
            a = tool.annotations
            assert a is not None
            is_read = entry.kind == ToolKind.read
            assert a.title == hints.title
            assert a.read_only_hint is is_read, tool.name
            assert a.destructive_hint is hints.destructive, tool.name
            has_key = "idempotency_key" in tool.input_schema["properties"]
            assert a.idempotent_hint is (is_read or has_key), tool.name
            assert a.open_world_hint is False
            if is_read:
                assert a.destructive_hint is False and not has_key
            else:
                assert has_key and "wait_seconds" in tool.input_schema["properties"], tool.name
        by_name = {t.name: t.annotations for t in listed}
        assert by_name["forum_delete_post"].destructive_hint is True
        assert by_name["marketplace_uninstall_package"].destructive_hint is True
        destructive = {name for name, a in by_name.items() if a.destructive_hint}
        assert destructive == {name for name, t in registry.items() if t.annotations.destructive}
        assert destructive >= HIGH_IMPACT
        for name in ("forum_create_category", "forum_lock_thread", "forum_hide_post", "marketplace_install_package"):
            assert by_name[name].destructive_hint is False and by_name[name].read_only_hint is False
        reads = {name for name, t in registry.items() if t.kind == ToolKind.read}
        assert {name for name, a in by_name.items() if a.read_only_hint} == reads
        assert {name for name, t in registry.items() if t.high_impact} == HIGH_IMPACT

    run(main)


# ---------------------------------------------------------------- 2. structured output of every tool


@MODES
def test_structured_content_of_every_tool_validates_against_its_output_schema(platform: Platform, mode: str) -> None:
    info = seed_demo(platform.db, platform.ledger)
    assert info.starter is not None
    assert platform.ledger.get(DEMO_SLUG, info.starter.directive_id).status == "succeeded"
    owner = build_mcp_server(platform, token=create_token(platform.db, DEMO_SLUG, DEMO_OWNER))
    confirmer = Confirmer()
    covered: set[str] = set()

    async def main() -> None:
        async with connect(owner, mode, confirmer) as c, connect(owner, mode) as unasked:
            schemas = {t.name: t.output_schema for t in (await c.list_tools()).tools}

            async def call(tool: str, client: Client = c, /, **arguments: Any) -> dict[str, Any]:
                result = await client.call_tool(tool, arguments)
                data = ok(result)
                jsonschema.validate(data, schemas[tool])
                [content] = result.content
                assert isinstance(content, mt.TextContent) and content.text.strip()
                covered.add(tool)
                return data

            categories = await call("forum_list_categories")
            assert {x["slug"] for x in categories["items"]} == {"announcements", "general", "help"}
            [installed] = (await call("marketplace_list_installations"))["items"]
            assert (installed["package_slug"], installed["version"], installed["upgrade_available"]) == (
                "community-starter",
                "1.0.0",
                True,
            )
            found = await call("marketplace_search_packages", tier="pro")
            assert {p["slug"] for p in found["items"]} == {p.slug for p in demo_catalog()}
            detail = await call("marketplace_get_package", slug="community-starter")
            assert [v["version"] for v in detail["versions"]] == ["1.1.0", "1.0.0"]

            category_id = succeeded(await call("forum_create_category", slug="mcp", name="MCP", **W))["category_id"]
            started = succeeded(
                await call(
                    "forum_create_thread", category_id=category_id, title="Locking", content="About locking", **W
                )
            )
            thread_id, first = started["thread_id"], started["post_id"]
            answer = succeeded(await call("forum_reply", thread_id=thread_id, content="A reply", **W))["post_id"]
            edit = await call("forum_edit_post", post_id=answer, content="An edited reply", **W)
            assert succeeded(edit)["changed"] is True
            hits = (await call("forum_search", query="locked"))["hits"]
            assert ("thread", thread_id) in {(h["kind"], h["thread_id"]) for h in hits}
            threads = (await call("forum_list_threads", category_id=category_id))["items"]
            assert [t["id"] for t in threads] == [thread_id]
            lock = await call("forum_lock_thread", thread_id=thread_id, **W)
            assert succeeded(lock)["status"] == "locked"
            assert succeeded(await call("forum_unlock_thread", thread_id=thread_id, **W))["status"] == "open"
            rerun = await call("directive_rerun", directive_id=lock["directive_id"], **W)
            assert (rerun["directive_id"], succeeded(rerun)["status"]) == (lock["directive_id"], "locked")
            assert succeeded(await call("forum_hide_post", post_id=answer, **W))["status"] == "hidden"
            assert succeeded(await call("forum_unhide_post", post_id=answer, **W))["status"] == "published"
            assert succeeded(await call("forum_delete_post", post_id=answer, **W))["status"] == "deleted"
            assert len(confirmer.asked) == 1
            waiting = await call("forum_delete_post", unasked, post_id=first, idempotency_key="to-cancel")
            assert waiting["status"] == "awaiting_approval" and waiting["approval"] is not None
            canceled = await call("directive_cancel", directive_id=waiting["directive_id"], reason="changed my mind")
            assert canceled["status"] == "canceled" and canceled["finished"] is True
            posts = (await call("forum_get_thread", thread_id=thread_id))["posts"]
            assert [(p["id"], p["status"]) for p in posts] == [(first, "published"), (answer, "deleted")]
            assert succeeded(await call("forum_archive_category", category_id=category_id, **W))["changed"] is True

            succeeded(await call("marketplace_install_package", slug="starter-agents", **W))
            succeeded(await call("marketplace_set_package_enabled", slug="starter-agents", enabled=False, **W))
            succeeded(await call("marketplace_upgrade_package", slug="community-starter", **W))
            succeeded(await call("marketplace_uninstall_package", slug="starter-agents", **W))
            assert len(confirmer.asked) == 1  # uninstalling without purge asks nobody
            [upgraded] = (await call("marketplace_list_installations"))["items"]
            assert (upgraded["package_slug"], upgraded["version"]) == ("community-starter", "1.1.0")

            view = await call("directive_get", directive_id=edit["directive_id"])
            assert (view["id"], view["type"], view["status"]) == (edit["directive_id"], "forum.post.edit", "succeeded")
            assert (view["requested_by_type"], view["requested_via"]) == ("agent", "mcp")
            page = await call("directive_list", limit=200)
            assert edit["directive_id"] in {d["id"] for d in page["items"]}
            timeline = await call("audit_timeline", subject_type="forum.thread", subject_id=thread_id)
            assert lock["directive_id"] in {e["id"] for e in timeline["entries"]}

    run(main)
    assert covered == set(tools.names())


# ---------------------------------------------------------------- 3. errors


@MODES
def test_mistakes_are_tool_errors_with_a_reason_and_file_nothing(platform: Platform, mode: str) -> None:
    make_org(platform, TENANT)
    admin, member = server_for(platform, "admin"), server_for(platform, "member")

    async def main() -> None:
        async with connect(admin, mode) as c, connect(member, mode) as m:
            category_id, thread_id, post_id = await forum_setup(c)
            succeeded(ok(await c.call_tool("forum_lock_thread", {"thread_id": thread_id} | W)))
            keyed = ok(
                await c.call_tool("forum_create_category", {"slug": "news", "name": "News", "idempotency_key": "k"})
            )
            before, facts = directive_ids(platform), signal_ids(platform)

            wrong_type = failure(await c.call_tool("forum_create_category", {"slug": 3, "name": "Three"}))
            assert "slug" in wrong_type and "valid string" in wrong_type
            unknown_field = failure(
                await c.call_tool("forum_create_category", {"slug": "x", "name": "X", "tenant": "other"})
            )
            assert "tenant" in unknown_field and "not permitted" in unknown_field
            missing = failure(await c.call_tool("forum_reply", {"thread_id": thread_id}))
            assert "content" in missing and "required" in missing.lower()
            bad_uuid = failure(await c.call_tool("forum_get_thread", {"thread_id": "not-a-uuid"}))
            assert "thread_id" in bad_uuid and "uuid" in bad_uuid.lower()
            nul = failure(await c.call_tool("forum_reply", {"thread_id": thread_id, "content": "a\x00b"}))
            assert "NUL" in nul
            too_long = failure(await c.call_tool("forum_lock_thread", {"thread_id": thread_id, "wait_seconds": 99}))
            assert "wait_seconds" in too_long
            unknown_tool = failure(await c.call_tool("forum_burn_everything", {}))
            assert "unknown tool" in unknown_tool.lower() and "forum_burn_everything" in unknown_tool
            unknown = str(uuid.uuid4())
            not_found = failure(await c.call_tool("forum_lock_thread", {"thread_id": unknown}))
            assert f"not_found: forum thread {unknown} not found" in not_found
            assert "not_found" in failure(await c.call_tool("directive_get", {"directive_id": unknown}))
            forbidden = failure(await m.call_tool("forum_create_category", {"slug": "mine", "name": "Mine"}))
            assert "forbidden: forum_create_category needs the admin role; you are member" in forbidden
            locked = failure(await m.call_tool("forum_reply", {"thread_id": thread_id, "content": "hello?"}))
            assert "invalid_state" in locked and "locked" in locked
            assert "locked" in failure(await c.call_tool("forum_reply", {"thread_id": thread_id, "content": "admin"}))
            reused = failure(
                await c.call_tool("forum_create_category", {"slug": "sports", "name": "Sports", "idempotency_key": "k"})
            )
            assert "idempotency_key_reused" in reused and keyed["directive_id"] in reused
            conflict = failure(await c.call_tool("forum_create_category", {"slug": "general", "name": "Again"}))
            assert "conflict" in conflict and "'general' already exists" in conflict
            assert directive_ids(platform) == before and signal_ids(platform) == facts

            # The same sessions keep working after every one of those errors.
            again = ok(
                await c.call_tool("forum_create_category", {"slug": "news", "name": "News", "idempotency_key": "k"})
            )
            assert (again["directive_id"], again["created"]) == (keyed["directive_id"], False)
            [thread] = ok(await m.call_tool("forum_list_threads", {"category_id": category_id}))["items"]
            assert (thread["id"], thread["status"], thread["post_count"]) == (thread_id, "locked", 1)
            assert ok(await m.call_tool("forum_get_thread", {"thread_id": thread_id}))["posts"][0]["id"] == post_id
            assert directive_ids(platform) == before

    run(main)


# ---------------------------------------------------------------- 4. progress


@MODES
def test_waiting_sends_progress_and_answers_with_the_finished_receipt(platform: Platform, mode: str) -> None:
    make_org(platform, TENANT)
    updates: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        updates.append((value, total, message))

    async def main() -> None:
        async with connect(server_for(platform), mode) as c:
            result = await c.call_tool(
                "forum_create_category",
                {"slug": "general", "name": "General", "wait_seconds": WAIT},
                progress_callback=progress,
            )
            receipt = ok(result)
            assert receipt["type"] == "forum.category.create" and receipt["created"] is True
            assert succeeded(receipt)["slug"] == "general"
            uuid.UUID(receipt["result"]["category_id"])
            assert f"directive {receipt['directive_id']}, succeeded" in result.content[0].text

            messages = [m for _, _, m in updates]
            assert messages[0] == "forum.category.create: requested"
            assert messages[-1] == "forum.category.create: succeeded"
            values = [v for v, _, _ in updates]
            assert values == sorted(values) and len(set(values)) == len(values) and values[0] > 0

            updates.clear()  # without waiting: the receipt at once, no progress
            quick = ok(
                await c.call_tool("forum_create_category", {"slug": "news", "name": "News"}, progress_callback=progress)
            )
            assert (quick["status"], quick["finished"], quick["result"]) == ("requested", False, None)
            assert updates == []

    run(main)


# ---------------------------------------------------------------- 5. elicitation


@MODES
def test_confirmed_delete_is_approved_by_the_person_and_runs(platform: Platform, mode: str) -> None:
    org = make_org(platform, TENANT)
    admin = server_for(platform, "admin")
    person = str(org.users["admin"])
    confirmer = Confirmer()

    async def main() -> None:
        async with connect(admin, mode, confirmer) as c:
            _, thread_id, post_id = await forum_setup(c)
            assert confirmer.asked == []  # nothing so far was high-impact
            # Calls that would fail anyway fail without asking the person anything.
            async with connect(server_for(platform, "member"), mode, confirmer) as m:
                assert "forbidden" in failure(await m.call_tool("forum_delete_post", {"post_id": post_id}))
            assert "not_found" in failure(await c.call_tool("forum_delete_post", {"post_id": str(uuid.uuid4())}))
            assert "post_id" in failure(await c.call_tool("forum_delete_post", {"post_id": "not-a-uuid"}))
            assert "tenant" in failure(await c.call_tool("forum_delete_post", {"post_id": post_id, "tenant": "x"}))
            assert confirmer.asked == [] and signal_names(platform, name="forum.post.deleted") == []

            updates: list[str | None] = []

            async def progress(value: float, total: float | None, message: str | None) -> None:
                updates.append(message)

            arguments = {"post_id": post_id, "idempotency_key": "delete-1"} | W
            receipt = ok(await c.call_tool("forum_delete_post", arguments, progress_callback=progress))
            assert updates == ["forum.post.delete: requested", "forum.post.delete: succeeded"]
            [asked] = confirmer.asked
            assert "Delete a post" in asked.message and post_id in asked.message
            assert asked.requested_schema["required"] == ["confirm"]
            assert succeeded(receipt) == {
                "post_id": post_id,
                "thread_id": thread_id,
                "status": "deleted",
                "changed": True,
            }
            assert receipt["approval"] is None and receipt["created"] is True
            directive_id = receipt["directive_id"]

            view = ok(await c.call_tool("directive_get", {"directive_id": directive_id}))
            assert (view["status"], view["requested_by_type"], view["requested_by"]) == ("succeeded", "agent", person)
            assert (view["decided_by"], view["requested_via"]) == (person, "mcp")
            history = ok(await c.call_tool("audit_timeline", {"subject_type": "directive", "subject_id": directive_id}))
            approved = [e for e in history["entries"] if e["name"] == "directive.approved"]
            assert [(e["actor_type"], e["actor_id"]) for e in approved] == [("user", person)]
            names = [e["name"] for e in history["entries"]]
            assert names.index("directive.approved") < names.index("directive.succeeded")
            [post] = ok(await c.call_tool("forum_get_thread", {"thread_id": thread_id}))["posts"]
            assert (post["id"], post["status"]) == (post_id, "deleted")

            # A repeat under the same key is the same directive: nobody is asked again.
            filed = directive_ids(platform)
            repeat = ok(await c.call_tool("forum_delete_post", arguments))
            assert (repeat["directive_id"], repeat["created"], repeat["status"]) == (directive_id, False, "succeeded")
            assert len(confirmer.asked) == 1 and directive_ids(platform) == filed

        assert signal_names(platform, name="directive.approved") == ["directive.approved"]
        assert signal_names(platform, subject_type="forum.post", subject_id=post_id) == [
            "forum.post.created",
            "forum.post.deleted",
        ]

    run(main)


@MODES
@pytest.mark.parametrize("answer", ["decline", "cancel", "unconfirmed"])
def test_a_delete_the_person_does_not_confirm_files_nothing(platform: Platform, mode: str, answer: str) -> None:
    make_org(platform, TENANT)
    admin = server_for(platform, "admin")
    confirmer = Confirmer()

    async def main() -> None:
        async with connect(admin, mode, confirmer) as c:
            _, thread_id, post_id = await forum_setup(c)
            filed, facts = directive_ids(platform), signal_ids(platform)
            if answer == "unconfirmed":
                confirmer.confirm = False
            else:
                confirmer.action = answer
            refused = failure(await c.call_tool("forum_delete_post", {"post_id": post_id} | W))
            assert "declined" in refused and "nothing was filed" in refused
            assert len(confirmer.asked) == 1
            assert directive_ids(platform) == filed and signal_ids(platform) == facts
            [post] = ok(await c.call_tool("forum_get_thread", {"thread_id": thread_id}))["posts"]
            assert post["status"] == "published"

            confirmer.action, confirmer.confirm = "accept", True  # the session still works, and asks again
            assert (
                succeeded(ok(await c.call_tool("forum_delete_post", {"post_id": post_id} | W)))["status"] == "deleted"
            )
            assert len(confirmer.asked) == 2

    run(main)


@MODES
def test_a_client_that_cannot_ask_gets_a_directive_awaiting_approval(platform: Platform, mode: str) -> None:
    make_org(platform, TENANT)
    admin = server_for(platform, "admin")

    async def main() -> None:
        async with connect(admin, mode) as c:
            _, thread_id, post_id = await forum_setup(c)
            filed = directive_ids(platform)
            arguments = {"post_id": post_id, "idempotency_key": "delete-later", "wait_seconds": 1}
            receipt = ok(await c.call_tool("forum_delete_post", arguments))
            directive_id = receipt["directive_id"]
            assert (receipt["status"], receipt["finished"], receipt["result"]) == ("awaiting_approval", False, None)
            assert receipt["created"] is True and "waiting for a person" in receipt["summary"]
            approval = receipt["approval"]
            assert approval["web_url"].endswith(f"/audit/directives/{directive_id}")
            assert approval["web_url"].startswith(platform.settings.public_url)
            assert approval["cli_command"] == f"fleetprompt directives approve {directive_id} --org {TENANT}"
            assert directive_ids(platform) == [uuid.UUID(directive_id), *filed]

            view = ok(await c.call_tool("directive_get", {"directive_id": directive_id}))
            assert (view["status"], view["decided_by"], view["started_at"]) == ("awaiting_approval", None, None)
            [post] = ok(await c.call_tool("forum_get_thread", {"thread_id": thread_id}))["posts"]
            assert post["status"] == "published"
            assert "directive.approved" not in signal_names(platform)
            assert signal_names(platform, name="forum.post.deleted") == []

        # Repeating the waiting request from a client that can ask: the person is asked about that very directive
        # (declining leaves it waiting); confirming approves it, so it runs. Nothing new is filed either way.
        decliner = Confirmer(action="decline")
        async with connect(admin, mode, decliner) as c:
            assert receipt["idempotency_key"] == "delete-later"
            refused = await c.call_tool("forum_delete_post", arguments)
            assert refused.is_error and "declined" in refused.content[0].text
            assert len(decliner.asked) == 1 and "'acme'" in decliner.asked[0].message
        assert platform.ledger.get(TENANT, uuid.UUID(directive_id)).status == "awaiting_approval"
        confirmer = Confirmer()
        async with connect(admin, mode, confirmer) as c:
            repeat = ok(await c.call_tool("forum_delete_post", arguments))
            assert (repeat["directive_id"], repeat["created"]) == (directive_id, False)
            assert (repeat["status"], repeat["approval"]) == ("succeeded", None)
            assert len(confirmer.asked) == 1
        assert len(directive_ids(platform)) == len(filed) + 1
        assert "directive.approved" in signal_names(platform)

    run(main)


@MODES
def test_uninstall_asks_only_when_it_purges(platform: Platform, mode: str) -> None:
    make_org(platform, TENANT)
    publish_catalog(platform)
    admin = server_for(platform, "admin")
    confirmer = Confirmer()

    async def main() -> None:
        async with connect(admin, mode, confirmer) as c, connect(admin, mode) as unasked:
            for slug in ("community-starter", "starter-agents", "customer-support"):
                succeeded(ok(await c.call_tool("marketplace_install_package", {"slug": slug} | W)))
            assert confirmer.asked == []

            kept = ok(
                await c.call_tool("marketplace_uninstall_package", {"slug": "starter-agents", "purge": False} | W)
            )
            outcome = succeeded(kept)
            assert (outcome["package"], outcome["purge"], outcome["kept_resources"]) == ("starter-agents", False, 3)
            assert confirmer.asked == []  # without purge nobody is asked

            confirmer.action = "decline"
            filed = directive_ids(platform)
            assert "declined" in failure(
                await c.call_tool("marketplace_uninstall_package", {"slug": "community-starter", "purge": True} | W)
            )
            assert len(confirmer.asked) == 1 and directive_ids(platform) == filed

            waiting = ok(
                await unasked.call_tool("marketplace_uninstall_package", {"slug": "customer-support", "purge": True})
            )
            assert waiting["status"] == "awaiting_approval" and waiting["finished"] is False
            assert waiting["directive_id"] in waiting["approval"]["cli_command"]

            confirmer.action = "accept"
            purged = ok(
                await c.call_tool("marketplace_uninstall_package", {"slug": "community-starter", "purge": True} | W)
            )
            [asked] = confirmer.asked[1:]
            assert "Uninstall a package" in asked.message and "community-starter" in asked.message
            outcome = succeeded(purged)
            assert outcome["purge"] is True and "forum_category:general" in outcome["removed"]
            view = ok(await c.call_tool("directive_get", {"directive_id": purged["directive_id"]}))
            assert (view["requested_by_type"], view["payload"]["purge"]) == ("agent", True)
            assert view["decided_by"] == view["requested_by"]

            installed = ok(await c.call_tool("marketplace_list_installations", {}))["items"]
            assert [i["package_slug"] for i in installed] == ["customer-support"]  # its purge still waits
            categories = ok(await c.call_tool("forum_list_categories", {}))["items"]
            assert categories == []  # the purge removed the starter's empty categories

    run(main)


# ---------------------------------------------------------------- 6. resources and tenancy


@MODES
def test_resources_read_directives_and_timelines_of_this_organization_only(platform: Platform, mode: str) -> None:
    make_org(platform, TENANT)
    make_org(platform, "globex")
    ours, theirs = server_for(platform, "admin"), server_for(platform, "owner", "globex")

    async def main() -> None:
        async with connect(ours, mode) as c:
            templates = {t.uri_template: t for t in (await c.list_resource_templates()).resource_templates}
            assert set(templates) == {
                "fleetprompt://directives/{directive_id}",
                "fleetprompt://audit/{subject_type}/{subject_id}",
            }
            assert {t.mime_type for t in templates.values()} == {"application/json"}

            _, thread_id, _ = await forum_setup(c)
            lock = ok(await c.call_tool("forum_lock_thread", {"thread_id": thread_id} | W))
            assert succeeded(lock)["status"] == "locked"
            directive_id = lock["directive_id"]

            read = await c.read_resource(f"fleetprompt://directives/{directive_id}")
            [content] = read.contents
            assert content.mime_type == "application/json"
            directive = json.loads(content.text)
            assert directive == ok(await c.call_tool("directive_get", {"directive_id": directive_id}))
            assert (directive["id"], directive["type"], directive["status"]) == (
                directive_id,
                "forum.thread.lock",
                "succeeded",
            )
            assert directive["subject"] == {"type": "forum.thread", "id": thread_id}

            read = await c.read_resource(f"fleetprompt://audit/forum.thread/{thread_id}")
            [content] = read.contents
            assert content.mime_type == "application/json"
            timeline = json.loads(content.text)
            arguments = {"subject_type": "forum.thread", "subject_id": thread_id}
            assert timeline == ok(await c.call_tool("audit_timeline", arguments))
            assert timeline["subject"] == {"type": "forum.thread", "id": thread_id}
            names = [e["name"] for e in timeline["entries"]]
            assert "forum.thread.lock" in names and "forum.thread.locked" in names
            assert directive_id in {e["id"] for e in timeline["entries"]}

            for uri in (f"fleetprompt://directives/{uuid.uuid4()}", f"fleetprompt://audit/forum.thread/{uuid.uuid4()}"):
                with pytest.raises(MCPError, match="not_found"):
                    await c.read_resource(uri)

        async with connect(theirs, mode) as other:
            with pytest.raises(MCPError, match=f"not_found: directive {directive_id} not found"):
                await other.read_resource(f"fleetprompt://directives/{directive_id}")
            with pytest.raises(MCPError, match="not_found"):
                await other.read_resource(f"fleetprompt://audit/forum.thread/{thread_id}")
            error = failure(await other.call_tool("directive_get", {"directive_id": directive_id}))
            assert f"not_found: directive {directive_id} not found" in error
            assert "not_found" in failure(await other.call_tool("audit_timeline", arguments))
            assert "not_found" in failure(await other.call_tool("forum_get_thread", {"thread_id": thread_id}))
            assert "not_found" in failure(await other.call_tool("directive_cancel", {"directive_id": directive_id}))
            assert "not_found" in failure(await other.call_tool("directive_rerun", {"directive_id": directive_id}))
            assert ok(await other.call_tool("directive_list", {}))["items"] == []
        assert directive_ids(platform, "globex") == []

    run(main)


# ---------------------------------------------------------------- 7. revoked tokens


@MODES
def test_a_revoked_token_stops_working_on_the_next_call(platform: Platform, mode: str) -> None:
    make_org(platform, TENANT)
    token = token_for(platform, "admin")
    server = build_mcp_server(platform, token=token)
    confirmer = Confirmer()

    async def main() -> None:
        async with connect(server, mode, confirmer) as c:
            _, thread_id, post_id = await forum_setup(c)
            filed, facts = directive_ids(platform), signal_ids(platform)
            revoke_token(platform.db, authenticate_token(platform.db, token).token_id)

            for name, arguments in (
                ("forum_list_categories", {}),
                ("forum_create_category", {"slug": "after", "name": "After"} | W),
                ("forum_lock_thread", {"thread_id": thread_id}),
                ("forum_delete_post", {"post_id": post_id} | W),
            ):
                error = failure(await c.call_tool(name, arguments))
                assert "invalid_token" in error and "revoked" in error, name
            assert confirmer.asked == []
            assert directive_ids(platform) == filed and signal_ids(platform) == facts

    run(main)


@MODES
def test_a_revoked_token_cannot_read_resources_and_is_told_why(platform: Platform, mode: str) -> None:
    make_org(platform, TENANT)
    token = token_for(platform, "admin")
    server = build_mcp_server(platform, token=token)

    async def main() -> None:
        async with connect(server, mode) as c:
            _, thread_id, _ = await forum_setup(c)
            lock = succeeded(ok(await c.call_tool("forum_lock_thread", {"thread_id": thread_id} | W)))
            assert lock["status"] == "locked"
            [directive] = ok(await c.call_tool("directive_list", {"type": "forum.thread.lock"}))["items"]
            uris = (f"fleetprompt://directives/{directive['id']}", f"fleetprompt://audit/forum.thread/{thread_id}")
            for uri in uris:
                assert (await c.read_resource(uri)).contents[0].text
            revoke_token(platform.db, authenticate_token(platform.db, token).token_id)
            for uri in uris:
                with pytest.raises(MCPError) as refused:
                    await c.read_resource(uri)
                # The reader must learn why (like a tool call does), not get an internal error without a reason.
                assert "invalid_token" in refused.value.message and "revoked" in refused.value.message, uri
                assert refused.value.code != mt.INTERNAL_ERROR, uri

    run(main)
