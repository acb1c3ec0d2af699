"""Helpers for MCP tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run the test's coroutine; a failure inside the client's task groups is raised as itself."""
    try:
        anyio.run(main)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        raise leaf from None
