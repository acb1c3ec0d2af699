"""Directive tools: the options every one accepts, the receipt every one returns, and waiting for an outcome."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session

from fleetprompt.accounts.context import RequestContext
from fleetprompt.errors import FleetPromptError
from fleetprompt.ledger.directives import Filed
from fleetprompt.models.ledger import Directive, DirectiveStatus
from fleetprompt.tools.context import Progress, ToolContext

MAX_WAIT_SECONDS = 30.0


class ToolInput(BaseModel):
    """Tool arguments: unknown fields are refused (no tenant, organization, author or user ever comes from here)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """NUL cannot be stored in PostgreSQL text or JSON: refuse it here, for every string at any depth."""
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters (\\x00)")
        return data


class NoInput(ToolInput):
    """For tools that take no arguments (still refusing any that are given)."""


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


class DirectiveOptions(ToolInput):
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Repeat a request safely: the same key with the same arguments returns the same directive.",
    )
    wait_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Wait up to this many seconds (0-30) for the directive to finish and include its result.",
    )


@dataclass(frozen=True)
class Filing:
    """What a directive tool files: the type, the payload, a one-line description, and the checks of the
    organization's current state that must hold for a new directive (run inside the filing transaction)."""

    directive: str
    payload: BaseModel
    summary: str
    check: Callable[[Session], None] | None = None


class SubjectRef(BaseModel):
    type: str
    id: str


class ApprovalHint(BaseModel):
    """Where a person approves a directive that waits for them (an agent never can)."""

    web_url: str
    cli_command: str


class DirectiveReceipt(BaseModel):
    directive_id: uuid.UUID
    type: str
    status: str
    subject: SubjectRef | None
    idempotency_key: str
    created: bool = Field(description="False when an earlier identical request was found instead.")
    summary: str
    finished: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    approval: ApprovalHint | None = Field(
        default=None, description="Set while the directive waits for a person's approval: where to give it."
    )


def subject_of(directive: Directive) -> SubjectRef | None:
    if directive.subject_type is None or directive.subject_id is None:
        return None
    return SubjectRef(type=directive.subject_type, id=directive.subject_id)


def _outcome(directive: Directive) -> str:
    status = directive.status
    if status == DirectiveStatus.succeeded:
        return "done"
    if status == DirectiveStatus.failed:
        return f"failed: {directive.last_error}"
    if status == DirectiveStatus.canceled:
        return "canceled"
    if status == DirectiveStatus.awaiting_approval:
        return "waiting for a person to approve it (web UI or `fleetprompt directives approve`)"
    if status == DirectiveStatus.running:
        return "running"
    return "queued"


def approval_hint(ctx: ToolContext, directive: Directive) -> ApprovalHint:
    """The web page and the CLI command a person with the right role uses to approve this directive."""
    return ApprovalHint(
        web_url=f"{ctx.ledger.settings.public_url}/audit/directives/{directive.id}",
        cli_command=f"fleetprompt directives approve {directive.id} --org {ctx.org.slug}",
    )


def receipt(ctx: ToolContext, directive: Directive, created: bool, summary: str) -> DirectiveReceipt:
    finished = DirectiveStatus(directive.status).is_terminal
    prefix = "" if created else "already filed: "
    waiting = directive.status == DirectiveStatus.awaiting_approval
    return DirectiveReceipt(
        directive_id=directive.id,
        type=directive.name,
        status=directive.status,
        subject=subject_of(directive),
        idempotency_key=directive.idempotency_key,
        created=created,
        summary=f"{prefix}{summary} - {_outcome(directive)}",
        finished=finished,
        result=directive.result if finished else None,
        error=directive.last_error if directive.status != DirectiveStatus.succeeded else None,
        approval=approval_hint(ctx, directive) if waiting else None,
    )


def wait_for_directive(ctx: ToolContext, directive: Directive, seconds: float) -> Directive:
    """Poll until the directive finishes, needs a person, or the time is up; report each state change."""
    deadline = time.monotonic() + min(seconds, MAX_WAIT_SECONDS)
    delay, step, seen = 0.01, 0, None
    while True:
        if directive.status != seen:
            seen, step = directive.status, step + 1
            ctx.report(
                Progress(directive_id=str(directive.id), status=seen, step=step, message=f"{directive.name}: {seen}")
            )
        if DirectiveStatus(directive.status).is_terminal or directive.status == DirectiveStatus.awaiting_approval:
            return directive
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return directive
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.2)
        directive = ctx.ledger.get(ctx.org.slug, directive.id)


def file_directive(ctx: ToolContext, filing: Filing, options: DirectiveOptions) -> DirectiveReceipt:
    filed: Filed = ctx.ledger.file(
        ctx.request,
        filing.directive,
        filing.payload,
        idempotency_key=options.idempotency_key,
        precheck=filing.check,
        role=ctx.role,
    )
    directive = filed.directive
    if ctx.confirmed_by is not None and directive.status == DirectiveStatus.awaiting_approval:
        directive = approve_confirmed(ctx, directive)
    if options.wait_seconds > 0:
        directive = wait_for_directive(ctx, directive, options.wait_seconds)
    return receipt(ctx, directive, filed.created, filing.summary)


def approve_confirmed(ctx: ToolContext, directive: Directive) -> Directive:
    """The person confirmed this call before it was filed: record their approval (their own, not the agent's)."""
    if ctx.confirmed_by is None:
        return directive
    person = RequestContext(
        org=ctx.org,
        actor=ctx.confirmed_by,
        correlation_id=ctx.request.correlation_id,
        causation_id=ctx.request.causation_id,
    )
    try:
        return ctx.ledger.approve(person, directive.id)
    except FleetPromptError:  # decided meanwhile, or the person lost the right: it is filed, so report it as it is
        return ctx.ledger.get(ctx.org.slug, directive.id)
