"""Running one directive and delivering one signal's fanout: the bodies of the Huey tasks."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import select

from fleetprompt.accounts.context import Actor, ActorKind, OrgRef
from fleetprompt.accounts.organizations import get_organization
from fleetprompt.errors import FleetPromptError, PermanentFailure
from fleetprompt.ledger import Ledger
from fleetprompt.ledger.directives import LeaseLost
from fleetprompt.ledger.execution import DirectiveRun, FanoutEvent
from fleetprompt.ledger.registry import FanoutRegistry
from fleetprompt.models.base import utcnow
from fleetprompt.models.ledger import Directive, Signal, SignalDelivery

log = logging.getLogger(__name__)
MAX_FANOUT_ATTEMPTS = 10


def internal_error(exc: BaseException, reference: str) -> str:
    """What is recorded about an unexpected error: its type and a log reference, never its text (which may
    carry SQL, bound values or other internals)."""
    return f"internal error ({type(exc).__name__}); see the worker log, reference {reference}"


def _requester(directive: Directive) -> Actor:
    return Actor(ActorKind(directive.requested_by_type), directive.requested_by or "unknown", "runner")


def _as_result(value: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return dict(value)


def execute_directive(ledger: Ledger, tenant: str, claimed: Directive) -> Directive | None:
    """Apply a claimed directive: domain change, domain signals and success commit together or not at all."""
    directive_type = ledger.registry.find(claimed.name)
    try:
        if directive_type is None or directive_type.handler is None:
            raise PermanentFailure(f"no handler is registered for directive type {claimed.name!r}")
        # Roles are checked again when running: the requester may have lost them since filing.
        org, role = ledger.organization_and_role(tenant, _requester(claimed))
        if not role.allows(directive_type.required_role):
            raise PermanentFailure(
                f"forbidden: the requester is now {role.value} in {tenant!r} and {claimed.name} needs "
                f"{directive_type.required_role.value}"
            )
        try:
            payload = directive_type.payload_model.model_validate(claimed.payload)
        except ValidationError as exc:
            raise PermanentFailure(f"stored payload no longer validates: {exc.errors()[0]['msg']}") from None
        with ledger.transaction(tenant) as session:
            run = DirectiveRun(org=org, session=session, directive=claimed, payload=payload, db=ledger.db, role=role)
            result = directive_type.handler(run)
            return ledger.succeed(session, claimed, _as_result(result))
    except LeaseLost:
        log.warning(
            "directive %s in %s: claim lost (released or reclaimed); its run was rolled back", claimed.id, tenant
        )
        return None
    except FleetPromptError as exc:
        # Errors a caller could act on (the world changed, a role was lost): retrying cannot help.
        message = exc.message if isinstance(exc, PermanentFailure) else f"{exc.code}: {exc.message}"
        return ledger.fail(tenant, claimed, message, retryable=False)
    except Exception as exc:
        reference = uuid.uuid4().hex[:12]
        log.exception("directive %s (%s) in %s raised [ref %s]", claimed.id, claimed.name, tenant, reference)
        return ledger.fail(tenant, claimed, internal_error(exc, reference), retryable=True)


def deliver_fanout(ledger: Ledger, registry: FanoutRegistry, tenant: str, signal_id: uuid.UUID) -> int:
    """Run each pending handler of one signal; each delivery commits with whatever its handler wrote."""
    with ledger.db.reading(tenant) as session:
        handlers = list(
            session.exec(
                select(SignalDelivery.handler).where(
                    SignalDelivery.signal_id == signal_id, SignalDelivery.status == "pending"
                )
            ).all()
        )
    if not handlers:
        return 0
    org: OrgRef = get_organization(ledger.db, tenant)
    delivered = 0
    for name in handlers:
        subscription = registry.get(name)
        if subscription is None:
            log.warning("fanout handler %s is not registered in this process; leaving it pending", name)
            continue
        try:
            with ledger.transaction(tenant) as session:
                row = session.exec(
                    select(SignalDelivery)
                    .where(
                        SignalDelivery.signal_id == signal_id,
                        SignalDelivery.handler == name,
                        SignalDelivery.status == "pending",
                    )
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    continue
                signal = session.get(Signal, signal_id)
                if signal is None:
                    continue
                subscription.handler(FanoutEvent(org=org, session=session, signal=signal, handler=name, db=ledger.db))
                row.status, row.attempts, row.delivered_at = "delivered", row.attempts + 1, utcnow()
                row.updated_at, row.last_error = utcnow(), None
            delivered += 1
        except Exception as exc:
            reference = uuid.uuid4().hex[:12]
            log.exception("fanout handler %s failed for signal %s in %s [ref %s]", name, signal_id, tenant, reference)
            with ledger.db.transaction(tenant) as session:
                row = session.get(SignalDelivery, (signal_id, name))
                if row is not None and row.status == "pending":
                    row.attempts += 1
                    row.last_error = internal_error(exc, reference)
                    row.updated_at = utcnow()
                    if row.attempts >= MAX_FANOUT_ATTEMPTS:
                        row.status = "failed"
    return delivered


def pending_fanout(ledger: Ledger, tenant: str, older_than_seconds: float, limit: int = 500) -> list[uuid.UUID]:
    """Signals with deliveries still pending after a while (a lost wake-up or a failing handler)."""
    stale = utcnow() - timedelta(seconds=older_than_seconds)
    with ledger.db.reading(tenant) as session:
        return list(
            session.exec(
                select(SignalDelivery.signal_id)
                .where(SignalDelivery.status == "pending", SignalDelivery.updated_at <= stale)
                .distinct()
                .limit(limit)
            ).all()
        )
