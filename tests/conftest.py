"""Fixtures: every storage test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from sqlalchemy.engine import make_url
from support import plugin  # noqa: F401  (registers the test directive types)
from support.forum import FAST_HASHER
from support.postgres import URL_VARIABLE, PostgresServer, PostgresUnavailable

from fleetprompt.accounts import passwords
from fleetprompt.accounts.context import Actor, OrgRef, RequestContext
from fleetprompt.accounts.organizations import create_organization
from fleetprompt.accounts.users import add_user
from fleetprompt.config import Settings
from fleetprompt.db.engine import Database
from fleetprompt.db.migrate import upgrade_shared
from fleetprompt.platform import Platform
from fleetprompt.runner.queue import prepare_queue

TESTS_DIR = Path(__file__).parent
PLUGIN = "support.plugin"
TEMPLATE_DB = "fp_template"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Argon2id with the cheapest parameters: tests create many users and never measure hashing cost."""
    monkeypatch.setattr(passwords, "_hasher", FAST_HASHER)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """The server from `make test` (FLEETPROMPT_TEST_DATABASE_URL), or one started here for this session."""
    url = os.environ.get(URL_VARIABLE)
    if url:
        yield url
        return
    try:
        server = PostgresServer()
        url = server.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL tests need a server: {exc}", pytrace=False)
    try:
        yield url
    finally:
        server.stop()


def _libpq(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with the shared tables migrated, copied for every test (CREATE DATABASE ... TEMPLATE)."""
    with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    url = make_url(postgres_admin_url).set(database=TEMPLATE_DB).render_as_string(hide_password=False)
    db = Database(Settings(database_url=url, data_dir=tmp_path_factory.mktemp("template"), queue="memory"))
    upgrade_shared(db)
    db.dispose()
    return TEMPLATE_DB


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'fleetprompt.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("postgres_template")
    name = f"fp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "queue": "memory",
        "retry_base_seconds": 2.0,
        "plugins": [PLUGIN],
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "var")


def run_concurrently(count: int, call: Callable[[], T]) -> list[T]:
    """Start `count` threads on a barrier so they really overlap; re-raise the first error any of them hit."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            results.append(call())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def build_platform(database_url: str, data_dir: Path, **overrides: object) -> Platform:
    """A platform on a migrated database, its queue's tables created (what `fleetprompt db upgrade` does)."""
    built = Platform.build(make_settings(database_url, data_dir, **overrides))
    upgrade_shared(built.db)
    prepare_queue(built.runner.huey)
    return built


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    built = Platform.build(settings)
    upgrade_shared(built.db)
    try:
        yield built
    finally:
        built.close()


@dataclass
class Org:
    ref: OrgRef
    users: dict[str, uuid.UUID]

    def ctx(self, who: str = "owner", kind: str = "user", correlation_id: str | None = None) -> RequestContext:
        user_id = self.users[who]
        actor = Actor.agent(user_id, "test") if kind == "agent" else Actor.user(user_id, "test")
        if correlation_id:
            return RequestContext(org=self.ref, actor=actor, correlation_id=correlation_id)
        return RequestContext(org=self.ref, actor=actor)


def make_org(platform: Platform, slug: str) -> Org:
    ref = create_organization(platform.db, slug, slug.title())
    users = {}
    for role in ("owner", "admin", "member"):
        users[role] = add_user(platform.db, f"{role}@{slug}.test", slug, role, "password-123").user.id
    return Org(ref, users)


@pytest.fixture
def org(platform: Platform) -> Org:
    return make_org(platform, "acme")
