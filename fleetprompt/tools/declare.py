"""Decorators that put a function into the registry as a read tool or a directive tool."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from fleetprompt.ledger.registry import directive_types
from fleetprompt.models.tenancy import Role
from fleetprompt.tools.context import ToolContext
from fleetprompt.tools.receipts import DirectiveOptions, DirectiveReceipt, Filing, ToolInput, file_directive
from fleetprompt.tools.registry import Tool, ToolAnnotations, ToolKind, tools

I = TypeVar("I", bound=BaseModel)  # noqa: E741
O = TypeVar("O", bound=BaseModel)  # noqa: E741

DIRECTIVE_NOTE = (
    " This files a directive (a recorded request that the runner carries out) and returns its receipt;"
    " pass wait_seconds to wait for the outcome."
)
APPROVAL_NOTE = " When an assistant asks, a person must approve it before it runs."


def read_tool(
    name: str, *, title: str, description: str, input: type[I], output: type[O], role: Role = Role.member
) -> Callable[[Callable[[ToolContext, I], O]], Callable[[ToolContext, I], O]]:
    def register(fn: Callable[[ToolContext, I], O]) -> Callable[[ToolContext, I], O]:
        _check_input(name, input)
        tools.add(
            Tool(
                name=name,
                description=description,
                input_model=input,
                output_model=output,
                kind=ToolKind.read,
                required_role=role,
                annotations=ToolAnnotations(title=title, read_only=True, destructive=False, idempotent=True),
                run=fn,
            )
        )
        return fn

    return register


def directive_tool(
    name: str,
    *,
    title: str,
    description: str,
    input: type[I],
    directives: tuple[str, ...],
    role: Role,
    destructive: bool = False,
    approval_note: str = APPROVAL_NOTE,
) -> Callable[[Callable[[ToolContext, I], Filing]], Callable[[ToolContext, I], Filing]]:
    """`fn` makes the checks a caller can fix and says what to file; filing and the receipt are shared."""

    def register(fn: Callable[[ToolContext, I], Filing]) -> Callable[[ToolContext, I], Filing]:
        _check_input(name, input)
        if not issubclass(input, DirectiveOptions):
            raise TypeError(f"{name}: a directive tool's input must extend DirectiveOptions")
        types = [directive_types.get(d) for d in directives]
        high_impact = any(t.high_impact for t in types)

        def run(ctx: ToolContext, args: I) -> DirectiveReceipt:
            filing = fn(ctx, args)
            if filing.directive not in directives:
                raise RuntimeError(f"{name} filed {filing.directive}, which it does not declare")
            assert isinstance(args, DirectiveOptions)
            return file_directive(ctx, filing, args)

        tools.add(
            Tool(
                name=name,
                description=description + DIRECTIVE_NOTE + (approval_note if high_impact else ""),
                input_model=input,
                output_model=DirectiveReceipt,
                kind=ToolKind.directive,
                required_role=role,
                annotations=ToolAnnotations(title=title, read_only=False, destructive=destructive, idempotent=True),
                run=run,
                directive_types=directives,
                high_impact=high_impact,
                plan=fn,
            )
        )
        return fn

    return register


def ledger_action_tool(
    name: str, *, title: str, description: str, input: type[I], role: Role
) -> Callable[[Callable[[ToolContext, I], DirectiveReceipt]], Callable[[ToolContext, I], DirectiveReceipt]]:
    """A tool that moves an existing directive through its lifecycle (cancel, rerun): it files nothing new,
    acts on the ledger directly, and answers with the directive's receipt."""

    def register(fn: Callable[[ToolContext, I], DirectiveReceipt]) -> Callable[[ToolContext, I], DirectiveReceipt]:
        _check_input(name, input)
        tools.add(
            Tool(
                name=name,
                description=description,
                input_model=input,
                output_model=DirectiveReceipt,
                kind=ToolKind.directive,
                required_role=role,
                annotations=ToolAnnotations(
                    title=title,
                    read_only=False,
                    destructive=False,
                    idempotent="idempotency_key" in input.model_fields,  # a repeat with the key is the same act
                ),
                run=fn,
            )
        )
        return fn

    return register


FORBIDDEN_FIELDS = {"tenant", "organization", "org", "org_id", "author", "author_id", "user", "user_id", "actor"}


def _check_input(name: str, input: type[BaseModel]) -> None:
    """Identity comes from authentication only: refuse to register a tool that would take it as an argument."""
    if not issubclass(input, ToolInput):
        raise TypeError(f"{name}: tool inputs extend ToolInput (unknown fields refused)")
    leaked = FORBIDDEN_FIELDS & set(input.model_fields)
    if leaked:
        raise TypeError(f"{name}: identity fields {sorted(leaked)} must come from authentication, not arguments")
