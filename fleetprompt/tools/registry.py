"""The one registry of typed tools. MCP, chat and web are generated from it; a tool is written once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from fleetprompt.models.tenancy import Role

if TYPE_CHECKING:
    from fleetprompt.tools.context import ToolContext
    from fleetprompt.tools.receipts import Filing


class ToolKind(StrEnum):
    read = "read"  # answers at once, changes nothing
    directive = "directive"  # files a directive and returns its receipt


@dataclass(frozen=True)
class ToolAnnotations:
    """Honest hints for clients (MCP annotations): what calling the tool can do."""

    title: str
    read_only: bool
    destructive: bool
    idempotent: bool


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    kind: ToolKind
    required_role: Role
    annotations: ToolAnnotations
    run: Callable[[Any, Any], BaseModel]
    directive_types: tuple[str, ...] = ()
    high_impact: bool = False  # may file a directive that waits for a person's approval
    # Directive tools: what a call would file, without filing it (so a person can be asked to confirm first).
    plan: Callable[[ToolContext, Any], Filing] | None = None


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def all(self) -> list[Tool]:
        """Deterministic order (by name), so generated tool lists never reshuffle between processes."""
        return [self._tools[name] for name in sorted(self._tools)]

    def names(self) -> list[str]:
        return sorted(self._tools)


tools = ToolRegistry()
