"""One row: loading it by id (another tenant's id is simply absent: not found), or inserting one whose unique key
a concurrent request may have taken first (a conflict, not a crash)."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from fleetprompt.errors import Conflict, NotFound

M = TypeVar("M", bound=SQLModel)


def fetch(
    session: Session, model: type[M], row_id: uuid.UUID | str, what: str, *, lock: bool = False, share: bool = False
) -> M:
    """`lock` takes a row lock (FOR UPDATE) on PostgreSQL, `share` a shared one (FOR SHARE: the row cannot change
    or vanish until we commit, while others may share it). SQLite's write transactions are already exclusive."""
    try:
        key = row_id if isinstance(row_id, uuid.UUID) else uuid.UUID(str(row_id))
    except ValueError:
        raise NotFound(f"{what} {row_id!r} not found") from None
    row = session.get(model, key, with_for_update=True if lock else ({"read": True} if share else None))
    if row is None:
        raise NotFound(f"{what} {key} not found")
    return row


def insert_unique(session: Session, row: SQLModel, conflict: str) -> None:
    """Insert in a savepoint, so a unique violation leaves the transaction usable and becomes a Conflict."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Conflict(conflict) from None
