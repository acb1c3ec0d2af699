"""What a directive handler or fanout handler receives: the open transaction and the facts about the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from fleetprompt.accounts.context import OrgRef
from fleetprompt.db.engine import Database
from fleetprompt.ledger.signals import EmitResult, SignalDraft, emit
from fleetprompt.models.ledger import Directive, Signal
from fleetprompt.models.tenancy import Role


@dataclass
class DirectiveRun:
    """A handler applies its change through `session` and states facts through `emit`; both commit together.

    `db` reaches the shared tables (the package registry); `role` is the requester's role, checked again now.
    """

    org: OrgRef
    session: Session
    directive: Directive
    payload: BaseModel
    db: Database
    role: Role

    def emit(
        self,
        name: str,
        payload: dict[str, Any] | None = None,
        *,
        subject: tuple[str, str] | None = None,
        dedupe_key: str | None = None,
    ) -> EmitResult:
        """A domain signal caused by this directive, on behalf of whoever requested it."""
        directive = self.directive
        subject_type = subject[0] if subject else directive.subject_type
        subject_id = subject[1] if subject else directive.subject_id
        return emit(
            self.session,
            SignalDraft(
                name=name,
                source="runner",
                payload=payload or {},
                dedupe_key=dedupe_key or f"{name}:{subject_type}:{subject_id}:{directive.id}:r{directive.run_number}",
                actor_type=directive.requested_by_type,
                actor_id=directive.requested_by,
                subject_type=subject_type,
                subject_id=subject_id,
                correlation_id=directive.correlation_id,
                causation_id=str(directive.id),
                metadata={"directive": directive.name},
            ),
        )


@dataclass
class FanoutEvent:
    """One delivery of one signal to one handler; the handler's writes commit with the delivery mark."""

    org: OrgRef
    session: Session
    signal: Signal
    handler: str
    db: Database
