"""The pipeline's ceiling: the rows one forum_reply directive writes, issued by a plain driver loop.

Per directive, in the same three transactions FleetPrompt commits (file, claim, execute) and with the same
statement shapes (INSERT ... ON CONFLICT DO NOTHING RETURNING, conditional UPDATE ... RETURNING):
insert directive + signal; claim update + signal; insert post + signals + success update + signal.
Nothing else: no role checks, no reads, no queue, no ORM. Whatever FleetPrompt spends beyond this is overhead.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import common
from fleetprompt.models.base import uuid7

INSERT_DIRECTIVE = """
INSERT INTO {s}directives (id, name, payload, idempotency_key, args_hash, status, scheduled_at, attempt, max_attempts,
    run_number, requested_by, requested_by_type, requested_via, subject_type, subject_id, correlation_id,
    causation_id, created_at, updated_at)
VALUES (:id, 'forum.post.create', :payload, :key, :hash, 'requested', :now, 0, 5, 1, :actor, 'user', 'bench',
    'forum.thread', :thread, :corr, NULL, :now, :now)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"""
INSERT_SIGNAL = """
INSERT INTO {s}signals (id, name, payload, occurred_at, recorded_at, source, dedupe_key, actor_type, actor_id,
    subject_type, subject_id, correlation_id, causation_id, metadata)
VALUES (:id, :name, :payload, :now, :now, 'bench', :dedupe, 'user', :actor, 'directive', :directive, :corr,
    :directive, :meta)
ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"""
CLAIM = """
UPDATE {s}directives SET status = 'running', attempt = attempt + 1, lease_expires_at = :lease, started_at = :now,
    updated_at = :now
WHERE id = :id AND status = 'requested' AND scheduled_at <= :now RETURNING *"""
INSERT_POST = """
INSERT INTO {s}forum_posts (id, thread_id, content, status, author_type, author_id, created_by_directive, metadata,
    created_at, updated_at)
VALUES (:id, :thread, :content, 'published', 'human', :actor, :directive, :meta, :now, :now)"""
SUCCEED = """
UPDATE {s}directives SET status = 'succeeded', result = :result, last_error = NULL, lease_expires_at = NULL,
    completed_at = :now, updated_at = :now
WHERE id = :id AND status = 'running' AND attempt = 1 AND run_number = 1 RETURNING *"""


@dataclass(frozen=True)
class Target:
    """Where the loop writes: the same tenant tables FleetPrompt wrote in the same run."""

    connect: Callable[[], Any]
    schema: str  # "org_bench." on PostgreSQL, "" for a tenant file
    placeholder: Callable[[str], str]  # :name -> the driver's spelling
    value: Callable[[Any], Any]  # uuid / datetime / dict -> the driver's value
    begin: str


def _pg_value(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if hasattr(value, "hex") and not isinstance(value, (str, bytes)):
        return value.hex  # SQLAlchemy's Uuid on SQLite: 32 hex characters
    return value


def postgres_target(dsn: str, schema: str) -> Target:
    return Target(
        connect=lambda: psycopg.connect(dsn, autocommit=True),
        schema=f"{schema}.",
        placeholder=lambda sql: re.sub(r":(\w+)", r"%(\1)s", sql),
        value=_pg_value,
        begin="BEGIN",
    )


def sqlite_target(path: Path) -> Target:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    return Target(connect=connect, schema="", placeholder=lambda sql: sql, value=_sqlite_value, begin="BEGIN IMMEDIATE")


@dataclass(frozen=True)
class CeilingRun:
    seconds: float
    latencies: list[float]


def run_ceiling(
    target: Target, connections: list[Any], thread_id: Any, actor: str, count: int, signals_per_directive: int
) -> CeilingRun:
    """One thread per connection, each writing its share of `count` directives start to finish, one after another.

    The caller owns the connections (kept across runs, like FleetPrompt's pool, so prepared statements persist)."""
    callers = len(connections)
    sql = {
        name: target.placeholder(text.format(s=target.schema))
        for name, text in {
            "directive": INSERT_DIRECTIVE,
            "signal": INSERT_SIGNAL,
            "claim": CLAIM,
            "post": INSERT_POST,
            "succeed": SUCCEED,
        }.items()
    }
    # FleetPrompt emits requested (file), started (claim), then the domain signals and succeeded (execute).
    domain_signals = max(signals_per_directive - 3, 0)
    latencies: list[list[float]] = [[] for _ in range(callers)]
    run_tag = uuid7().hex[:12]

    def one_caller(index: int) -> None:
        conn = connections[index]
        v = target.value

        def execute(statement: str, **params: Any) -> None:
            cursor = conn.execute(sql[statement], {k: v(p) for k, p in params.items()})
            if statement != "post":
                cursor.fetchall()  # RETURNING rows come back, as they do to FleetPrompt

        def signal(name: str, directive: Any, corr: str, suffix: str) -> None:
            execute(
                "signal",
                id=uuid7(),
                name=name,
                payload={"directive": "forum.post.create", "status": "requested", "subject_type": "forum.thread"},
                now=datetime.now(UTC),
                dedupe=f"{name}:{directive}{suffix}",
                actor=actor,
                directive=str(directive),
                corr=corr,
                meta={},
            )

        for n in range(index, count, callers):
            started = time.perf_counter()
            directive, corr = uuid7(), uuid7().hex
            conn.execute(target.begin)
            execute(
                "directive",
                id=directive,
                payload={"thread_id": str(thread_id), "content": f"ceiling {run_tag} {n}"},
                key=f"ceiling:{run_tag}:{n}",
                hash=f"{n:064d}",
                now=datetime.now(UTC),
                actor=actor,
                thread=str(thread_id),
                corr=corr,
            )
            signal("directive.requested", directive, corr, ":r1")
            conn.execute("COMMIT")
            conn.execute(target.begin)
            now = datetime.now(UTC)
            execute("claim", id=directive, now=now, lease=now + timedelta(seconds=300))
            signal("directive.started", directive, corr, ":r1:a1")
            conn.execute("COMMIT")
            conn.execute(target.begin)
            post = uuid7()
            execute(
                "post",
                id=post,
                thread=thread_id,
                content=f"ceiling {run_tag} {n}",
                actor=actor,
                directive=directive,
                meta={"via": "bench", "directive_id": str(directive)},
                now=datetime.now(UTC),
            )
            for k in range(domain_signals):
                signal("forum.post.created", directive, corr, f":{post}:{k}")
            execute("succeed", id=directive, now=datetime.now(UTC), result={"post_id": str(post)})
            signal("directive.succeeded", directive, corr, ":r1")
            conn.execute("COMMIT")
            latencies[index].append(time.perf_counter() - started)

    seconds = common.run_callers(callers, one_caller, "ceiling")
    return CeilingRun(seconds, [x for per_caller in latencies for x in per_caller])
