"""Shared tables: organizations (tenants), users, memberships and API tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from fleetprompt.models.base import UTCDateTime, utcnow, uuid7


class Tier(StrEnum):
    free = "free"
    pro = "pro"
    enterprise = "enterprise"


class Role(StrEnum):
    member = "member"
    admin = "admin"
    owner = "owner"

    @property
    def rank(self) -> int:
        return {"member": 1, "admin": 2, "owner": 3}[self.value]

    def allows(self, needed: Role) -> bool:
        """A role allows everything a lower role may do."""
        return self.rank >= needed.rank


class MembershipStatus(StrEnum):
    active = "active"
    disabled = "disabled"


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    slug: str = Field(max_length=40, unique=True, index=True)
    name: str = Field(max_length=200)
    tier: str = Field(default=Tier.free.value, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id", name="uq_memberships_org_user"),)

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organizations.id", ondelete="CASCADE", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    role: str = Field(default=Role.member.value, max_length=16)
    status: str = Field(default=MembershipStatus.active.value, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """Only the sha256 of a token is stored; the token itself is shown once when created."""

    __tablename__ = "api_tokens"

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organizations.id", ondelete="CASCADE", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    label: str | None = Field(default=None, max_length=200)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignInFailure(SQLModel, table=True):
    """One failed web sign-in: recent ones (by email, and by address) limit further attempts in every process."""

    __tablename__ = "sign_in_failures"

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    email: str = Field(max_length=320, index=True)
    client_ip: str = Field(max_length=64, index=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
