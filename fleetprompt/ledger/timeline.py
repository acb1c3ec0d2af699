"""The audit timeline of one subject: its signals and its directives merged in time order, fully paginated."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from fleetprompt.ledger.pagination import clamp_limit, decode_cursor, encode_cursor
from fleetprompt.models.ledger import Directive, Signal


class TimelineEntry(BaseModel):
    kind: Literal["signal", "directive"]
    id: uuid.UUID
    at: datetime
    name: str
    status: str | None = None
    payload: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    actor_type: str | None
    actor_id: str | None
    correlation_id: str | None
    causation_id: str | None


def _after(time_column: Any, id_column: Any, when: datetime | None, last: uuid.UUID | None) -> Any:
    if when is None:
        return True
    return or_(time_column > when, and_(time_column == when, id_column > last))


def subject_timeline(
    session: Session, subject_type: str, subject_id: str, cursor: str | None = None, limit: int = 100
) -> tuple[list[TimelineEntry], str | None]:
    """For subject_type 'directive' the directive itself is part of its own timeline."""
    limit = clamp_limit(limit)
    when: datetime | None = None
    last: uuid.UUID | None = None
    if cursor:
        when, last = decode_cursor(cursor)
    signals = session.exec(
        select(Signal)
        .where(
            Signal.subject_type == subject_type,
            Signal.subject_id == subject_id,
            _after(Signal.occurred_at, col(Signal.id), when, last),
        )
        .order_by(col(Signal.occurred_at), col(Signal.id))
        .limit(limit + 1)
    ).all()
    if subject_type == "directive":
        directive_filter = col(Directive.id) == uuid.UUID(subject_id) if _is_uuid(subject_id) else False
    else:
        about = and_(Directive.subject_type == subject_type, Directive.subject_id == subject_id)
        causes = _causing_directives(session, subject_type, subject_id)
        directive_filter = or_(about, col(Directive.id).in_(causes)) if causes else about
    directives = session.exec(
        select(Directive)
        .where(directive_filter, _after(Directive.created_at, col(Directive.id), when, last))
        .order_by(col(Directive.created_at), col(Directive.id))
        .limit(limit + 1)
    ).all()
    entries = [_from_signal(s) for s in signals] + [_from_directive(d) for d in directives]
    entries.sort(key=lambda e: (e.at, e.id))
    next_cursor = None
    if len(entries) > limit:
        entries = entries[:limit]
        next_cursor = encode_cursor(entries[-1].at, entries[-1].id)
    return entries, next_cursor


def _causing_directives(session: Session, subject_type: str, subject_id: str) -> list[uuid.UUID]:
    """Directives filed about something else that caused facts about this subject (the thread-create directive
    is about its category, but it caused `forum.thread.created`): they belong to this subject's history too."""
    causes = session.exec(
        select(Signal.causation_id)
        .where(Signal.subject_type == subject_type, Signal.subject_id == subject_id, Signal.source == "runner")
        .distinct()
    ).all()
    return [uuid.UUID(c) for c in causes if c and _is_uuid(c)]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _from_signal(signal: Signal) -> TimelineEntry:
    return TimelineEntry(
        kind="signal",
        id=signal.id,
        at=signal.occurred_at,
        name=signal.name,
        payload=signal.payload,
        actor_type=signal.actor_type,
        actor_id=signal.actor_id,
        correlation_id=signal.correlation_id,
        causation_id=signal.causation_id,
    )


def _from_directive(directive: Directive) -> TimelineEntry:
    return TimelineEntry(
        kind="directive",
        id=directive.id,
        at=directive.created_at,
        name=directive.name,
        status=directive.status,
        payload=directive.payload,
        result=directive.result,
        error=directive.last_error,
        actor_type=directive.requested_by_type,
        actor_id=directive.requested_by,
        correlation_id=directive.correlation_id,
        causation_id=directive.causation_id,
    )
