"""Marketplace tables. Shared: the package registry (several versions per slug), reviews, install records.
Tenant: installations and their resources (provenance: what each install created)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleetprompt.models.base import TENANT_SCHEMA, JSONType, UTCDateTime, utcnow, uuid7

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
VERSION_PATTERN = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"
TOOL_NAME_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"


class PackageCategory(StrEnum):
    operations = "operations"
    customer_service = "customer_service"
    sales = "sales"
    data = "data"
    development = "development"
    marketing = "marketing"
    finance = "finance"
    hr = "hr"
    community = "community"


class PricingModel(StrEnum):
    free = "free"
    freemium = "freemium"
    paid = "paid"
    revenue_share = "revenue_share"


TIER_RANK = {"free": 0, "pro": 1, "enterprise": 2}


def tier_allows(org_tier: str, min_tier: str) -> bool:
    return TIER_RANK.get(org_tier, 0) >= TIER_RANK.get(min_tier, 0)


def version_key(version: str) -> tuple[int, int, int]:
    """Semantic versions compare numerically: 1.10.0 is newer than 1.9.0."""
    if not re.match(VERSION_PATTERN, version):
        raise ValueError(f"{version!r} is not a version like 1.2.0")
    major, minor, patch = version.split(".")
    return int(major), int(minor), int(patch)


# ---------------------------------------------------------------- manifests (validated JSON in package_versions)


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(min_length=1, max_length=100)
    description: str | None = PydanticField(default=None, max_length=1000)
    system_prompt: str = PydanticField(min_length=1, max_length=20_000)
    config: dict[str, Any] = PydanticField(default_factory=dict)
    tools: list[str] = PydanticField(default_factory=list)


class CategorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = PydanticField(pattern=SLUG_PATTERN, max_length=64)
    name: str = PydanticField(min_length=1, max_length=100)
    description: str | None = PydanticField(default=None, max_length=1000)


class PackageManifest(BaseModel):
    """What installing one version provisions. Agents are identified by name, categories by slug."""

    model_config = ConfigDict(extra="forbid")

    agents: list[AgentSpec] = PydanticField(default_factory=list)
    forum_categories: list[CategorySpec] = PydanticField(default_factory=list)
    tool_allowlist: list[str] = PydanticField(default_factory=list)

    @field_validator("tool_allowlist")
    @classmethod
    def _tool_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not re.match(TOOL_NAME_PATTERN, n)]
        if bad:
            raise ValueError(f"invalid tool names: {', '.join(bad)}")
        return sorted(set(names))

    @model_validator(mode="after")
    def _unique_and_allowed(self) -> PackageManifest:
        names = [a.name for a in self.agents]
        slugs = [c.slug for c in self.forum_categories]
        if len(set(names)) != len(names):
            raise ValueError("agent names must be unique within a manifest")
        if len(set(slugs)) != len(slugs):
            raise ValueError("forum category slugs must be unique within a manifest")
        for agent in self.agents:
            outside = sorted(set(agent.tools) - set(self.tool_allowlist))
            if outside:
                raise ValueError(f"agent {agent.name!r} uses tools outside the allowlist: {', '.join(outside)}")
        return self


# ---------------------------------------------------------------- shared registry


class Package(SQLModel, table=True):
    __tablename__ = "packages"
    __table_args__ = (
        Index("ix_packages_listing", "is_published", "install_count"),
        CheckConstraint("min_tier IN ('free', 'pro', 'enterprise')", name="ck_packages_min_tier"),
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    long_description: str | None = Field(default=None, sa_type=Text)
    category: str | None = Field(default=None, max_length=32)
    author: str | None = Field(default=None, max_length=200)
    license: str = Field(default="MIT", max_length=64)
    pricing_model: str = Field(default=PricingModel.free.value, max_length=32)
    pricing_config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    min_tier: str = Field(default="free", max_length=16)
    is_published: bool = False
    is_featured: bool = False
    is_verified: bool = False
    install_count: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PackageVersion(SQLModel, table=True):
    __tablename__ = "package_versions"
    __table_args__ = (UniqueConstraint("package_id", "version", name="uq_package_versions_package_version"),)

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    package_id: uuid.UUID = Field(foreign_key="packages.id", ondelete="CASCADE", index=True)
    version: str = Field(max_length=32)
    manifest: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    changelog: str | None = Field(default=None, sa_type=Text)
    is_published: bool = True
    published_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PackageReview(SQLModel, table=True):
    __tablename__ = "package_reviews"
    __table_args__ = (
        UniqueConstraint("package_id", "user_id", name="uq_package_reviews_package_user"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="ck_package_reviews_rating"),
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    package_id: uuid.UUID = Field(foreign_key="packages.id", ondelete="CASCADE", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    rating: int
    title: str | None = Field(default=None, max_length=200)
    content: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PackageInstallRecord(SQLModel, table=True):
    """One row per installation ever made (not per run): `packages.install_count` counts these."""

    __tablename__ = "package_install_records"

    installation_id: uuid.UUID = Field(primary_key=True)
    package_id: uuid.UUID = Field(foreign_key="packages.id", ondelete="CASCADE", index=True)
    org_id: uuid.UUID = Field(foreign_key="organizations.id", ondelete="CASCADE", index=True)
    version: str = Field(max_length=32)
    installed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# ---------------------------------------------------------------- tenant


class ResourceKind(StrEnum):
    agent = "agent"
    forum_category = "forum_category"


class Installation(SQLModel, table=True):
    __tablename__ = "package_installations"
    __table_args__ = {"schema": TENANT_SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    package_slug: str = Field(max_length=64, unique=True)
    package_name: str = Field(max_length=200)
    package_version: str = Field(max_length=32)
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    tool_allowlist: list[str] = Field(default_factory=list, sa_type=JSONType)
    installed_by: str | None = Field(default=None, max_length=255)
    created_by_directive: uuid.UUID | None = Field(default=None)
    installed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InstallationResource(SQLModel, table=True):
    """Provenance: a resource an installation provisioned, and whether it created it or found it already there."""

    __tablename__ = "installation_resources"
    __table_args__ = (
        UniqueConstraint("installation_id", "kind", "key", name="uq_installation_resources_key"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    installation_id: uuid.UUID = Field(index=True)
    kind: str = Field(max_length=32)
    key: str = Field(max_length=100)
    resource_id: uuid.UUID
    created: bool
    package_version: str = Field(max_length=32)
    directive_id: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class VersionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = PydanticField(pattern=VERSION_PATTERN, max_length=32)
    manifest: PackageManifest = PydanticField(default_factory=PackageManifest)
    changelog: str | None = None
    is_published: bool = True


class PackageSpec(BaseModel):
    """A package as a publisher describes it (the demo catalog, `package publish`), validated before it is stored."""

    model_config = ConfigDict(extra="forbid")

    slug: str = PydanticField(pattern=SLUG_PATTERN, max_length=64)
    name: str = PydanticField(min_length=1, max_length=200)
    description: str = PydanticField(default="", max_length=1000)
    long_description: str | None = None
    category: PackageCategory | None = None
    author: str | None = PydanticField(default=None, max_length=200)
    license: str = PydanticField(default="MIT", max_length=64)
    pricing_model: PricingModel = PricingModel.free
    pricing_config: dict[str, Any] = PydanticField(default_factory=dict)
    min_tier: str = PydanticField(default="free", pattern=r"^(free|pro|enterprise)$")
    is_published: bool = True
    is_featured: bool = False
    is_verified: bool = False
    versions: list[VersionSpec] = PydanticField(min_length=1)

    @field_validator("versions")
    @classmethod
    def _unique_versions(cls, versions: list[VersionSpec]) -> list[VersionSpec]:
        if len({v.version for v in versions}) != len(versions):
            raise ValueError("versions must be unique")
        return versions
