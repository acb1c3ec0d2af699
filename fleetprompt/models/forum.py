"""Tenant forum tables: categories, threads and posts (reference §1.2, plus metadata, edited_at and provenance)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from fleetprompt.models.base import TENANT_SCHEMA, JSONType, UTCDateTime, utcnow, uuid7

TITLE_MAX = 200
POST_MAX = 20_000


class CategoryStatus(StrEnum):
    active = "active"
    archived = "archived"


class ThreadStatus(StrEnum):
    open = "open"
    locked = "locked"
    archived = "archived"


class PostStatus(StrEnum):
    published = "published"
    hidden = "hidden"
    deleted = "deleted"


class AuthorType(StrEnum):
    human = "human"
    agent = "agent"
    system = "system"


def _metadata_column() -> Any:
    return Field(default_factory=dict, sa_column=Column("metadata", JSONType, nullable=False, default=dict))


class ForumCategory(SQLModel, table=True):
    __tablename__ = "forum_categories"
    __table_args__ = {"schema": TENANT_SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    status: str = Field(default=CategoryStatus.active.value, max_length=16)
    # The package whose installation created it (None when a person did): purge and upgrade use it.
    package_slug: str | None = Field(default=None, max_length=64)
    created_by_directive: uuid.UUID | None = Field(default=None, unique=True)
    meta: dict[str, Any] = _metadata_column()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ForumThread(SQLModel, table=True):
    __tablename__ = "forum_threads"
    __table_args__ = (
        Index("ix_forum_threads_category", "category_id", "created_at"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    category_id: uuid.UUID
    title: str = Field(max_length=TITLE_MAX)
    status: str = Field(default=ThreadStatus.open.value, max_length=16)
    author_type: str = Field(default=AuthorType.human.value, max_length=16)
    author_id: str = Field(max_length=255)
    created_by_directive: uuid.UUID | None = Field(default=None, unique=True)
    meta: dict[str, Any] = _metadata_column()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ForumPost(SQLModel, table=True):
    __tablename__ = "forum_posts"
    __table_args__ = (
        Index("ix_forum_posts_thread", "thread_id", "created_at"),
        {"schema": TENANT_SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    thread_id: uuid.UUID
    content: str = Field(sa_type=Text)
    status: str = Field(default=PostStatus.published.value, max_length=16)
    author_type: str = Field(default=AuthorType.human.value, max_length=16)
    author_id: str = Field(max_length=255)
    created_by_directive: uuid.UUID | None = Field(default=None, unique=True)
    meta: dict[str, Any] = _metadata_column()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    edited_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
