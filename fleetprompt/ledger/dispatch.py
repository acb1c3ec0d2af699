"""How the ledger hands work to the runner without importing it (the runner implements this protocol)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol


class Dispatcher(Protocol):
    def enqueue_directive(self, tenant: str, directive_id: uuid.UUID, eta: datetime | None = None) -> None: ...

    def enqueue_fanout(self, tenant: str, signal_id: uuid.UUID) -> None: ...


class NoDispatch:
    """For processes that only record (the CLI without a runner): the sweeper picks the work up later."""

    def enqueue_directive(self, tenant: str, directive_id: uuid.UUID, eta: datetime | None = None) -> None:
        return None

    def enqueue_fanout(self, tenant: str, signal_id: uuid.UUID) -> None:
        return None
