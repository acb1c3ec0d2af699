"""The Huey instance, with storage chosen by configuration (same database as the ledger)."""

from __future__ import annotations

from huey import Huey, MemoryHuey, PostgresHuey, SqliteHuey
from sqlalchemy.engine import make_url

from fleetprompt.config import Settings

QUEUE_NAME = "fleetprompt"


def libpq_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def build_huey(settings: Settings) -> Huey:
    """memory: immediate, in-process (unit tests). auto: SqliteHuey beside the SQLite files, or PostgresHuey."""
    if settings.queue == "memory":
        return MemoryHuey(QUEUE_NAME, immediate=True, results=False)
    if settings.is_postgres:
        # Tables come from `fleetprompt db upgrade` (prepare_queue): concurrent CREATE TABLE IF NOT EXISTS
        # from workers starting together can fail in PostgreSQL.
        return PostgresHuey(
            QUEUE_NAME, dsn=libpq_dsn(settings.effective_database_url), results=False, create_tables=False
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str((settings.data_dir / "queue.db").resolve()), results=False)


def prepare_queue(huey: Huey) -> None:
    """Create the queue's tables if missing (idempotent)."""
    if isinstance(huey, PostgresHuey):
        huey.storage.initialize_schema()


def check_queue(huey: Huey) -> None:
    """Raise if the queue's storage is unreachable or not created yet."""
    huey.pending_count()
