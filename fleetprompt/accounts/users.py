"""Users and their memberships; the only place that answers "which role does this user have here"."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cache

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.sql.expression import Select

from fleetprompt.accounts.context import OrgRef
from fleetprompt.accounts.organizations import get_organization
from fleetprompt.accounts.passwords import generate_password, hash_password
from fleetprompt.db.engine import Database
from fleetprompt.db.tenancy import validate_slug
from fleetprompt.errors import Conflict, InvalidInput, NotFound
from fleetprompt.models.base import utcnow
from fleetprompt.models.tenancy import Membership, MembershipStatus, Organization, Role, User

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 320 or not EMAIL_PATTERN.fullmatch(email):
        raise InvalidInput(f"invalid email address {email!r}")
    return email


def parse_role(role: str) -> Role:
    if role not in Role.__members__:
        raise InvalidInput(f"role must be one of owner, admin, member (got {role!r})")
    return Role(role)


@dataclass(frozen=True)
class AddedUser:
    user: User
    created: bool
    generated_password: str | None  # set only when a new user got a generated password


def add_user(
    db: Database, email: str, org_slug: str, role: str, password: str | None = None, name: str | None = None
) -> AddedUser:
    """Create the user if new (with `password`, or a generated one) and give them a membership.

    An existing user keeps their password: it is never changed here. A second membership in the same org is
    a conflict.
    """
    email = normalize_email(email)
    member_role = parse_role(role)
    org = get_organization(db, org_slug)
    try:
        with db.transaction() as session:
            user = session.exec(select(User).where(User.email == email)).first()
            created = user is None
            generated = None
            if user is None:
                if password is None:
                    password = generated = generate_password()
                user = User(email=email, password_hash=hash_password(password), name=name)
                session.add(user)
                session.flush()
            elif session.exec(
                select(Membership.id).where(Membership.org_id == org.id, Membership.user_id == user.id)
            ).first():
                raise Conflict(f"duplicate email: {email} already belongs to organization {org.slug!r}")
            session.add(Membership(org_id=org.id, user_id=user.id, role=member_role.value))
    except IntegrityError:
        raise Conflict(f"duplicate email: {email} already exists") from None
    return AddedUser(user, created, generated)


def get_user_by_email(db: Database, email: str) -> User:
    email = normalize_email(email)
    with db.reading() as session:
        user = session.exec(select(User).where(User.email == email)).first()
    if user is None:
        raise NotFound(f"unknown user {email!r}")
    return user


@cache
def _role_query() -> Select[tuple[str, str]]:
    """Built once: asked on every tool call (params: b_org, b_user)."""
    return select(Membership.role, Membership.status).where(
        Membership.org_id == bindparam("b_org"), Membership.user_id == bindparam("b_user")
    )


@cache
def _organization_and_role_query() -> Select[tuple[uuid.UUID, str, str, str | None, str | None]]:
    """Built once: asked before every directive runs (params: b_slug, b_user)."""
    joined = (Membership.org_id == Organization.id) & (Membership.user_id == bindparam("b_user"))
    return (
        select(Organization.id, Organization.slug, Organization.tier, Membership.role, Membership.status)
        .join(Membership, joined, isouter=True)
        .where(Organization.slug == bindparam("b_slug"))
    )


def _active_role(role: str | None, status: str | None) -> Role | None:
    return Role(role) if role is not None and status == MembershipStatus.active.value else None


def role_of(db: Database, org_id: uuid.UUID, user_id: uuid.UUID) -> Role | None:
    """The user's role in the org, or None when they have no active membership."""
    rows = db.read_rows(_role_query(), {"b_org": org_id, "b_user": user_id})
    return _active_role(*rows[0]) if rows else None


def organization_and_role(db: Database, slug: str, user_id: uuid.UUID | None) -> tuple[OrgRef, Role | None]:
    """The organization and the user's role in it (None without an active membership), in one query: the runner
    asks both before every directive."""
    validate_slug(slug)
    rows = db.read_rows(_organization_and_role_query(), {"b_slug": slug, "b_user": user_id})
    if not rows:
        raise NotFound(f"unknown organization {slug!r}")
    org_id, org_slug, tier, role, status = rows[0]
    return OrgRef(id=org_id, slug=org_slug, tier=tier), _active_role(role, status)


def set_membership(
    db: Database, org_id: uuid.UUID, user_id: uuid.UUID, *, role: str | None = None, status: str | None = None
) -> None:
    with db.transaction() as session:
        membership = session.exec(
            select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
        ).first()
        if membership is None:
            raise NotFound("no such membership")
        if role is not None:
            membership.role = parse_role(role).value
        if status is not None:
            if status not in MembershipStatus.__members__:
                raise InvalidInput("status must be active or disabled")
            membership.status = status
        membership.updated_at = utcnow()
