"""The ledger: signals (facts) and directives (intent). Tools call it; the runner reports outcomes to it."""

from __future__ import annotations

from fleetprompt.ledger.directives import DirectiveFilter, DirectiveLedger, Filed
from fleetprompt.ledger.registry import DirectiveType, directive_types, fanout_handlers
from fleetprompt.ledger.signals import SignalDraft, SignalFilter, emit, list_signals, mark_for_replay
from fleetprompt.ledger.timeline import TimelineEntry, subject_timeline
from fleetprompt.models.ledger import Signal


class Ledger(DirectiveLedger):
    """Directive lifecycle plus the signal reads and replay that need the same database and dispatcher."""

    def signals(
        self, tenant: str, filters: SignalFilter | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[Signal], str | None]:
        with self.db.reading(tenant) as session:
            return list_signals(session, filters or SignalFilter(), cursor, limit)

    def timeline(
        self, tenant: str, subject_type: str, subject_id: str, cursor: str | None = None, limit: int = 100
    ) -> tuple[list[TimelineEntry], str | None]:
        with self.db.reading(tenant) as session:
            return subject_timeline(session, subject_type, subject_id, cursor, limit)

    def replay(self, tenant: str, filters: SignalFilter) -> list[Signal]:
        """Re-run fanout for the selected signals (handlers are idempotent, so this is always safe)."""
        with self.transaction(tenant) as session:
            selected = mark_for_replay(session, filters, fanout_handlers)
        for signal in selected:
            self.dispatcher.enqueue_fanout(tenant, signal.id)
        return selected


__all__ = [
    "DirectiveFilter",
    "DirectiveType",
    "Filed",
    "Ledger",
    "SignalDraft",
    "SignalFilter",
    "TimelineEntry",
    "directive_types",
    "emit",
    "fanout_handlers",
]
