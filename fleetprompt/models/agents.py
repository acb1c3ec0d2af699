"""Tenant agents: provisioned by packages (name, description, system prompt, config, enabled)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleetprompt.models.base import TENANT_SCHEMA, JSONType, UTCDateTime, utcnow, uuid7


class Agent(SQLModel, table=True):
    __tablename__ = "agents"
    __table_args__ = (
        # A package provisions an agent name once; agents made by people (package_slug NULL) are not constrained.
        UniqueConstraint("package_slug", "name", name="uq_agents_package_name"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    name: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    system_prompt: str = Field(sa_type=Text)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    enabled: bool = True
    package_slug: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
