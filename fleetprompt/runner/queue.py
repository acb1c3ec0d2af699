"""The Huey instance, with storage chosen by configuration (same database as the ledger)."""

from __future__ import annotations

import threading
from typing import Any

from huey import Huey
from huey.storage import MemoryStorage, PostgresStorage, SqliteStorage
from sqlalchemy.engine import make_url

from fleetprompt.config import Settings

QUEUE_NAME = "fleetprompt"
REVOKE_PREFIX = "r:"  # huey.api.Task.revoke_id


class LedgerHuey(Huey):
    """Huey without task revocation. Stopping work is the ledger's business (canceling a directive is recorded,
    role-checked and signalled), and a task whose directive was canceled finds nothing to claim. Huey would
    otherwise read a task's revocation flags before running it and clear them after: two queries per task
    (bench/, benchmark 1)."""

    def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False

    def _revoking(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("FleetPrompt tasks are not revoked: cancel the directive instead")

    revoke = revoke_all = revoke_by_id = _revoking

    def delete(self, key: str) -> Any:
        """No revocation flag is ever set here, so there is none to clear after a task."""
        if key.startswith(REVOKE_PREFIX):
            return None
        return super().delete(key)


class PostgresQueueStorage(PostgresStorage):
    """Huey's PostgreSQL storage with two changes measured in bench/ (benchmark 1):

    - enqueue is one statement, insert and NOTIFY together (autocommit makes it atomic), instead of four round
      trips (BEGIN, INSERT, NOTIFY, COMMIT) held under the storage's process-wide lock;
    - one LISTEN connection per process, used by one thread at a time while the others wait their turn, so a
      NOTIFY wakes one consumer thread per process instead of every idle one (each woken thread costs a dequeue).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener = threading.Lock()
        self._listen: Any = None  # the process's LISTEN connection, used only by the thread holding _listener
        self._enqueue_sql = (
            f"with task as (insert into {self.table_task} (queue, data, priority) values (%s, %s, %s) returning id) "
            "select pg_notify(%s, '') from task"
        )

    def enqueue(self, data: bytes, priority: float | None = None) -> None:
        with self.db() as cursor:
            cursor.execute(self._enqueue_sql, (self.name, data, priority or 0, self.channel))

    def _listen_conn(self) -> Any:
        if self._listen is None or self._listen.closed or self._listen.broken:
            self._listen = self._connect()
            channel = self.channel.replace('"', '""')
            self._listen.execute(f'listen "{channel}"')
        return self._listen

    def close(self) -> bool:
        with self._listener:
            if self._listen is not None:
                self._close_quiet(self._listen)
                self._listen = None
        return super().close()

    def dequeue(self) -> bytes | None:
        data = self._dequeue()
        if data is not None or not self.blocking:
            return data
        if not self._listener.acquire(timeout=self.read_timeout):
            return self._dequeue()  # another thread listened all along; look once more, then back to Huey's loop
        try:
            return super().dequeue()  # looks first (a task may have come while waiting for the turn), then LISTENs
        finally:
            self._listener.release()


def libpq_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def build_huey(settings: Settings) -> Huey:
    """memory: immediate, in-process (unit tests). auto: Huey's SQLite storage beside the SQLite files, or
    PostgresQueueStorage."""
    if settings.queue == "memory":
        return LedgerHuey(QUEUE_NAME, storage_class=MemoryStorage, immediate=True, results=False)
    if settings.is_postgres:
        # Tables come from `fleetprompt db upgrade` (prepare_queue): concurrent CREATE TABLE IF NOT EXISTS
        # from workers starting together can fail in PostgreSQL.
        return LedgerHuey(
            QUEUE_NAME,
            storage_class=PostgresQueueStorage,
            dsn=libpq_dsn(settings.effective_database_url),
            results=False,
            create_tables=False,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    queue_file = str((settings.data_dir / "queue.db").resolve())
    return LedgerHuey(QUEUE_NAME, storage_class=SqliteStorage, filename=queue_file, results=False)


def prepare_queue(huey: Huey) -> None:
    """Create the queue's tables if missing (idempotent)."""
    if isinstance(huey.storage, PostgresStorage):
        huey.storage.initialize_schema()


def check_queue(huey: Huey) -> None:
    """Raise if the queue's storage is unreachable or not created yet."""
    huey.pending_count()
