"""Ledger tools: read directives and audit timelines; cancel and rerun directives."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from fleetprompt.errors import NotFound
from fleetprompt.ledger import DirectiveFilter, TimelineEntry
from fleetprompt.models.ledger import Directive, DirectiveStatus
from fleetprompt.models.tenancy import Role
from fleetprompt.tools.context import ToolContext
from fleetprompt.tools.declare import ledger_action_tool, read_tool
from fleetprompt.tools.receipts import (
    MAX_WAIT_SECONDS,
    DirectiveOptions,
    DirectiveReceipt,
    SubjectRef,
    ToolInput,
    receipt,
    subject_of,
    wait_for_directive,
)

# A package's id is its slug: its history spans every install of it in this organization.
SubjectType = Literal["forum.category", "forum.thread", "forum.post", "package", "directive"]
REDACTED = "[not shown: only its requester and admins see the text of someone else's request]"
TEXT_FIELDS = ("content",)
PageSize = Field(default=50, ge=1, le=200, description="Page size (1-200).")
Cursor = Field(default=None, max_length=200, description="next_cursor of the previous page, unchanged.")


class DirectiveView(BaseModel):
    id: uuid.UUID
    type: str
    status: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    subject: SubjectRef | None
    idempotency_key: str
    attempt: int
    max_attempts: int
    run_number: int
    requested_by: str | None
    requested_by_type: str
    requested_via: str | None
    decided_by: str | None
    correlation_id: str | None
    causation_id: str | None
    created_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


def _visible_payload(ctx: ToolContext, requested_by: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """Post text can be hidden later by moderators: only admins and the requester see it in the audit trail."""
    if ctx.is_admin or requested_by == ctx.actor.id:
        return payload
    return {k: (REDACTED if k in TEXT_FIELDS else v) for k, v in payload.items()}


def directive_view(ctx: ToolContext, d: Directive) -> DirectiveView:
    return DirectiveView(
        id=d.id,
        type=d.name,
        status=d.status,
        payload=_visible_payload(ctx, d.requested_by, d.payload),
        result=d.result,
        error=d.last_error,
        subject=subject_of(d),
        idempotency_key=d.idempotency_key,
        attempt=d.attempt,
        max_attempts=d.max_attempts,
        run_number=d.run_number,
        requested_by=d.requested_by,
        requested_by_type=d.requested_by_type,
        requested_via=d.requested_via,
        decided_by=d.decided_by,
        correlation_id=d.correlation_id,
        causation_id=d.causation_id,
        created_at=d.created_at,
        scheduled_at=d.scheduled_at,
        started_at=d.started_at,
        completed_at=d.completed_at,
    )


# ---------------------------------------------------------------- reads


class DirectiveGetInput(ToolInput):
    directive_id: uuid.UUID
    wait_seconds: float = Field(
        default=0, ge=0, le=MAX_WAIT_SECONDS, description="Wait up to this many seconds (0-30) for it to finish."
    )


@read_tool(
    "directive_get",
    title="Get a directive",
    description="A directive's status, payload, result or error, attempts and who asked; optionally wait for it.",
    input=DirectiveGetInput,
    output=DirectiveView,
)
def directive_get(ctx: ToolContext, args: DirectiveGetInput) -> DirectiveView:
    directive = ctx.ledger.get(ctx.org.slug, args.directive_id)
    if args.wait_seconds > 0:
        directive = wait_for_directive(ctx, directive, args.wait_seconds)
    return directive_view(ctx, directive)


class DirectiveListInput(ToolInput):
    status: DirectiveStatus | None = None
    type: str | None = Field(default=None, max_length=255, description="Directive type, e.g. forum.thread.lock.")
    subject_type: SubjectType | None = None
    subject_id: str | None = Field(default=None, max_length=255)
    cursor: str | None = Cursor
    limit: int = PageSize


class DirectivePage(BaseModel):
    items: list[DirectiveView]
    next_cursor: str | None


@read_tool(
    "directive_list",
    title="List directives",
    description="Directives of this organization, newest first, filtered by status, type or subject.",
    input=DirectiveListInput,
    output=DirectivePage,
)
def directive_list(ctx: ToolContext, args: DirectiveListInput) -> DirectivePage:
    filters = DirectiveFilter(
        status=args.status.value if args.status else None,
        name=args.type,
        subject_type=args.subject_type,
        subject_id=args.subject_id,
    )
    rows, next_cursor = ctx.ledger.list(ctx.org.slug, filters, args.cursor, args.limit)
    return DirectivePage(items=[directive_view(ctx, d) for d in rows], next_cursor=next_cursor)


class AuditInput(ToolInput):
    subject_type: SubjectType
    subject_id: str = Field(min_length=1, max_length=255, description="The subject's id (a package's slug).")
    cursor: str | None = Cursor
    limit: int = Field(default=100, ge=1, le=500, description="Page size (1-500).")


class AuditEntry(BaseModel):
    kind: Literal["signal", "directive"]
    id: uuid.UUID
    at: datetime
    name: str
    status: str | None
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    actor_type: str | None
    actor_id: str | None
    correlation_id: str | None
    causation_id: str | None


class AuditPage(BaseModel):
    subject: SubjectRef
    entries: list[AuditEntry]
    next_cursor: str | None


def _audit_entry(ctx: ToolContext, entry: TimelineEntry) -> AuditEntry:
    payload = entry.payload if entry.kind == "signal" else _visible_payload(ctx, entry.actor_id, entry.payload)
    return AuditEntry(**{**entry.model_dump(), "payload": payload})


@read_tool(
    "audit_timeline",
    title="Audit timeline",
    description=(
        "The complete history of one subject (thread, post, category, package, installation or directive): "
        "its signals and directives merged in time order, each with actor, correlation and causation ids."
    ),
    input=AuditInput,
    output=AuditPage,
)
def audit_timeline(ctx: ToolContext, args: AuditInput) -> AuditPage:
    entries, next_cursor = ctx.ledger.timeline(
        ctx.org.slug, args.subject_type, args.subject_id, args.cursor, args.limit
    )
    if not entries and args.cursor is None:
        raise NotFound(f"no {args.subject_type} {args.subject_id!r} has any history in this organization")
    return AuditPage(
        subject=SubjectRef(type=args.subject_type, id=args.subject_id),
        entries=[_audit_entry(ctx, e) for e in entries],
        next_cursor=next_cursor,
    )


# ---------------------------------------------------------------- lifecycle (act on the ledger, not the domain)


class DirectiveActionInput(DirectiveOptions):
    directive_id: uuid.UUID


class DirectiveCancelInput(DirectiveActionInput):
    reason: str | None = Field(default=None, max_length=500)


@ledger_action_tool(
    "directive_cancel",
    title="Cancel a directive",
    description="Cancel a directive that has not started running. Its requester or an admin may cancel it.",
    input=DirectiveCancelInput,
    role=Role.member,
)
def directive_cancel(ctx: ToolContext, args: DirectiveCancelInput) -> DirectiveReceipt:
    current = ctx.ledger.get(ctx.org.slug, args.directive_id)
    if current.status == DirectiveStatus.canceled and current.decided_by == ctx.actor.id:
        return receipt(ctx, current, False, f"cancel {current.name} {current.id}")  # asking twice is not an error
    canceled = ctx.ledger.cancel(ctx.request, args.directive_id, args.reason)
    return receipt(ctx, canceled, True, f"cancel {canceled.name} {canceled.id}")


@ledger_action_tool(
    "directive_rerun",
    title="Rerun a directive",
    description=(
        "Run a finished directive again (same id and key); admins only. The idempotency_key makes the rerun "
        "request itself safe to repeat; wait_seconds waits for the new outcome. Rerunning a high-impact directive "
        "(a delete, a purge) from an assistant waits for a person's approval again."
    ),
    input=DirectiveActionInput,
    role=Role.admin,
)
def directive_rerun(ctx: ToolContext, args: DirectiveActionInput) -> DirectiveReceipt:
    filed = ctx.ledger.rerun(ctx.request, args.directive_id, args.idempotency_key)
    directive = filed.directive
    if args.wait_seconds > 0:
        directive = wait_for_directive(ctx, directive, args.wait_seconds)
    return receipt(ctx, directive, filed.created, f"rerun {directive.name} {directive.id} (run {directive.run_number})")
