"""Opaque keyset cursors: (timestamp, id) pairs, so pages stay stable while rows are added."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from fleetprompt.errors import InvalidInput

MAX_PAGE = 500


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(parts, list) or len(parts) != size or not all(isinstance(p, str) for p in parts):
            raise ValueError
        return parts
    except ValueError:
        raise InvalidInput("invalid cursor: pass the next_cursor value of a previous page unchanged") from None


def parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("invalid cursor") from None
    if parsed.tzinfo is None:
        raise InvalidInput("invalid cursor")
    return parsed


def clamp_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    return limit
