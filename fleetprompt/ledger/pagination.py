"""Opaque keyset cursors: a (timestamp, id) pair, so pages stay stable while rows are added."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from fleetprompt.errors import InvalidInput

MAX_PAGE = 500
_INVALID = "invalid cursor: pass the next_cursor value of a previous page unchanged"


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), str(row_id)]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position after which the next page starts; anything malformed is the caller's InvalidInput."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when, uuid.UUID(row_id)
    except (ValueError, TypeError):
        raise InvalidInput(_INVALID) from None


def clamp_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    return limit
