"""Helpers for tool tests: call a tool as a given member, and build a small forum through the tools only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from argon2 import PasswordHasher

from fleetprompt.accounts import passwords
from fleetprompt.accounts.context import RequestContext
from fleetprompt.ledger import SignalFilter
from fleetprompt.platform import Platform
from fleetprompt.tools import DirectiveReceipt, call_tool

TENANT = "acme"
# Real Argon2id, with the cheapest parameters: these tests create three users per test and never test passwords.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def fast_password_hashing(monkeypatch: Any) -> None:
    monkeypatch.setattr(passwords, "_hasher", FAST_HASHER)


def call(platform: Platform, ctx: RequestContext, tool: str, /, **arguments: Any) -> Any:
    return call_tool(platform.ledger, ctx, tool, arguments)


def done(platform: Platform, ctx: RequestContext, tool: str, /, **arguments: Any) -> DirectiveReceipt:
    """File through the tool, wait for the outcome, and insist that it succeeded."""
    receipt = call(platform, ctx, tool, wait_seconds=5, **arguments)
    assert isinstance(receipt, DirectiveReceipt)
    assert (receipt.status, receipt.error) == ("succeeded", None), receipt.summary
    return receipt


def new_category(platform: Platform, ctx: RequestContext, slug: str = "general") -> uuid.UUID:
    receipt = done(platform, ctx, "forum_create_category", slug=slug, name=slug.title())
    return uuid.UUID(receipt.result["category_id"])


def new_thread(
    platform: Platform, ctx: RequestContext, category_id: uuid.UUID, title: str = "Hello", content: str = "First post"
) -> tuple[uuid.UUID, uuid.UUID]:
    """(thread id, first post id)"""
    receipt = done(platform, ctx, "forum_create_thread", category_id=str(category_id), title=title, content=content)
    return uuid.UUID(receipt.result["thread_id"]), uuid.UUID(receipt.result["post_id"])


def reply(platform: Platform, ctx: RequestContext, thread_id: uuid.UUID, content: str) -> uuid.UUID:
    receipt = done(platform, ctx, "forum_reply", thread_id=str(thread_id), content=content)
    return uuid.UUID(receipt.result["post_id"])


def directive_ids(platform: Platform, tenant: str = TENANT) -> list[uuid.UUID]:
    rows, cursor = platform.ledger.list(tenant, limit=500)
    assert cursor is None
    return [d.id for d in rows]


def signal_ids(platform: Platform, tenant: str = TENANT, **filters: Any) -> list[uuid.UUID]:
    rows, cursor = platform.ledger.signals(tenant, SignalFilter(**filters), limit=500)
    assert cursor is None
    return [s.id for s in rows]


def signal_names(platform: Platform, tenant: str = TENANT, **filters: Any) -> list[str]:
    rows, _ = platform.ledger.signals(tenant, SignalFilter(**filters), limit=500)
    return [s.name for s in rows]


@contextmanager
def queued(platform: Platform) -> Iterator[None]:
    """Filing only enqueues while inside: the test runs each directive itself, after changing the world."""
    huey = platform.runner.huey
    huey.immediate = False
    try:
        yield
    finally:
        huey.immediate = True


def run(platform: Platform, directive_id: uuid.UUID, tenant: str = TENANT) -> Any:
    platform.runner.run_directive(tenant, str(directive_id))
    return platform.ledger.get(tenant, directive_id)
