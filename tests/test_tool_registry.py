"""The tool registry: the catalog as specified, honest annotations, identity never an argument, one entry point."""

from __future__ import annotations

import logging

import pytest
from conftest import Org, make_org
from pydantic import BaseModel

from fleetprompt.errors import Forbidden, InternalError, InvalidInput, NotFound
from fleetprompt.models.tenancy import Role
from fleetprompt.platform import Platform
from fleetprompt.tools import DirectiveReceipt, Progress, ToolKind, call_tool, tools
from fleetprompt.tools.declare import directive_tool, read_tool
from fleetprompt.tools.receipts import ToolInput
from fleetprompt.tools.registry import Tool, ToolAnnotations

READ = {
    "forum_list_categories",
    "forum_list_threads",
    "forum_get_thread",
    "forum_search",
    "marketplace_search_packages",
    "marketplace_get_package",
    "marketplace_list_installations",
    "directive_get",
    "directive_list",
    "audit_timeline",
}
MEMBER_DIRECTIVES = {"forum_create_thread", "forum_reply", "forum_edit_post", "directive_cancel"}
ADMIN_DIRECTIVES = {
    "forum_create_category",
    "forum_archive_category",
    "forum_lock_thread",
    "forum_unlock_thread",
    "forum_hide_post",
    "forum_unhide_post",
    "forum_delete_post",
    "marketplace_install_package",
    "marketplace_upgrade_package",
    "marketplace_uninstall_package",
    "marketplace_set_package_enabled",
    "directive_rerun",
}
DESTRUCTIVE = {"forum_delete_post", "marketplace_uninstall_package", "marketplace_upgrade_package"}
IDENTITY = {"tenant", "organization", "org", "org_id", "author", "author_id", "user", "user_id", "actor"}


def test_the_catalog_is_exactly_the_specified_tools_in_a_stable_order() -> None:
    assert set(tools.names()) == READ | MEMBER_DIRECTIVES | ADMIN_DIRECTIVES
    assert [t.name for t in tools.all()] == sorted(READ | MEMBER_DIRECTIVES | ADMIN_DIRECTIVES)
    for tool in tools.all():
        expected_kind = ToolKind.read if tool.name in READ else ToolKind.directive
        expected_role = Role.admin if tool.name in ADMIN_DIRECTIVES else Role.member
        assert (tool.kind, tool.required_role) == (expected_kind, expected_role), tool.name
        assert tool.description and tool.annotations.title


def test_annotations_are_honest() -> None:
    for tool in tools.all():
        a = tool.annotations
        assert a.read_only == (tool.name in READ), tool.name
        assert a.destructive == (tool.name in DESTRUCTIVE), tool.name
        accepts_key = "idempotency_key" in tool.input_model.model_fields
        assert a.idempotent == (tool.name in READ or accepts_key), tool.name
    assert tools.get("forum_delete_post").high_impact and tools.get("marketplace_uninstall_package").high_impact
    assert not tools.get("forum_lock_thread").high_impact


def _property_names(schema: dict) -> set[str]:
    names: set[str] = set()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        names |= set(definition.get("properties", {}))
    return names


def test_no_tool_takes_identity_as_an_argument_and_unknown_fields_are_refused() -> None:
    for tool in tools.all():
        schema = tool.input_model.model_json_schema()
        assert not _property_names(schema) & IDENTITY, tool.name
        assert schema.get("additionalProperties") is False, tool.name
        tool.output_model.model_json_schema()  # every output has a schema (MCP outputSchema)


def test_directive_tools_return_receipts_and_accept_key_and_wait() -> None:
    for tool in tools.all():
        if tool.kind != ToolKind.directive:
            continue
        assert tool.output_model is DirectiveReceipt, tool.name
        fields = tool.input_model.model_fields
        assert {"idempotency_key", "wait_seconds"} <= set(fields), tool.name
        with pytest.raises(ValueError):
            tool.input_model.model_validate({"wait_seconds": 31})


def test_the_declarations_refuse_identity_fields_and_open_inputs() -> None:
    class Sneaky(ToolInput):
        author_id: str

    class Open(BaseModel):
        text: str

    class Out(BaseModel):
        ok: bool

    with pytest.raises(TypeError, match="authentication"):
        read_tool("sneaky", title="x", description="x", input=Sneaky, output=Out)(lambda ctx, args: Out(ok=True))
    with pytest.raises(TypeError, match="ToolInput"):
        read_tool("open", title="x", description="x", input=Open, output=Out)(lambda ctx, args: Out(ok=True))
    with pytest.raises(TypeError, match="DirectiveOptions"):
        directive_tool("plain", title="x", description="x", input=ToolInput, directives=(), role=Role.member)(
            lambda ctx, args: None
        )
    assert tools.get("sneaky") is None and tools.get("open") is None and tools.get("plain") is None


def test_call_tool_checks_membership_role_and_arguments_first(platform: Platform, org: Org) -> None:
    globex = make_org(platform, "globex")
    with pytest.raises(NotFound, match="unknown tool"):
        call_tool(platform.ledger, org.ctx(), "forum_drop_tables", {})
    outsider = org.ctx()
    outsider = type(outsider)(org=org.ref, actor=globex.ctx("owner").actor)
    with pytest.raises(Forbidden, match="not an active member"):
        call_tool(platform.ledger, outsider, "forum_list_categories", {})
    with pytest.raises(Forbidden, match="needs the admin role"):
        call_tool(platform.ledger, org.ctx("member"), "forum_create_category", {"slug": "x", "name": "X"})
    with pytest.raises(InvalidInput, match="organization"):
        call_tool(platform.ledger, org.ctx(), "forum_list_categories", {"organization": "globex"})
    assert platform.ledger.list("acme")[0] == []


def test_internal_errors_are_logged_with_the_correlation_id_and_hidden_from_the_caller(
    platform: Platform, org: Org, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Empty(ToolInput):
        pass

    def explode(ctx: object, args: object) -> BaseModel:
        raise RuntimeError("SELECT secret FROM somewhere")

    broken = Tool(
        "test_broken",
        "always fails",
        Empty,
        Empty,
        ToolKind.read,
        Role.member,
        ToolAnnotations("Broken", True, False, True),
        explode,
    )
    monkeypatch.setitem(tools._tools, "test_broken", broken)
    ctx = org.ctx(correlation_id="corr-123")
    with caplog.at_level(logging.ERROR), pytest.raises(InternalError) as caught:
        call_tool(platform.ledger, ctx, "test_broken", {})
    assert "corr-123" in caught.value.message and "SELECT" not in caught.value.message
    assert any("corr-123" in r.getMessage() and r.exc_info for r in caplog.records)


def test_waiting_reports_progress_and_returns_the_outcome(platform: Platform, org: Org) -> None:
    seen: list[Progress] = []
    receipt = call_tool(
        platform.ledger,
        org.ctx("admin"),
        "forum_create_category",
        {"slug": "news", "name": "News", "wait_seconds": 5},
        progress=seen.append,
    )
    assert isinstance(receipt, DirectiveReceipt)
    assert (receipt.status, receipt.finished, receipt.created) == ("succeeded", True, True)
    assert receipt.result and receipt.result["slug"] == "news"
    assert [p.status for p in seen][-1] == "succeeded" and seen[0].status == "requested"
    assert all(p.directive_id == str(receipt.directive_id) for p in seen)
    assert [p.step for p in seen] == list(range(1, len(seen) + 1))
