"""Data flows one way: interfaces -> tools -> ledger -> runner -> domain + signals. Checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fleetprompt"
INTERFACES = {"cli", "web", "chat", "mcp_server", "platform", "demo"}
# layer -> the fleetprompt packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "config": {"db", "models", "accounts", "ledger", "tools", "runner", *INTERFACES},
    "errors": {"db", "models", "accounts", "ledger", "tools", "runner", *INTERFACES},
    "models": {"db", "accounts", "ledger", "tools", "runner", *INTERFACES},
    "db": {"accounts", "ledger", "tools", "runner", *INTERFACES},
    "accounts": {"ledger", "tools", "runner", *INTERFACES},
    "ledger": {"tools", "runner", *INTERFACES},
    "tools": {"runner", *INTERFACES},
    "runner": {"tools", *INTERFACES},
}
# Interfaces know tools (and the ledger's API), never tables.
INTERFACE_FORBIDDEN = {"models"}
# ...except the chat's own storage: its conversation store keeps the chat tables (and only those).
INTERFACE_OWN_TABLES = {"chat": {"fleetprompt.models.chat", "fleetprompt.models.base"}}


def fleetprompt_imports(path: Path, own_tables: set[str] | None = None) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if own_tables is not None and name in own_tables:
                continue
            parts = name.split(".")
            if parts[0] == "fleetprompt" and len(parts) > 1:
                found.add(parts[1])
    return found


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_the_layers(path: Path) -> None:
    layer = layer_of(path)
    imported = fleetprompt_imports(path, INTERFACE_OWN_TABLES.get(layer)) - {layer}
    forbidden = INTERFACE_FORBIDDEN if layer in INTERFACES else FORBIDDEN.get(layer, set())
    assert not imported & forbidden, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(imported & forbidden)}"


def test_the_rules_detect_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from fleetprompt.runner.tasks import Runner\nimport fleetprompt.tools.forum\n")
    assert fleetprompt_imports(bad) == {"runner", "tools"}
    own = tmp_path / "own.py"
    own.write_text("from fleetprompt.models.chat import ChatMessage\nfrom fleetprompt.models.forum import ForumPost\n")
    assert fleetprompt_imports(own, INTERFACE_OWN_TABLES["chat"]) == {"models"}  # forum tables stay forbidden
    assert len(MODULES) > 20 and all(layer_of(p) in FORBIDDEN or layer_of(p) in INTERFACES for p in MODULES)
