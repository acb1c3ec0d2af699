"""The ledger's hot-path SQL, built once and executed with parameter dicts.

A statement object that never changes keeps its cache key and compiled form, so a call only binds values.
Rebuilding `insert(...).values(...)` or an ORM `update(...).returning(Directive)` on every call spent about half
of a worker's CPU on statement construction and cache-key walks (bench/, benchmark 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Insert, Row, Table, Update, bindparam, update
from sqlmodel import select
from sqlmodel.sql.expression import Select

from fleetprompt.db.engine import insert_for
from fleetprompt.models.ledger import Directive, DirectiveStatus, Signal

SIGNALS: Table = Signal.__table__  # type: ignore[attr-defined]
DIRECTIVES: Table = Directive.__table__  # type: ignore[attr-defined]
S = DirectiveStatus


@cache
def insert_signal(dialect: str) -> Insert:
    """INSERT a signal unless its dedupe key exists; returns its id only when inserted."""
    return insert_for(dialect)(SIGNALS).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(SIGNALS.c.id)


@cache
def insert_directive(dialect: str) -> Insert:
    """INSERT a directive unless its idempotency key exists; returns its id only when inserted."""
    statement = insert_for(dialect)(DIRECTIVES).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return statement.returning(DIRECTIVES.c.id)


@cache
def claim_directive() -> Update:
    """requested and due -> running, next attempt, with a lease (params: b_id, b_now, b_lease)."""
    d = DIRECTIVES.c
    return (
        update(DIRECTIVES)
        .where(d.id == bindparam("b_id"), d.status == S.requested.value)
        .where(d.scheduled_at <= bindparam("b_now"))
        .values(
            status=S.running.value,
            attempt=d.attempt + 1,
            lease_expires_at=bindparam("b_lease"),
            started_at=bindparam("b_now"),
            updated_at=bindparam("b_now"),
        )
        .returning(*DIRECTIVES.c)
    )


@cache
def update_fenced() -> Update:
    """Change a running directive only while it is still this claim (params: b_id, b_attempt, b_run; the columns to
    set are the other parameters)."""
    d = DIRECTIVES.c
    return (
        update(DIRECTIVES)
        .where(d.id == bindparam("b_id"), d.status == S.running.value)
        .where(d.attempt == bindparam("b_attempt"), d.run_number == bindparam("b_run"))
        .returning(*DIRECTIVES.c)
    )


@cache
def same_request() -> Select[Any]:
    """Directives with these arguments from this requester, as rows (params: b_hash, b_actor)."""
    d = DIRECTIVES.c
    return select(*DIRECTIVES.c).where(d.args_hash == bindparam("b_hash"), d.requested_by == bindparam("b_actor"))


def directive_from(row: Row[Any] | None) -> Directive | None:
    return None if row is None else directive_snapshot(row._mapping)


def directive_snapshot(values: Mapping[str, Any]) -> Directive:
    """A read-only Directive from a row the database just returned: no validation and no ORM state, which cost
    ten times as much to build. Never add it to a session; change a directive through the ledger's UPDATEs."""
    return Directive.model_construct(**values)
