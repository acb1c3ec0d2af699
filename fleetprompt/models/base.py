"""Column types and helpers shared by every table: UTC timestamps, JSON, time-ordered ids."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Tenant tables are declared in this placeholder schema and bound per request with schema_translate_map.
TENANT_SCHEMA = "tenant"
TENANT_TABLE_ARGS: dict[str, Any] = {"schema": TENANT_SCHEMA}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on both backends (SQLite stores naive UTC text that sorts correctly)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_uuid7_lock = threading.Lock()
_uuid7_last = [0, 0]  # last millisecond, counter


def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7 (monotonic within this process), so ids sort by creation time."""
    with _uuid7_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _uuid7_last[0]:
            ms = _uuid7_last[0]
            _uuid7_last[1] += 1
            if _uuid7_last[1] > 0xFFF:
                ms += 1
                _uuid7_last[1] = 0
        else:
            _uuid7_last[1] = int.from_bytes(os.urandom(2), "big") & 0x3FF
        _uuid7_last[0] = ms
        counter = _uuid7_last[1]
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)
