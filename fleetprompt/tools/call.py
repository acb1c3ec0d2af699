"""The single entry point every interface uses: authenticate first, then call a tool by name."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetprompt.accounts.context import Actor, RequestContext
from fleetprompt.errors import FleetPromptError, Forbidden, InternalError, InvalidInput, NotFound, validation_message
from fleetprompt.ledger import Ledger
from fleetprompt.models.ledger import DirectiveStatus
from fleetprompt.tools.context import ProgressSink, ToolContext
from fleetprompt.tools.receipts import Filing
from fleetprompt.tools.registry import Tool, tools

log = logging.getLogger(__name__)


def get_tool(name: str) -> Tool:
    tool = tools.get(name)
    if tool is None:
        raise NotFound(f"unknown tool {name!r}")
    return tool


def call_tool(
    ledger: Ledger,
    request: RequestContext,
    name: str,
    arguments: dict[str, Any] | BaseModel | None,
    *,
    progress: ProgressSink | None = None,
    confirmed_by: Actor | None = None,
) -> BaseModel:
    """Role, then arguments, then the tool. Caller mistakes raise FleetPromptError with a message to show;
    anything else is logged with the correlation id and raised as InternalError without internals.

    `confirmed_by` is the person the calling agent speaks for, when they confirmed this call themselves
    (MCP elicitation): a high-impact directive it files is approved by them instead of waiting."""
    if confirmed_by is not None and (not confirmed_by.kind.is_person or confirmed_by.user_id != request.actor.user_id):
        raise ValueError("only the person the agent acts for can confirm its call")
    tool = get_tool(name)
    with _reported(name, request):
        ctx, args = _prepare(ledger, request, tool, arguments, progress, confirmed_by)
        return tool.run(ctx, args)


@dataclass(frozen=True)
class ConfirmationRequest:
    """What a person is asked before a high-impact filing. `reference` changes with every filing of this type by
    this caller, so a confirmation answers one filing only and can never be replayed for the next one."""

    summary: str
    reference: str


def confirmation_needed(
    ledger: Ledger, request: RequestContext, name: str, arguments: dict[str, Any] | BaseModel | None
) -> ConfirmationRequest | None:
    """What a person must confirm before this call: the high-impact directive it would file (or the one already
    filed under its key, still waiting) for an agent; None when nothing waits for approval. Files nothing; raises
    the errors the call itself would (role, arguments, the checks of the organization's current state)."""
    tool = get_tool(name)
    if not tool.high_impact or tool.plan is None:
        return None
    with _reported(name, request):
        ctx, args = _prepare(ledger, request, tool, arguments, None, None)
        key = getattr(args, "idempotency_key", None)
        existing = ledger.find_by_key(request.org.slug, key) if key is not None else None
        if existing is not None and not (
            existing.status == DirectiveStatus.awaiting_approval and existing.requested_by == request.actor.id
        ):
            return None  # a repeat nobody needs to confirm: the call answers with the directive under this key
        filing: Filing = tool.plan(ctx, args)
        directive_type = ledger.registry.get(filing.directive)
        if not ledger.needs_approval(request.actor, directive_type, filing.payload):
            return None
        if existing is None and filing.check is not None:
            with ctx.reading() as session:
                filing.check(session)
        latest = (
            existing.id
            if existing is not None
            else ledger.latest_filed(request.org.slug, filing.directive, request.actor)
        )
        return ConfirmationRequest(summary=filing.summary, reference=str(latest or "first"))


def _prepare(
    ledger: Ledger,
    request: RequestContext,
    tool: Tool,
    arguments: dict[str, Any] | BaseModel | None,
    progress: ProgressSink | None,
    confirmed_by: Actor | None,
) -> tuple[ToolContext, BaseModel]:
    role = request.role or ledger.role(request.org, request.actor)
    if not role.allows(tool.required_role):
        raise Forbidden(
            f"{tool.name} needs the {tool.required_role.value} role; you are {role.value} in {request.org.slug!r}"
        )
    try:
        raw = arguments.model_dump() if isinstance(arguments, BaseModel) else (arguments or {})
        args = tool.input_model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"invalid arguments for {tool.name}: {validation_message(exc)}") from None
    context = ToolContext(request=request, ledger=ledger, role=role, progress=progress, confirmed_by=confirmed_by)
    return context, args


@contextmanager
def _reported(name: str, request: RequestContext) -> Iterator[None]:
    try:
        yield
    except FleetPromptError:
        raise
    except Exception:
        log.exception("tool %s failed in %s [correlation %s]", name, request.org.slug, request.correlation_id)
        raise InternalError(
            f"{name} failed on our side; the error is logged with reference {request.correlation_id}"
        ) from None
