"""Password sign-in for the web UI, with a limit on failed attempts that holds across processes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, func, text
from sqlmodel import col, select
from sqlmodel.sql.expression import Select

from fleetprompt.accounts.context import OrgRef
from fleetprompt.accounts.passwords import verify_password
from fleetprompt.db.engine import Database
from fleetprompt.errors import Forbidden, InvalidInput, TooManyAttempts
from fleetprompt.models.base import utcnow
from fleetprompt.models.tenancy import Membership, MembershipStatus, Organization, Role, SignInFailure, User

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 20
WRONG_CREDENTIALS = "wrong email or password"
# Verified when the email is unknown, so both cases take as long (no probing for which emails exist).
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$qf83Voy4WwIEVBvojVo7aw$0hhqbYx4sqqCkk3OqfFrFkVwwL5rcrv6A6GnS5C86cA"


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, and the organization the session acts for."""

    user_id: uuid.UUID
    email: str
    name: str | None
    org: OrgRef
    role: Role

    @property
    def is_admin(self) -> bool:
        """Owners and admins approve, reject, cancel and rerun directives and replay signals."""
        return self.role.allows(Role.admin)


class WrongCredentials(Forbidden):
    """Wrong email or password (never which of the two)."""


def memberships_of(db: Database, user_id: uuid.UUID) -> list[tuple[OrgRef, Role]]:
    """The user's active memberships, by organization slug."""
    with db.reading() as session:
        rows = session.exec(
            select(Organization, Membership)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == user_id, Membership.status == MembershipStatus.active.value)
            .order_by(Organization.slug)
        ).all()
    return [(OrgRef(id=org.id, slug=org.slug, tier=org.tier), Role(m.role)) for org, m in rows]


def session_person(db: Database, user_id: uuid.UUID, org_slug: str) -> SignedIn | None:
    """The signed-in person as they are now (a removed or disabled membership ends the session)."""
    rows = db.read_rows(_session_person_query(), {"b_user": user_id, "b_slug": org_slug})
    if not rows:
        return None
    found = rows[0]
    org = OrgRef(id=found.org_id, slug=found.slug, tier=found.tier)
    return SignedIn(user_id=found.id, email=found.email, name=found.name, org=org, role=Role(found.role))


@cache
def _session_person_query() -> Select[Any]:
    """User, organization and active membership in one statement, built once: it runs on every signed-in request."""
    return (
        select(
            User.id,
            User.email,
            User.name,
            Organization.id.label("org_id"),
            Organization.slug,
            Organization.tier,
            Membership.role,
        )
        .join(Membership, col(Membership.user_id) == User.id)
        .join(Organization, col(Organization.id) == Membership.org_id)
        .where(
            User.id == bindparam("b_user"),
            Organization.slug == bindparam("b_slug"),
            Membership.status == MembershipStatus.active.value,
        )
    )


def sign_in(
    db: Database, email: str, password: str, client_ip: str, org_slug: str | None = None, now: datetime | None = None
) -> SignedIn:
    """Check the password; refuse while too many recent failures exist for this email or this address."""
    now = now or utcnow()
    email = (email or "").strip().lower()
    client_ip = (client_ip or "unknown")[:64]
    if not email or len(email) > 320 or not password or len(password) > 1024:
        raise InvalidInput("enter your email and password")
    attempt = _reserve_attempt(db, email, client_ip, now)
    with db.reading() as session:
        user = session.exec(select(User).where(User.email == email)).first()
    password_ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not password_ok:
        raise WrongCredentials(WRONG_CREDENTIALS)  # the reserved attempt stays: it is this failure
    memberships = memberships_of(db, user.id)
    if org_slug:
        memberships = [(org, role) for org, role in memberships if org.slug == org_slug]
    if not memberships:
        raise WrongCredentials(
            f"you are not a member of {org_slug!r}" if org_slug else "your account has no active membership"
        )
    with db.transaction() as session:
        session.execute(delete(SignInFailure).where(SignInFailure.email == email))
        session.execute(delete(SignInFailure).where(SignInFailure.id == attempt))
    org, role = memberships[0]
    return SignedIn(user_id=user.id, email=user.email, name=user.name, org=org, role=role)


def _reserve_attempt(db: Database, email: str, client_ip: str, now: datetime) -> uuid.UUID:
    """Count and record the attempt in one locked step, before the password is checked, so parallel guesses
    cannot all pass the check at once. A successful sign-in removes the record again."""
    since = now - FAILURE_WINDOW
    with db.transaction() as session:
        if db.is_postgres:  # SQLite's BEGIN IMMEDIATE already serializes writers
            for key in (f"sign-in:email:{email}", f"sign-in:address:{client_ip}"):  # fixed order: no deadlock
                session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        session.execute(delete(SignInFailure).where(SignInFailure.occurred_at < since))
        limits = (
            (SignInFailure.email == email, MAX_FAILURES_PER_EMAIL),
            (SignInFailure.client_ip == client_ip, MAX_FAILURES_PER_ADDRESS),
        )
        for condition, limit in limits:
            count, oldest = session.exec(
                select(func.count(), func.min(SignInFailure.occurred_at)).where(
                    condition, SignInFailure.occurred_at > since
                )
            ).one()
            if count >= limit:
                wait = max(1, int((oldest + FAILURE_WINDOW - now).total_seconds()) + 1)
                minutes = (wait + 59) // 60
                raise TooManyAttempts(
                    f"too many failed sign-ins; try again in {minutes} minute{'s' if minutes != 1 else ''}", wait
                )
        attempt = SignInFailure(email=email, client_ip=client_ip, occurred_at=now)
        session.add(attempt)
        session.flush()
        return attempt.id
