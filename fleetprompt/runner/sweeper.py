"""The recovery loop: exactly one process at a time re-enqueues lost work and reclaims expired leases."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Connection, text

from fleetprompt.accounts.organizations import list_organizations
from fleetprompt.runner.execute import pending_fanout
from fleetprompt.runner.tasks import Runner

log = logging.getLogger(__name__)
ADVISORY_LOCK_KEY = 0x46_50_53_57  # "FPSW"


@dataclass
class SweepReport:
    reclaimed: int = 0
    requeued: int = 0
    fanout: int = 0
    tenants: int = 0
    errors: list[str] = field(default_factory=list)


class Leadership:
    """PostgreSQL: a session advisory lock; SQLite: an flock on DATA_DIR/sweeper.lock. Both end with the process."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._connection: Connection | None = None
        self._file: IO[Any] | None = None

    def acquire(self) -> bool:
        if self.held:
            return True
        if self.runner.db.is_postgres:
            connection = self.runner.db.engine.connect()
            got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar_one()
            connection.commit()
            if got:
                self._connection = connection
            else:
                connection.close()
            return bool(got)
        path = self.runner.settings.data_dir / "sweeper.lock"
        handle = open(path, "a+")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return True

    @property
    def held(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()
                return True
            except Exception:
                self._connection = None
                return False
        return self._file is not None

    def release(self) -> None:
        if self._connection is not None:
            # Unlock first: a closed session's locks go only once its backend has exited, which lags the close.
            # A pooled connection outlives close(); end the session itself too, so nothing can keep the lock.
            try:
                try:
                    self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                    self._connection.commit()
                except Exception:
                    log.warning("could not unlock the sweeper's advisory lock; ending its session instead")
                self._connection.invalidate()
                self._connection.close()
            finally:
                self._connection = None
        if self._file is not None:
            self._file.close()
            self._file = None


class Sweeper:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.leadership = Leadership(runner)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> SweepReport:
        """One pass over every tenant; safe to call from any process (used directly by tests and the CLI)."""
        report = SweepReport()
        ledger = self.runner.ledger
        for org in list_organizations(self.runner.db):
            report.tenants += 1
            try:
                report.reclaimed += len(ledger.reclaim_expired(org.slug))
                report.requeued += len(ledger.requeue_unpicked(org.slug))
                for signal_id in pending_fanout(ledger, org.slug, self.runner.settings.requeue_after):
                    self.runner.enqueue_fanout(org.slug, signal_id)
                    report.fanout += 1
            except Exception as exc:  # one broken tenant must not stop recovery of the others
                log.exception("sweep of %s failed", org.slug)
                report.errors.append(f"{org.slug}: {type(exc).__name__}")
        return report

    def _loop(self) -> None:
        interval = self.runner.settings.sweep_interval
        while not self._stop.is_set():
            try:
                if self.leadership.acquire():
                    report = self.sweep_once()
                    if report.reclaimed or report.requeued or report.fanout:
                        log.info(
                            "sweeper: reclaimed %d, requeued %d, fanout %d",
                            report.reclaimed,
                            report.requeued,
                            report.fanout,
                        )
            except Exception:
                log.exception("sweeper pass failed")
            self._stop.wait(interval)
        self.leadership.release()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fleetprompt-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
