"""Registries: directive types declared once, handlers bound by the runner; fanout by name pattern."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from fleetprompt.ledger.registry import DirectiveRegistry, DirectiveType, FanoutRegistry
from fleetprompt.models.tenancy import Role


class Empty(BaseModel):
    pass


def test_types_are_declared_once_and_handlers_bound_later() -> None:
    registry = DirectiveRegistry()
    declared = registry.register(DirectiveType(name="forum.thread.lock", payload_model=Empty, required_role=Role.admin))
    assert registry.register(declared) is declared  # registering the same object again is harmless
    with pytest.raises(ValueError, match="already registered"):
        registry.register(DirectiveType(name="forum.thread.lock", payload_model=Empty))
    assert declared.handler is None

    @registry.handles("forum.thread.lock")
    def lock(run: object) -> dict[str, str]:
        return {"ok": "yes"}

    assert registry.get("forum.thread.lock").handler is lock
    with pytest.raises(KeyError, match="unknown directive type"):
        registry.handles("forum.thread.nope")
    assert registry.find("forum.thread.nope") is None
    assert registry.names() == ["forum.thread.lock"]


def test_fanout_matches_name_patterns() -> None:
    fanout = FanoutRegistry()

    @fanout.subscribe("forum.thread.*", name="threads")
    def threads(event: object) -> None: ...

    @fanout.subscribe("*.created", name="created")
    def created(event: object) -> None: ...

    assert [s.name for s in fanout.matching("forum.thread.created")] == ["threads", "created"]
    assert [s.name for s in fanout.matching("forum.post.created")] == ["created"]
    assert fanout.matching("package.installation.installed") == []
    fanout.unsubscribe("threads")
    assert fanout.get("threads") is None and [s.name for s in fanout.matching("forum.thread.locked")] == []
