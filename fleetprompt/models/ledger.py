"""Tenant tables of the ledger: signals (immutable facts), directives (intent) and fanout deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from fleetprompt.models.base import TENANT_SCHEMA, JSONType, UTCDateTime, utcnow, uuid7


class DirectiveStatus(StrEnum):
    awaiting_approval = "awaiting_approval"
    requested = "requested"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({DirectiveStatus.succeeded, DirectiveStatus.failed, DirectiveStatus.canceled})


class Signal(SQLModel, table=True):
    __tablename__ = "signals"
    __table_args__ = (
        Index("ix_signals_subject", "subject_type", "subject_id", "occurred_at"),
        Index("ix_signals_name_occurred", "name", "occurred_at"),
        Index("ix_signals_occurred", "occurred_at"),
        Index("ix_signals_correlation", "correlation_id"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    name: str = Field(max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    source: str = Field(max_length=64)
    dedupe_key: str = Field(max_length=512, unique=True)
    actor_type: str | None = Field(default=None, max_length=64)
    actor_id: str | None = Field(default=None, max_length=255)
    subject_type: str | None = Field(default=None, max_length=64)
    subject_id: str | None = Field(default=None, max_length=255)
    correlation_id: str | None = Field(default=None, max_length=255)
    causation_id: str | None = Field(default=None, max_length=255)
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONType, nullable=False, default=dict)
    )


class Directive(SQLModel, table=True):
    __tablename__ = "directives"
    __table_args__ = (
        Index("ix_directives_due", "status", "scheduled_at"),
        Index("ix_directives_subject", "subject_type", "subject_id", "created_at"),
        Index("ix_directives_name", "name", "created_at"),
        Index("ix_directives_created", "created_at"),
        Index("ix_directives_args", "args_hash"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    name: str = Field(max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    idempotency_key: str = Field(max_length=512, unique=True)
    args_hash: str = Field(max_length=64)
    status: str = Field(default=DirectiveStatus.requested.value, max_length=32)
    scheduled_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    attempt: int = 0
    max_attempts: int = 5
    run_number: int = 1
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    last_error: str | None = Field(default=None, sa_type=Text)
    requested_by: str | None = Field(default=None, max_length=255)
    requested_by_type: str = Field(default="user", max_length=32)
    requested_via: str | None = Field(default=None, max_length=64)
    decided_by: str | None = Field(default=None, max_length=255)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    subject_type: str | None = Field(default=None, max_length=64)
    subject_id: str | None = Field(default=None, max_length=255)
    correlation_id: str | None = Field(default=None, max_length=255)
    causation_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignalDelivery(SQLModel, table=True):
    """One row per (signal, fanout handler): the outbox that makes fanout at-least-once."""

    __tablename__ = "signal_deliveries"
    __table_args__ = (
        Index("ix_signal_deliveries_pending", "status", "updated_at"),
        {"schema": TENANT_SCHEMA},
    )

    signal_id: uuid.UUID = Field(primary_key=True)
    handler: str = Field(primary_key=True, max_length=255)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
