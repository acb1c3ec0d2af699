"""Signals: immutable, deduplicated facts. Emitting happens inside the caller's transaction."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from fleetprompt.db.engine import dialect_insert, dialect_name, on_commit
from fleetprompt.errors import Conflict, InvalidInput
from fleetprompt.ledger import statements
from fleetprompt.ledger.pagination import clamp_limit, decode_cursor, encode_cursor
from fleetprompt.ledger.registry import FanoutRegistry, FanoutSubscription, fanout_handlers
from fleetprompt.models.base import utcnow, uuid7
from fleetprompt.models.ledger import Signal, SignalDelivery

SIGNAL_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
SECRET_KEY_NAMES = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "private_key",
        "access_token",
        "refresh_token",
        "client_secret",
        "password_hash",
        "token_hash",
        "cookie",
        "session_key",
    }
)
SECRET_KEY_SUFFIXES = ("_password", "_secret", "_token", "_api_key")
SESSION_TENANT = "fleetprompt.tenant"
SESSION_DISPATCHER = "fleetprompt.dispatcher"


def _secret_paths(value: Any, path: str = "") -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            lowered = str(key).lower()
            here = f"{path}.{key}" if path else str(key)
            if lowered in SECRET_KEY_NAMES or lowered.endswith(SECRET_KEY_SUFFIXES):
                yield here
            yield from _secret_paths(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_paths(item, f"{path}[{index}]")


def ensure_no_secrets(value: dict[str, Any], what: str) -> None:
    """Signals and directives are read by operators and agents: refuse anything shaped like a credential."""
    found = list(_secret_paths(value))
    if found:
        raise InvalidInput(f"{what} must not carry secrets (found field {', '.join(found)})")


class SignalDraft(BaseModel):
    """What a caller states about a fact; the ledger fills in id and recording time."""

    name: str = Field(max_length=255)
    source: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=512)
    occurred_at: datetime | None = None
    actor_type: str | None = Field(default=None, max_length=64)
    actor_id: str | None = Field(default=None, max_length=255)
    subject_type: str | None = Field(default=None, max_length=64)
    subject_id: str | None = Field(default=None, max_length=255)
    correlation_id: str | None = Field(default=None, max_length=255)
    causation_id: str | None = Field(default=None, max_length=255)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dotted_name(cls, value: str) -> str:
        if not SIGNAL_NAME.fullmatch(value):
            raise ValueError("signal names are dotted lowercase words, e.g. forum.thread.locked")
        return value


@dataclass(frozen=True)
class EmitResult:
    """The recorded fact. A new one becomes a `Signal` object only when asked for: most emitters never ask, and
    building the object costs more than inserting the row (bench/, benchmark 1)."""

    id: uuid.UUID
    created: bool
    recorded: Signal | dict[str, Any] = field(repr=False)

    @cached_property
    def signal(self) -> Signal:
        return self.recorded if isinstance(self.recorded, Signal) else Signal(**self.recorded)


def emit(
    session: Session, draft: SignalDraft | dict[str, Any], registry: FanoutRegistry = fanout_handlers
) -> EmitResult:
    """INSERT ... ON CONFLICT DO NOTHING on the dedupe key; a repeat returns the existing fact.

    A repeat whose name or payload differs is a bug in the emitter and raises Conflict instead of
    silently answering with a different fact.
    """
    try:
        draft = draft if isinstance(draft, SignalDraft) else SignalDraft.model_validate(draft)
    except ValidationError as exc:
        raise InvalidInput(f"invalid signal: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    dumped = draft.model_dump(mode="json", include={"payload", "metadata"})
    payload, metadata = dumped["payload"], dumped["metadata"]
    ensure_no_secrets(payload, "signal payload")
    ensure_no_secrets(metadata, "signal metadata")
    now = utcnow()
    values: dict[str, Any] = {
        "id": uuid7(),
        "name": draft.name,
        "payload": payload,
        "occurred_at": draft.occurred_at or now,
        "recorded_at": now,
        "source": draft.source,
        "dedupe_key": draft.dedupe_key or f"unique:{uuid.uuid4().hex}",
        "actor_type": draft.actor_type,
        "actor_id": draft.actor_id,
        "subject_type": draft.subject_type,
        "subject_id": draft.subject_id,
        "correlation_id": draft.correlation_id,
        "causation_id": draft.causation_id,
        "metadata": metadata,
    }
    inserted = session.connection().execute(statements.insert_signal(dialect_name(session)), values)
    if inserted.first() is None:
        existing = session.exec(select(Signal).where(Signal.dedupe_key == values["dedupe_key"])).one()
        if existing.name != draft.name or existing.payload != payload:
            raise Conflict(
                f"dedupe key {values['dedupe_key']!r} already names a different fact ({existing.name} {existing.id})"
            )
        return EmitResult(existing.id, False, existing)
    _schedule_fanout(session, values["id"], draft.name, registry)
    values["meta"] = values.pop("metadata")
    return EmitResult(values["id"], True, values)


def _pending_deliveries(signal_id: uuid.UUID, subscriptions: list[FanoutSubscription]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "signal_id": signal_id,
            "handler": s.name,
            "status": "pending",
            "attempts": 0,
            "updated_at": now,
            "last_error": None,
            "delivered_at": None,
        }
        for s in subscriptions
    ]


def _schedule_fanout(session: Session, signal_id: uuid.UUID, name: str, registry: FanoutRegistry) -> None:
    """Record one pending delivery per matching handler (the outbox), then wake the runner after commit."""
    subscriptions = registry.matching(name)
    if not subscriptions:
        return
    insert = dialect_insert(session)
    session.exec(insert(SignalDelivery).values(_pending_deliveries(signal_id, subscriptions)).on_conflict_do_nothing())
    tenant = session.info.get(SESSION_TENANT)
    dispatcher = session.info.get(SESSION_DISPATCHER)
    if tenant is not None and dispatcher is not None:
        on_commit(session, lambda: dispatcher.enqueue_fanout(tenant, signal_id))


class SignalFilter(BaseModel):
    ids: list[uuid.UUID] | None = None
    name: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: Any, filters: SignalFilter) -> Any:
    if filters.ids:
        query = query.where(col(Signal.id).in_(filters.ids))
    if filters.name:
        if filters.name.endswith("*"):
            query = query.where(col(Signal.name).startswith(filters.name[:-1]))
        else:
            query = query.where(Signal.name == filters.name)
    if filters.subject_type:
        query = query.where(Signal.subject_type == filters.subject_type)
    if filters.subject_id:
        query = query.where(Signal.subject_id == filters.subject_id)
    if filters.correlation_id:
        query = query.where(Signal.correlation_id == filters.correlation_id)
    if filters.since:
        query = query.where(Signal.occurred_at >= filters.since)
    if filters.until:
        query = query.where(Signal.occurred_at < filters.until)
    return query


def list_signals(
    session: Session, filters: SignalFilter, cursor: str | None = None, limit: int = 50
) -> tuple[list[Signal], str | None]:
    """Chronological page of signals and the cursor of the next page (None at the end)."""
    limit = clamp_limit(limit)
    query = _filtered(select(Signal), filters)
    if cursor:
        when, last_id = decode_cursor(cursor)
        query = query.where(or_(Signal.occurred_at > when, and_(Signal.occurred_at == when, col(Signal.id) > last_id)))
    rows = list(session.exec(query.order_by(col(Signal.occurred_at), col(Signal.id)).limit(limit + 1)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].occurred_at, rows[-1].id)
    return rows, next_cursor


def mark_for_replay(
    session: Session, filters: SignalFilter, registry: FanoutRegistry = fanout_handlers
) -> list[Signal]:
    """Reset (or create) the deliveries of the selected signals to pending; returns the signals to fan out."""
    if not (filters.ids or filters.name or filters.subject_type or filters.since or filters.correlation_id):
        raise InvalidInput("replay needs a selection: ids, name, subject or a start time")
    signals = list(session.exec(_filtered(select(Signal), filters).order_by(col(Signal.occurred_at))).all())
    insert = dialect_insert(session)
    selected = []
    for signal in signals:
        subscriptions = registry.matching(signal.name)
        if not subscriptions:
            continue
        statement = insert(SignalDelivery).values(_pending_deliveries(signal.id, subscriptions))
        statement = statement.on_conflict_do_update(
            index_elements=["signal_id", "handler"],
            set_={"status": "pending", "attempts": 0, "updated_at": utcnow(), "last_error": None},
        )
        session.exec(statement)
        selected.append(signal)
    return selected
