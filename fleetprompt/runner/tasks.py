"""The Huey tasks (run a directive, deliver fanout) and the dispatcher the ledger uses to enqueue them."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime

from huey import Huey
from huey.api import Task
from huey.signals import SIGNAL_INTERRUPTED

from fleetprompt.config import Settings
from fleetprompt.db.engine import Database
from fleetprompt.ledger import Ledger
from fleetprompt.ledger.registry import FanoutRegistry, fanout_handlers
from fleetprompt.models.base import utcnow
from fleetprompt.models.ledger import Directive
from fleetprompt.runner import forum, marketplace  # noqa: F401  (binds the domain handlers)
from fleetprompt.runner.execute import deliver_fanout, execute_directive

log = logging.getLogger(__name__)


class Runner:
    """Implements the ledger's Dispatcher with Huey; the tasks carry only (tenant slug, id)."""

    def __init__(self, settings: Settings, db: Database, huey: Huey, fanout: FanoutRegistry = fanout_handlers) -> None:
        self.settings = settings
        self.db = db
        self.huey = huey
        self.fanout = fanout
        self.ledger = Ledger(db, dispatcher=self, settings=settings)
        self._claims: dict[str, tuple[str, Directive]] = {}
        self._claims_lock = threading.Lock()
        self.directive_task = huey.task(name="fleetprompt.run_directive", context=True)(self.run_directive)
        self.fanout_task = huey.task(name="fleetprompt.fanout")(self._run_fanout)
        huey.signal(SIGNAL_INTERRUPTED)(self._on_interrupted)

    # --- Dispatcher -----------------------------------------------------------------------------

    def enqueue_directive(self, tenant: str, directive_id: uuid.UUID, eta: datetime | None = None) -> None:
        """Never raises: the directive is already persisted, and the sweeper re-enqueues what was lost."""
        try:
            if eta is not None and eta > utcnow() and not self.huey.immediate:
                self.directive_task.schedule(args=(tenant, str(directive_id)), eta=eta)
            else:
                self.directive_task(tenant, str(directive_id))
        except Exception:
            log.exception("could not enqueue directive %s of %s; the sweeper will retry", directive_id, tenant)

    def enqueue_fanout(self, tenant: str, signal_id: uuid.UUID) -> None:
        try:
            self.fanout_task(tenant, str(signal_id))
        except Exception:
            log.exception("could not enqueue fanout of signal %s in %s; the sweeper will retry", signal_id, tenant)

    # --- task bodies ----------------------------------------------------------------------------

    def run_directive(self, tenant: str, directive_id: str, task: Task | None = None) -> None:
        """Claim and execute; a directive someone else claimed, or not yet due, is left alone."""
        claimed = self.ledger.claim(tenant, uuid.UUID(directive_id))
        if claimed is None:
            return
        task_id = task.id if task is not None else directive_id
        with self._claims_lock:
            self._claims[task_id] = (tenant, claimed)
        try:
            execute_directive(self.ledger, tenant, claimed)
        finally:
            with self._claims_lock:
                self._claims.pop(task_id, None)

    def _run_fanout(self, tenant: str, signal_id: str) -> None:
        deliver_fanout(self.ledger, self.fanout, tenant, uuid.UUID(signal_id))

    def _on_interrupted(self, signal: str, task: Task, *args: object) -> None:
        """SIGTERM mid-task: hand the claim back so another worker runs it now instead of after the lease."""
        with self._claims_lock:
            entry = self._claims.pop(task.id, None)
        if entry is None:
            return
        tenant, claimed = entry
        try:
            self.ledger.release(tenant, claimed)
        except Exception:
            log.exception("could not release directive %s; the sweeper will reclaim it", claimed.id)
