"""What a tool runs with: the authenticated request, the ledger, the caller's role, and a progress sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import BaseModel
from sqlmodel import Session

from fleetprompt.accounts.context import Actor, OrgRef, RequestContext
from fleetprompt.ledger import Ledger
from fleetprompt.models.tenancy import Role


class Progress(BaseModel):
    """A directive the tool is waiting on moved to a new state (MCP turns these into progress notifications)."""

    directive_id: str
    status: str
    step: int
    message: str


ProgressSink = Callable[[Progress], None]


@dataclass(frozen=True)
class ToolContext:
    request: RequestContext
    ledger: Ledger
    role: Role
    progress: ProgressSink | None = None
    # The person the calling agent speaks for, when they confirmed this very call (MCP elicitation):
    # a high-impact directive it files is approved by them at once instead of waiting.
    confirmed_by: Actor | None = None

    @property
    def org(self) -> OrgRef:
        return self.request.org

    @property
    def actor(self) -> Actor:
        return self.request.actor

    @property
    def is_admin(self) -> bool:
        return self.role.allows(Role.admin)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only snapshot of this organization's tables (and only this organization's)."""
        with self.ledger.db.reading(self.org.slug) as session:
            yield session

    @contextmanager
    def reading_shared(self) -> Iterator[Session]:
        """The shared tables: the package registry."""
        with self.ledger.db.reading() as session:
            yield session

    def report(self, update: Progress) -> None:
        if self.progress is not None:
            self.progress(update)
