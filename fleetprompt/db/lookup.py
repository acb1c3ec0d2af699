"""Loading one row by id, with the caller's error when it is missing (another tenant's id is simply absent)."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlmodel import Session, SQLModel

from fleetprompt.errors import NotFound

M = TypeVar("M", bound=SQLModel)


def fetch(session: Session, model: type[M], row_id: uuid.UUID | str, what: str, *, lock: bool = False) -> M:
    """`lock` takes a row lock on PostgreSQL (SQLite's write transactions are already exclusive)."""
    try:
        key = row_id if isinstance(row_id, uuid.UUID) else uuid.UUID(str(row_id))
    except ValueError:
        raise NotFound(f"{what} {row_id!r} not found") from None
    row = session.get(model, key, with_for_update=lock or None)
    if row is None:
        raise NotFound(f"{what} {key} not found")
    return row
