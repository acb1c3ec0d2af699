"""Directives: persisted, idempotent, role-checked intent, and every state change of their lifecycle.

awaiting_approval -> requested -> running -> succeeded | failed | canceled. Each step is a conditional
UPDATE plus its `directive.*` signal in one transaction, so a duplicate or late caller changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import and_, case, or_, update
from sqlmodel import Session, col, func, select

from fleetprompt.accounts.context import Actor, ActorKind, OrgRef, RequestContext
from fleetprompt.accounts.organizations import get_organization
from fleetprompt.accounts.users import organization_and_role, role_of
from fleetprompt.config import Settings
from fleetprompt.db.engine import Database, dialect_name, on_commit
from fleetprompt.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidState,
    NotFound,
    validation_message,
)
from fleetprompt.ledger import statements
from fleetprompt.ledger.dispatch import Dispatcher
from fleetprompt.ledger.pagination import clamp_limit, decode_cursor, encode_cursor
from fleetprompt.ledger.registry import DirectiveRegistry, DirectiveType, directive_types
from fleetprompt.ledger.signals import (
    SESSION_DISPATCHER,
    SESSION_TENANT,
    SignalDraft,
    emit,
    ensure_no_secrets,
)
from fleetprompt.models.base import utcnow, uuid7
from fleetprompt.models.ledger import Directive, DirectiveStatus, Signal
from fleetprompt.models.tenancy import Role

S = DirectiveStatus
PENDING = (S.awaiting_approval.value, S.requested.value, S.running.value)
MAX_KEY_LENGTH = 200
MAX_ERROR_LENGTH = 2000


class LeaseLost(Exception):
    """The claim being finished is no longer current: it was released or reclaimed by the sweeper."""


@dataclass(frozen=True)
class Filed:
    directive: Directive
    created: bool


class DirectiveFilter(BaseModel):
    status: str | None = None
    name: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    requested_by: str | None = None


def args_hash(name: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps({"name": name, "payload": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class DirectiveLedger:
    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        settings: Settings,
        registry: DirectiveRegistry = directive_types,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.settings = settings
        self.registry = registry
        self.clock = clock

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def transaction(self, tenant: str) -> Iterator[Session]:
        """A tenant transaction whose emitted signals wake fanout after commit."""
        with self.db.transaction(tenant) as session:
            session.info[SESSION_TENANT] = tenant
            session.info[SESSION_DISPATCHER] = self.dispatcher
            yield session

    def role(self, org: OrgRef, actor: Actor) -> Role:
        """The actor's current role, read from memberships (never from the request)."""
        if actor.kind in (ActorKind.operator, ActorKind.system):
            return Role.owner
        user_id = actor.user_id
        role = role_of(self.db, org.id, user_id) if user_id else None
        if role is None:
            raise Forbidden(f"{actor.kind} {actor.id} is not an active member of organization {org.slug!r}")
        return role

    def organization_and_role(self, tenant: str, actor: Actor) -> tuple[OrgRef, Role]:
        """`role` for a tenant named by slug, read together with its organization (what the runner needs)."""
        if actor.kind in (ActorKind.operator, ActorKind.system):
            return get_organization(self.db, tenant), Role.owner
        org, role = organization_and_role(self.db, tenant, actor.user_id)
        if role is None:
            raise Forbidden(f"{actor.kind} {actor.id} is not an active member of organization {org.slug!r}")
        return org, role

    def require_role(self, ctx: RequestContext, needed: Role, action: str) -> Role:
        role = self.role(ctx.org, ctx.actor)
        if not role.allows(needed):
            raise Forbidden(f"{action} needs the {needed.value} role; you are {role.value} in {ctx.org.slug!r}")
        return role

    def _type(self, name: str) -> DirectiveType:
        directive_type = self.registry.find(name)
        if directive_type is None:
            raise InvalidInput(f"unknown directive type {name!r}")
        return directive_type

    def _signal(
        self,
        session: Session,
        directive: Directive,
        event: str,
        actor: Actor,
        extra: dict[str, Any] | None = None,
        suffix: str = "",
    ) -> None:
        emit(
            session,
            SignalDraft(
                name=f"directive.{event}",
                source=actor.via[:64],
                payload={
                    "directive": directive.name,
                    "status": directive.status,
                    "subject_type": directive.subject_type,
                    "subject_id": directive.subject_id,
                    **(extra or {}),
                },
                dedupe_key=f"directive.{event}:{directive.id}:r{directive.run_number}{suffix}",
                actor_type=actor.kind.value,
                actor_id=actor.id,
                subject_type="directive",
                subject_id=str(directive.id),
                correlation_id=directive.correlation_id,
                causation_id=directive.causation_id if event == "requested" else str(directive.id),
            ),
        )

    def _enqueue_after_commit(self, session: Session, tenant: str, directive: Directive) -> None:
        directive_id, eta = directive.id, directive.scheduled_at
        on_commit(session, lambda: self.dispatcher.enqueue_directive(tenant, directive_id, eta))

    def _transition(
        self, session: Session, directive_id: uuid.UUID, where: list[Any], **values: Any
    ) -> Directive | None:
        """The conditional UPDATE behind a decision by a person (rare: built per call)."""
        statement = (
            update(statements.DIRECTIVES)
            .where(statements.DIRECTIVES.c.id == directive_id, *where)
            .values(updated_at=self.clock(), **values)
            .returning(*statements.DIRECTIVES.c)
        )
        return statements.directive_from(session.connection().execute(statement).first())

    def _fenced(self, session: Session, claimed: Directive, **values: Any) -> Directive | None:
        """Change a running directive only while it is still this claim (attempt and run identify one claim)."""
        params = {"b_id": claimed.id, "b_attempt": claimed.attempt, "b_run": claimed.run_number}
        row = session.connection().execute(statements.update_fenced(), {**params, "updated_at": self.clock(), **values})
        return statements.directive_from(row.first())

    def _failed_signal(
        self, session: Session, row: Directive, actor: Actor, error: str, retry_at: datetime | None, will_retry: bool
    ) -> None:
        extra = {
            "attempt": row.attempt,
            "error": error,
            "will_retry": will_retry,
            "retry_at": retry_at.isoformat() if retry_at else None,
        }
        self._signal(session, row, "failed", actor, extra, suffix=f":a{row.attempt}")

    # ------------------------------------------------------------------ filing

    def file(
        self,
        ctx: RequestContext,
        name: str,
        payload: BaseModel | dict[str, Any],
        *,
        idempotency_key: str | None = None,
        not_before: datetime | None = None,
        precheck: Callable[[Session], None] | None = None,
        role: Role | None = None,
    ) -> Filed:
        """Validate, check the role, then insert (or find by key) and emit directive.requested in one transaction.

        `role` is the actor's role as this same request just read it (the tool layer does): it saves reading the
        membership twice; it is still checked against the type's required role here, and again when it runs.

        `precheck` runs in that transaction only when a new directive is about to be created (a repeated request
        returns the existing directive whatever changed since); it raises to refuse, and nothing is written.
        """
        directive_type = self._type(name)
        try:
            raw = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
            if not isinstance(raw, dict):
                raise InvalidInput(f"{name} payload must be an object")
            unknown = sorted(set(raw) - set(directive_type.payload_model.model_fields))
            if unknown:
                raise InvalidInput(f"invalid {name} payload: unknown field(s) {', '.join(unknown)}")
            model = directive_type.payload_model.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInput(f"invalid {name} payload: {validation_message(exc)}") from None
        if role is None:
            self.require_role(ctx, directive_type.required_role, f"filing {name}")
        elif not role.allows(directive_type.required_role):
            raise Forbidden(
                f"filing {name} needs the {directive_type.required_role.value} role; "
                f"you are {role.value} in {ctx.org.slug!r}"
            )
        canonical = model.model_dump(mode="json")
        ensure_no_secrets(canonical, "directive payload")
        digest = args_hash(name, canonical)
        if idempotency_key is not None:
            idempotency_key = idempotency_key.strip()
            if not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH or not idempotency_key.isprintable():
                raise InvalidInput(f"idempotency_key must be 1 to {MAX_KEY_LENGTH} printable characters")
            if idempotency_key.startswith("auto:"):
                raise InvalidInput("idempotency keys starting with 'auto:' are reserved")
        if not_before is not None and not_before.tzinfo is None:
            raise InvalidInput("not_before must carry a timezone (UTC)")
        subject = directive_type.subject(model)
        now = self.clock()
        needs_approval = self.needs_approval(ctx.actor, directive_type, model)
        tenant = ctx.org.slug
        with self.transaction(tenant) as session:
            key = idempotency_key or self._derived_key(session, directive_type, digest, ctx.actor)
            if isinstance(key, Directive):
                return Filed(key, created=False)
            if idempotency_key is not None:
                existing = session.exec(select(Directive).where(Directive.idempotency_key == key)).first()
                if existing is not None:
                    return Filed(self._same_request(existing, name, digest, ctx.actor), created=False)
            if precheck is not None:
                precheck(session)
            values = {
                "id": uuid7(),
                "name": name,
                "payload": canonical,
                "idempotency_key": key,
                "args_hash": digest,
                "status": S.awaiting_approval.value if needs_approval else S.requested.value,
                "scheduled_at": max(not_before, now) if not_before else now,
                "attempt": 0,
                "max_attempts": directive_type.max_attempts,
                "run_number": 1,
                "requested_by": ctx.actor.id,
                "requested_by_type": ctx.actor.kind.value,
                "requested_via": ctx.actor.via[:64],
                "subject_type": subject[0] if subject else None,
                "subject_id": str(subject[1]) if subject else None,
                "correlation_id": ctx.correlation_id,
                "causation_id": ctx.causation_id,
                "created_at": now,
                "updated_at": now,
            }
            inserted = session.connection().execute(statements.insert_directive(dialect_name(session)), values)
            if inserted.first() is None:
                existing = session.exec(select(Directive).where(Directive.idempotency_key == key)).one()
                return Filed(self._same_request(existing, name, digest, ctx.actor), created=False)
            directive = statements.directive_snapshot(values)
            self._signal(session, directive, "requested", ctx.actor, {"idempotency_key": key})
            if directive.status == S.requested.value:
                self._enqueue_after_commit(session, tenant, directive)
        return Filed(directive, created=True)

    @staticmethod
    def needs_approval(actor: Actor, directive_type: DirectiveType, payload: BaseModel) -> bool:
        """High-impact directives an agent asks for wait for a person (people acting directly are the person)."""
        return actor.kind == ActorKind.agent and directive_type.is_high_impact(payload)

    @staticmethod
    def _same_request(existing: Directive, name: str, digest: str, actor: Actor) -> Directive:
        """A key names one requester's request: someone else's key is never theirs to repeat."""
        if existing.requested_by != actor.id:
            raise IdempotencyKeyReused(
                f"idempotency_key {existing.idempotency_key!r} was already used by another requester; "
                "use a new key for a new request"
            )
        if existing.name != name or existing.args_hash != digest:
            raise IdempotencyKeyReused(
                f"idempotency_key {existing.idempotency_key!r} was already used for a different request "
                f"({existing.name}, directive {existing.id}); use a new key for a new request"
            )
        return existing

    def _derived_key(
        self, session: Session, directive_type: DirectiveType, digest: str, actor: Actor
    ) -> str | Directive:
        """A key for callers that gave none: the same request while one is still pending is the same directive;
        once it has finished, asking again is a new directive (so lock -> unlock -> lock locks)."""
        scope = hashlib.sha256(f"{digest}:{actor.id}".encode()).hexdigest()[:32]
        prefix = f"auto:{directive_type.name}:{scope}:"
        params = {"b_hash": digest, "b_actor": actor.id}
        same_request = session.connection().execute(statements.same_request(), params).all()
        rows = [row for row in same_request if row.idempotency_key.startswith(prefix)]
        pending = statements.directive_from(next((row for row in rows if row.status in PENDING), None))
        if pending is not None and not (directive_type.sets_state and self._superseded(session, pending)):
            return pending
        return f"{prefix}{len(rows)}"

    @staticmethod
    def _superseded(session: Session, pending: Directive) -> bool:
        """Something else was asked of the same subject after `pending` (lock, unlock, then lock again)."""
        if pending.subject_type is None:
            return False
        newer = session.exec(
            select(Directive.id)
            .where(
                Directive.subject_type == pending.subject_type,
                Directive.subject_id == pending.subject_id,
                col(Directive.id) != pending.id,
                col(Directive.created_at) >= pending.created_at,
            )
            .limit(1)
        ).first()
        return newer is not None

    # ------------------------------------------------------------------ decisions by people

    def _load(self, session: Session, directive_id: uuid.UUID | str) -> Directive:
        try:
            key = directive_id if isinstance(directive_id, uuid.UUID) else uuid.UUID(str(directive_id))
        except ValueError:
            raise NotFound(f"directive {directive_id!r} not found") from None
        directive = session.get(Directive, key)
        if directive is None:
            raise NotFound(f"directive {directive_id} not found")
        return directive

    def approve(self, ctx: RequestContext, directive_id: uuid.UUID | str) -> Directive:
        return self._decide(ctx, directive_id, approve=True)

    def reject(self, ctx: RequestContext, directive_id: uuid.UUID | str, reason: str | None = None) -> Directive:
        return self._decide(ctx, directive_id, approve=False, reason=reason)

    def _decide(
        self, ctx: RequestContext, directive_id: uuid.UUID | str, *, approve: bool, reason: str | None = None
    ) -> Directive:
        verb = "approve" if approve else "reject"
        if not ctx.actor.kind.is_person:
            raise Forbidden(f"only a person can {verb} a directive (web UI or CLI), not an {ctx.actor.kind.value}")
        with self.transaction(ctx.org.slug) as session:
            directive = self._load(session, directive_id)
            needed = max(Role.admin, self._type(directive.name).required_role, key=lambda r: r.rank)
            self.require_role(ctx, needed, f"{verb} {directive.name}")
            now = self.clock()
            status = S.requested.value if approve else S.canceled.value
            changed = self._transition(
                session,
                directive.id,
                [Directive.status == S.awaiting_approval.value],
                status=status,
                decided_by=ctx.actor.id,
                decided_at=now,
                **({} if approve else {"completed_at": now, "last_error": f"rejected: {reason or 'no reason given'}"}),
            )
            if changed is None:
                raise InvalidState(f"directive {directive.id} is {directive.status}, not awaiting_approval")
            self._signal(
                session,
                changed,
                "approved" if approve else "rejected",
                ctx.actor,
                {"reason": reason} if reason else None,
            )
            if approve:
                self._enqueue_after_commit(session, ctx.org.slug, changed)
        return changed

    def cancel(self, ctx: RequestContext, directive_id: uuid.UUID | str, reason: str | None = None) -> Directive:
        """The requester or an admin may cancel anything that has not started running."""
        with self.transaction(ctx.org.slug) as session:
            directive = self._load(session, directive_id)
            if directive.requested_by != ctx.actor.id:
                self.require_role(ctx, Role.admin, "canceling someone else's directive")
            else:
                self.role(ctx.org, ctx.actor)
            now = self.clock()
            changed = self._transition(
                session,
                directive.id,
                [col(Directive.status).in_([S.awaiting_approval.value, S.requested.value])],
                status=S.canceled.value,
                completed_at=now,
                decided_by=ctx.actor.id,
                decided_at=now,
            )
            if changed is None:
                raise InvalidState(
                    f"directive {directive.id} is {directive.status}; only awaiting_approval or requested "
                    "directives can be canceled"
                )
            self._signal(session, changed, "canceled", ctx.actor, {"reason": reason} if reason else None)
        return changed

    def rerun(self, ctx: RequestContext, directive_id: uuid.UUID | str, request_key: str | None = None) -> Filed:
        """Owner/admin only: a finished directive runs again with the same id and key.

        `request_key` makes the rerun request itself repeatable: a second call with the same key finds the
        rerun it already started instead of starting another.
        """
        with self.transaction(ctx.org.slug) as session:
            directive = self._load(session, directive_id)
            directive_type = self._type(directive.name)
            needed = max(Role.admin, directive_type.required_role, key=lambda r: r.rank)
            self.require_role(ctx, needed, f"rerunning {directive.name}")
            if request_key is not None and self._rerun_requested(session, directive, request_key):
                return Filed(directive, created=False)
            now = self.clock()
            stored = directive_type.payload_model.model_validate(directive.payload)
            needs_approval = self.needs_approval(ctx.actor, directive_type, stored)
            changed = self._transition(
                session,
                directive.id,
                [col(Directive.status).in_([S.succeeded.value, S.failed.value, S.canceled.value])],
                status=S.awaiting_approval.value if needs_approval else S.requested.value,
                run_number=Directive.run_number + 1,
                attempt=0,
                scheduled_at=now,
                lease_expires_at=None,
                result=None,
                last_error=None,
                started_at=None,
                completed_at=None,
                decided_by=ctx.actor.id,
                decided_at=now,
            )
            if changed is None:
                raise InvalidState(f"directive {directive.id} is {directive.status}; only finished directives rerun")
            extra = {"rerun": True, "run_number": changed.run_number, "rerun_key": request_key}
            self._signal(session, changed, "requested", ctx.actor, extra)
            if changed.status == S.requested.value:
                self._enqueue_after_commit(session, ctx.org.slug, changed)
        return Filed(changed, created=True)

    @staticmethod
    def _rerun_requested(session: Session, directive: Directive, request_key: str) -> bool:
        found = session.exec(
            select(Signal.id)
            .where(
                Signal.name == "directive.requested",
                Signal.subject_type == "directive",
                Signal.subject_id == str(directive.id),
                Signal.payload["rerun_key"].as_string() == request_key,
            )
            .limit(1)
        ).first()
        return found is not None

    # ------------------------------------------------------------------ reads

    def find_by_key(self, tenant: str, idempotency_key: str) -> Directive | None:
        """The directive filed under a caller's key, if any (keys are unique per tenant)."""
        with self.db.reading(tenant) as session:
            return session.exec(select(Directive).where(Directive.idempotency_key == idempotency_key.strip())).first()

    def latest_filed(self, tenant: str, name: str, actor: Actor) -> uuid.UUID | None:
        """The newest directive of this type the actor filed: it changes with each filing (ids are time-ordered)."""
        with self.db.reading(tenant) as session:
            return session.exec(
                select(Directive.id)
                .where(Directive.name == name, Directive.requested_by == actor.id)
                .order_by(col(Directive.id).desc())
                .limit(1)
            ).first()

    def get(self, tenant: str, directive_id: uuid.UUID | str) -> Directive:
        with self.db.reading(tenant) as session:
            return self._load(session, directive_id)

    def list(
        self, tenant: str, filters: DirectiveFilter | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[Directive], str | None]:
        """Newest first, keyset-paginated."""
        limit = clamp_limit(limit)
        filters = filters or DirectiveFilter()
        query = select(Directive)
        if filters.status:
            if filters.status not in S.__members__:
                raise InvalidInput(f"status must be one of {', '.join(S.__members__)}")
            query = query.where(Directive.status == filters.status)
        for field in ("name", "subject_type", "subject_id", "requested_by"):
            value = getattr(filters, field)
            if value:
                query = query.where(getattr(Directive, field) == value)
        if cursor:
            when, last_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    Directive.created_at < when,
                    and_(Directive.created_at == when, col(Directive.id) < last_id),
                )
            )
        query = query.order_by(col(Directive.created_at).desc(), col(Directive.id).desc()).limit(limit + 1)
        with self.db.reading(tenant) as session:
            rows = list(session.exec(query).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return rows, next_cursor

    # ------------------------------------------------------------------ lifecycle (called by the runner)

    def claim(self, tenant: str, directive_id: uuid.UUID) -> Directive | None:
        """The single conditional UPDATE that makes a duplicate task a no-op; sets the lease."""
        with self.transaction(tenant) as session:
            now = self.clock()
            lease = now + timedelta(seconds=self.settings.lease_seconds)
            row = session.connection().execute(
                statements.claim_directive(), {"b_id": directive_id, "b_now": now, "b_lease": lease}
            )
            claimed = statements.directive_from(row.first())
            if claimed is not None:
                self._signal(
                    session,
                    claimed,
                    "started",
                    Actor.system(),
                    {"attempt": claimed.attempt},
                    suffix=f":a{claimed.attempt}",
                )
        return claimed

    def succeed(self, session: Session, claimed: Directive, result: dict[str, Any]) -> Directive:
        """Fenced by (attempt, run_number): a claim that was released or reclaimed meanwhile raises LeaseLost,
        which rolls back the caller's transaction, domain change included."""
        ensure_no_secrets(result, "directive result")
        now = self.clock()
        done = self._fenced(
            session,
            claimed,
            status=S.succeeded.value,
            result=result,
            last_error=None,
            lease_expires_at=None,
            completed_at=now,
        )
        if done is None:
            raise LeaseLost(f"directive {claimed.id} attempt {claimed.attempt} was released or reclaimed")
        self._signal(session, done, "succeeded", Actor.system(), {"attempt": done.attempt, "result": result})
        return done

    def backoff(self, attempt: int) -> timedelta:
        seconds = min(self.settings.retry_base_seconds * 2 ** max(attempt - 1, 0), self.settings.retry_max_seconds)
        return timedelta(seconds=seconds)

    def fail(self, tenant: str, claimed: Directive, error: str, *, retryable: bool) -> Directive | None:
        """Record the error and emit directive.failed; retry later with backoff, or stop at max_attempts."""
        error = error[:MAX_ERROR_LENGTH]
        with self.transaction(tenant) as session:
            now = self.clock()
            will_retry = retryable and claimed.attempt < claimed.max_attempts
            retry_at = now + self.backoff(claimed.attempt) if will_retry else None
            values: dict[str, Any] = {"last_error": error, "lease_expires_at": None}
            if will_retry:
                values.update(status=S.requested.value, scheduled_at=retry_at)
            else:
                values.update(status=S.failed.value, completed_at=now)
            changed = self._fenced(session, claimed, **values)
            if changed is None:
                return None
            self._failed_signal(session, changed, Actor.system(), error, retry_at, will_retry)
            if will_retry:
                self._enqueue_after_commit(session, tenant, changed)
        return changed

    def release(self, tenant: str, claimed: Directive) -> Directive | None:
        """Hand back a claim whose worker is shutting down, so another worker runs it now, not after the lease.

        The attempt number stays (it fences the interrupted run); an interruption never uses up the last attempt.
        """
        error = "interrupted: the worker running it shut down"
        with self.transaction(tenant) as session:
            released = self._transition(
                session,
                claimed.id,
                [
                    Directive.status == S.running.value,
                    Directive.attempt == claimed.attempt,
                    Directive.run_number == claimed.run_number,
                ],
                status=S.requested.value,
                lease_expires_at=None,
                scheduled_at=self.clock(),
                last_error=error,
                max_attempts=case(
                    (Directive.attempt >= Directive.max_attempts, Directive.attempt + 1), else_=Directive.max_attempts
                ),
            )
            if released is not None:
                self._failed_signal(session, released, Actor.system("worker"), error, None, True)
                self._enqueue_after_commit(session, tenant, released)
        return released

    def reclaim_expired(self, tenant: str, batch: int = 200) -> list[Directive]:
        """Running directives whose lease ran out (their worker died): back to requested, or failed when spent."""
        now = self.clock()
        with self.transaction(tenant) as session:
            expired = (
                select(Directive.id)
                .where(Directive.status == S.running.value, col(Directive.lease_expires_at) < now)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
            spent = Directive.attempt >= Directive.max_attempts
            error = "lease expired: the worker running it stopped or exceeded the lease"
            rows = list(
                session.exec(
                    update(Directive)
                    .where(col(Directive.id).in_(expired.scalar_subquery()))
                    .values(
                        status=case((spent, S.failed.value), else_=S.requested.value),
                        completed_at=case((spent, now), else_=None),
                        scheduled_at=now,
                        lease_expires_at=None,
                        last_error=error,
                        updated_at=now,
                    )
                    .returning(Directive)
                    .execution_options(synchronize_session=False, populate_existing=True)
                ).scalars()
            )
            for row in rows:
                will_retry = row.status == S.requested.value
                self._failed_signal(session, row, Actor.system("sweeper"), error, None, will_retry)
                if will_retry:
                    self._enqueue_after_commit(session, tenant, row)
        return rows

    def requeue_unpicked(self, tenant: str, batch: int = 500) -> list[uuid.UUID]:
        """Due `requested` directives that no task has claimed for a while (a lost enqueue): enqueue again."""
        now = self.clock()
        stale = now - timedelta(seconds=self.settings.requeue_after)
        with self.transaction(tenant) as session:
            ids = list(
                session.exec(
                    select(Directive.id)
                    .where(
                        Directive.status == S.requested.value,
                        col(Directive.scheduled_at) <= stale,
                        col(Directive.updated_at) <= stale,
                    )
                    .limit(batch)
                ).all()
            )
            if ids:
                session.exec(
                    update(Directive)
                    .where(col(Directive.id).in_(ids), Directive.status == S.requested.value)
                    .values(updated_at=now)
                    .execution_options(synchronize_session=False)
                )
        for directive_id in ids:
            self.dispatcher.enqueue_directive(tenant, directive_id, None)
        return ids

    def counts(self, tenant: str) -> dict[str, int]:
        with self.db.reading(tenant) as session:
            rows = session.exec(select(Directive.status, func.count()).group_by(Directive.status)).all()
        return {status: count for status, count in rows}
