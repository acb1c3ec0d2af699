"""API tokens: `fp_` + random, shown once, stored as sha256; each is bound to one org and one user."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import col, select
from sqlmodel.sql.expression import Select

from fleetprompt.accounts.context import OrgRef
from fleetprompt.accounts.organizations import get_organization
from fleetprompt.accounts.users import get_user_by_email, role_of
from fleetprompt.db.engine import Database
from fleetprompt.errors import Forbidden, InvalidInput, NotFound
from fleetprompt.models.base import utcnow
from fleetprompt.models.tenancy import ApiToken, Membership, MembershipStatus, Organization, Role

TOKEN_PREFIX = "fp_"
LAST_USED_GRANULARITY = timedelta(minutes=1)


class InvalidToken(Forbidden):
    """Missing, malformed, unknown, revoked or expired token (the message says which, never echoes it)."""

    code = "invalid_token"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenIdentity:
    token_id: uuid.UUID
    org: OrgRef
    user_id: uuid.UUID
    role: Role


def create_token(
    db: Database, org_slug: str, email: str, label: str | None = None, expires_at: datetime | None = None
) -> str:
    """Returns the only copy of the token; the user must be an active member of the org."""
    org = get_organization(db, org_slug)
    user = get_user_by_email(db, email)
    if role_of(db, org.id, user.id) is None:
        raise NotFound(f"{user.email} is not an active member of organization {org.slug!r}")
    if label is not None and len(label) > 200:
        raise InvalidInput("label must be at most 200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as session:
        session.add(
            ApiToken(
                org_id=org.id,
                user_id=user.id,
                label=label,
                token_hash=hash_token(token),
                prefix=token[:8],
                expires_at=expires_at,
            )
        )
    return token


def revoke_token(db: Database, token_id: uuid.UUID) -> None:
    with db.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFound("unknown token")
        row.revoked_at = row.revoked_at or utcnow()


def authenticate_token(db: Database, token: str | None, now: datetime | None = None) -> TokenIdentity:
    """Resolve a bearer token to org, user and current role, or raise InvalidToken with the reason."""
    if not token:
        raise InvalidToken("missing API token")
    if not token.startswith(TOKEN_PREFIX) or len(token) < 20 or len(token) > 200:
        raise InvalidToken("malformed API token (expected fp_...)")
    now = now or utcnow()
    rows = db.read_rows(_token_query(), {"b_hash": hash_token(token)})
    if not rows:
        raise InvalidToken("unknown API token")
    found = rows[0]
    if found.revoked_at is not None:
        raise InvalidToken("API token has been revoked")
    if found.expires_at is not None and found.expires_at <= now:
        raise InvalidToken("API token has expired")
    if found.role is None or found.status != MembershipStatus.active.value:
        raise InvalidToken("the token's user is no longer an active member of its organization")
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_GRANULARITY:
        with db.transaction() as session:
            session.exec(update(ApiToken).where(col(ApiToken.id) == found.id).values(last_used_at=now))
    return TokenIdentity(
        token_id=found.id,
        org=OrgRef(id=found.org_id, slug=found.slug, tier=found.tier),
        user_id=found.user_id,
        role=Role(found.role),
    )


@cache
def _token_query() -> Select[Any]:
    """Token, organization and membership in one statement, built once: it runs on every MCP request."""
    membership = (Membership.org_id == ApiToken.org_id) & (Membership.user_id == ApiToken.user_id)
    return (
        select(
            ApiToken.id,
            ApiToken.org_id,
            ApiToken.user_id,
            ApiToken.last_used_at,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            Organization.slug,
            Organization.tier,
            Membership.role,
            Membership.status,
        )
        .join(Organization, col(Organization.id) == ApiToken.org_id)
        .join(Membership, membership, isouter=True)
        .where(ApiToken.token_hash == bindparam("b_hash"))
    )
