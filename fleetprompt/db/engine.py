"""Engines and transactions: one shared engine, tenant binding by schema (PostgreSQL) or file (SQLite)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, Executable, Row, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlmodel import Session

from fleetprompt.config import Settings
from fleetprompt.db.tenancy import schema_name, sqlite_path
from fleetprompt.models.base import TENANT_SCHEMA

_AFTER_COMMIT = "fleetprompt.after_commit"
READ_ONLY = "fleetprompt_read_only"
SQLITE_ENGINE_CACHE = 256
TENANT_ENGINE_CACHE = 4096  # PostgreSQL: option views of the one pool, cheap to keep


def _configure_sqlite(engine: Engine) -> Engine:
    """WAL, a busy timeout and BEGIN IMMEDIATE, so concurrent writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front (no deadlocking lock upgrades); readers don't block anyone.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _sqlite_engine(path: Path, *, create: bool) -> Engine:
    mode = "rwc" if create else "rw"
    url = f"sqlite:///file:{path.resolve()}?mode={mode}&uri=true"
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)
    return _configure_sqlite(engine)


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the transaction opened by Database.transaction() has committed."""
    callbacks = session.info.get(_AFTER_COMMIT)
    if callbacks is None:
        raise RuntimeError("on_commit needs a session opened with Database.transaction()")
    callbacks.append(callback)


class _TenantEngines(NamedTuple):
    transactions: Engine
    reads: Engine


class Database:
    """Owns the engines. A tenant is always named by a validated slug, never by caller-supplied SQL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url
        self.dialect = make_url(self.url).get_backend_name()
        self._lock = threading.Lock()
        self._tenant_engines: OrderedDict[str, _TenantEngines] = OrderedDict()
        if self.dialect == "sqlite":
            db_path = Path(make_url(self.url).database or "")
            db_path.parent.mkdir(parents=True, exist_ok=True)
            settings.tenants_dir.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(db_path, create=True)
        else:
            # hide_parameters: bound values (user data) never reach logs or error messages.
            # No pre-ping: it costs a round trip on every checkout (several per tool call). A connection the server
            # dropped fails its one statement, and SQLAlchemy then discards the whole pool; recycling bounds age.
            self.engine = create_engine(
                self.url,
                pool_size=settings.db_pool_size,
                max_overflow=20,
                pool_recycle=1800,
                hide_parameters=True,
            )
        # Reads on PostgreSQL run in autocommit: each statement sees what was committed when it began (what READ
        # COMMITTED gives inside a transaction too) without BEGIN and COMMIT round trips. SQLite: a read transaction,
        # one consistent snapshot that takes no write lock.
        self._read_options: dict[str, Any] = (
            {"isolation_level": "AUTOCOMMIT"} if self.dialect == "postgresql" else {READ_ONLY: True}
        )
        self._read_engine = self.engine.execution_options(**self._read_options)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def tenant_engine(self, slug: str) -> Engine:
        """The engine whose `tenant` placeholder schema points at this tenant's storage."""
        return self._engines(slug).transactions

    def _engines(self, slug: str) -> _TenantEngines:
        """A tenant's engines for transactions and for reads, built once: building them costs more than a read.
        On PostgreSQL they share the one pool; on SQLite each tenant file has its own (the least used are closed)."""
        with self._lock:
            engines = self._tenant_engines.get(slug)
            if engines is not None:
                self._tenant_engines.move_to_end(slug)
                return engines
        if self.is_postgres:
            engine = self.engine.execution_options(schema_translate_map={TENANT_SCHEMA: schema_name(slug)})
        else:
            path = sqlite_path(self.settings.tenants_dir, slug)
            engine = _sqlite_engine(path, create=False).execution_options(schema_translate_map={TENANT_SCHEMA: None})
        engines = _TenantEngines(engine, engine.execution_options(**self._read_options))
        evicted: list[_TenantEngines] = []
        with self._lock:
            existing = self._tenant_engines.get(slug)
            if existing is not None:
                evicted.append(engines)
                engines = existing
            else:
                self._tenant_engines[slug] = engines
                limit = SQLITE_ENGINE_CACHE if not self.is_postgres else TENANT_ENGINE_CACHE
                while len(self._tenant_engines) > limit:
                    evicted.append(self._tenant_engines.popitem(last=False)[1])
        if not self.is_postgres:
            for unused in evicted:
                unused.transactions.engine.dispose()
        return engines

    def tenant_file_engine(self, slug: str) -> Engine:
        """A SQLite engine that may create the tenant's file (used only when creating the tenant)."""
        return _sqlite_engine(sqlite_path(self.settings.tenants_dir, slug), create=True)

    @contextmanager
    def transaction(self, slug: str | None = None) -> Iterator[Session]:
        """One transaction on the shared tables (slug=None) or on a tenant; on_commit callbacks run after it."""
        engine = self.engine if slug is None else self.tenant_engine(slug)
        callbacks: list[Callable[[], None]] = []
        with Session(engine, expire_on_commit=False) as session:
            session.info[_AFTER_COMMIT] = callbacks
            with session.begin():
                yield session
        for callback in callbacks:
            callback()

    @contextmanager
    def reading(self, slug: str | None = None) -> Iterator[Session]:
        """Reads only: autocommit on PostgreSQL, a snapshot without the write lock on SQLite (see _read_options)."""
        engine = self._read_engine if slug is None else self._engines(slug).reads
        with (
            Session(engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    def read_rows(self, statement: Executable, params: dict[str, Any] | None = None) -> Sequence[Row[Any]]:
        """The rows of one SELECT on the shared tables, read like `reading()` but without an ORM session: for the
        lookups made on every request (token, role, organization)."""
        with self.engine.connect().execution_options(**self._read_options) as connection, connection.begin():
            return connection.execute(statement, params).all()

    def forget_tenant(self, slug: str) -> None:
        with self._lock:
            engines = self._tenant_engines.pop(slug, None)
        if engines is not None and not self.is_postgres:
            engines.transactions.engine.dispose()

    def dispose(self) -> None:
        with self._lock:
            engines = list(self._tenant_engines.values())
            self._tenant_engines.clear()
        if not self.is_postgres:
            for tenant in engines:
                tenant.transactions.engine.dispose()
        self.engine.dispose()


def dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def insert_for(dialect: str) -> Any:
    """The dialect's `insert` (the one with on_conflict_do_nothing)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def dialect_insert(session: Session) -> Any:
    """The dialect's `insert` for the session's backend."""
    return insert_for(dialect_name(session))
