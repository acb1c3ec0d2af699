"""Databases, platforms and seed data for the benchmarks, built only through FleetPrompt's own APIs.

Each benchmark gets its own fresh database on the throwaway server (or its own SQLite data directory), so one
benchmark's rows never slow another's queries.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from fleetprompt.accounts.context import Actor, OrgRef, RequestContext
from fleetprompt.accounts.organizations import create_organization
from fleetprompt.accounts.users import add_user
from fleetprompt.config import Settings
from fleetprompt.db.migrate import upgrade_shared
from fleetprompt.platform import Platform
from fleetprompt.runner.queue import build_huey, prepare_queue
from fleetprompt.tools import DirectiveReceipt, call_tool

URL_VARIABLE = "FLEETPROMPT_TEST_DATABASE_URL"  # set by tests/support/postgres.py, as for `make test`
SECRET_KEY = "bench-secret-key-not-for-production-0123456789abcdef"
PASSWORD = "bench-password-123"


def admin_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        raise RuntimeError(f"{URL_VARIABLE} is not set: run `make bench` (or tests/support/postgres.py -- ...)")
    return url


def libpq(url: str) -> str:
    """psycopg's spelling of a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """CREATE DATABASE on the throwaway server; dropped afterwards. Yields its SQLAlchemy URL."""
    admin = admin_url()
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq(admin), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def settings(database_url: str | None, data_dir: Path, queue: str = "auto") -> Settings:
    values: dict[str, Any] = {"data_dir": data_dir, "queue": queue, "secret_key": SECRET_KEY, "log_level": "WARNING"}
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)


def process_env(database_url: str | None, data_dir: Path) -> dict[str, str]:
    """FLEETPROMPT_* settings (without the prefix) for a `fleetprompt` child on the same storage."""
    env = {"data_dir": str(data_dir), "queue": "auto", "secret_key": SECRET_KEY}
    if database_url:
        env["database_url"] = database_url
    return env


def build(database_url: str | None, data_dir: Path, queue: str = "auto") -> Platform:
    """A platform on migrated storage with its queue's tables (what `fleetprompt db upgrade` prepares)."""
    platform = Platform.build(settings(database_url, data_dir, queue))
    upgrade_shared(platform.db)
    prepare_queue(build_huey(settings(database_url, data_dir, "auto")))
    return platform


@dataclass(frozen=True)
class Member:
    org: OrgRef
    user_id: uuid.UUID
    email: str

    def ctx(self, kind: str = "user", via: str = "bench") -> RequestContext:
        actor = Actor.agent(self.user_id, via) if kind == "agent" else Actor.user(self.user_id, via)
        return RequestContext(org=self.org, actor=actor)


def new_member(platform: Platform, slug: str, role: str = "owner") -> Member:
    """An organization (its storage created and migrated) with one member."""
    org = create_organization(platform.db, slug, slug.title())
    email = f"{role}@{slug}.bench"
    added = add_user(platform.db, email, slug, role, PASSWORD)
    return Member(org, added.user.id, email)


def done(platform: Platform, ctx: RequestContext, tool: str, **arguments: Any) -> dict[str, Any]:
    """File through a tool on a memory-queue platform (the directive runs inline) and insist it succeeded."""
    receipt = call_tool(platform.ledger, ctx, tool, {**arguments, "wait_seconds": 5})
    assert isinstance(receipt, DirectiveReceipt)
    if receipt.status != "succeeded" or receipt.result is None:
        raise RuntimeError(f"{tool}: {receipt.summary}")
    return receipt.result


def new_thread(platform: Platform, member: Member, threads: int = 1) -> list[uuid.UUID]:
    """A category with `threads` threads, created through the tools (needs a memory-queue platform)."""
    ctx = member.ctx()
    category = done(platform, ctx, "forum_create_category", slug="general", name="General")["category_id"]
    return [
        uuid.UUID(
            done(platform, ctx, "forum_create_thread", category_id=category, title=f"Thread {i}", content="First")[
                "thread_id"
            ]
        )
        for i in range(threads)
    ]


def seeded(database_url: str | None, data_dir: Path, slug: str = "bench") -> tuple[Member, uuid.UUID]:
    """Storage with one organization, its owner and one thread: seeded inline, closed before anything is measured."""
    platform = build(database_url, data_dir, queue="memory")
    try:
        member = new_member(platform, slug)
        (thread,) = new_thread(platform, member)
    finally:
        platform.close()
    return member, thread
