"""Typed tools: one registry feeds MCP, chat and web. Importing this package registers every tool."""

from fleetprompt.tools import forum, ledger, marketplace  # noqa: F401  (registration)
from fleetprompt.tools.call import call_tool, confirmation_needed, get_tool
from fleetprompt.tools.context import Progress, ToolContext
from fleetprompt.tools.receipts import DirectiveReceipt
from fleetprompt.tools.registry import Tool, ToolKind, tools

__all__ = [
    "DirectiveReceipt",
    "Progress",
    "Tool",
    "ToolContext",
    "ToolKind",
    "call_tool",
    "confirmation_needed",
    "get_tool",
    "tools",
]
