"""Forum directive types. Limits live in the payload models, so filing and running enforce the same ones."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import bindparam
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from fleetprompt.db.rows import fetch
from fleetprompt.errors import Conflict, Forbidden, InvalidState, NotFound
from fleetprompt.ledger.registry import DirectiveType, directive_types
from fleetprompt.ledger.types.common import Slug
from fleetprompt.models.forum import (
    POST_MAX,
    TITLE_MAX,
    CategoryStatus,
    ForumCategory,
    ForumPost,
    ForumThread,
    PostStatus,
    ThreadStatus,
)
from fleetprompt.models.tenancy import Role

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX)]
PostContent = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=POST_MAX)]
CategorySlug = Slug
CategoryName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryCreate(_Payload):
    slug: CategorySlug
    name: CategoryName
    description: Description | None = None


class CategoryRef(_Payload):
    category_id: uuid.UUID


class ThreadCreate(_Payload):
    category_id: uuid.UUID
    title: Title
    content: PostContent


class ThreadRef(_Payload):
    thread_id: uuid.UUID


class PostCreate(_Payload):
    thread_id: uuid.UUID
    content: PostContent


class PostEdit(_Payload):
    post_id: uuid.UUID
    content: PostContent


class PostRef(_Payload):
    post_id: uuid.UUID


def _category(p: CategoryRef | ThreadCreate) -> tuple[str, str]:
    return ("forum.category", str(p.category_id))


def _thread(p: ThreadRef | PostCreate) -> tuple[str, str]:
    return ("forum.thread", str(p.thread_id))


def _post(p: PostRef | PostEdit) -> tuple[str, str]:
    return ("forum.post", str(p.post_id))


CATEGORY_CREATE = directive_types.register(
    DirectiveType("forum.category.create", CategoryCreate, Role.admin, description="Create a forum category.")
)
CATEGORY_ARCHIVE = directive_types.register(
    DirectiveType(
        "forum.category.archive",
        CategoryRef,
        Role.admin,
        subject=_category,
        sets_state=True,
        description="Archive one.",
    )
)
THREAD_CREATE = directive_types.register(
    DirectiveType("forum.thread.create", ThreadCreate, Role.member, subject=_category, description="New thread.")
)
THREAD_LOCK = directive_types.register(
    DirectiveType(
        "forum.thread.lock", ThreadRef, Role.admin, subject=_thread, sets_state=True, description="Lock a thread."
    )
)
THREAD_UNLOCK = directive_types.register(
    DirectiveType(
        "forum.thread.unlock", ThreadRef, Role.admin, subject=_thread, sets_state=True, description="Reopen a thread."
    )
)
POST_CREATE = directive_types.register(
    DirectiveType("forum.post.create", PostCreate, Role.member, subject=_thread, description="Reply to a thread.")
)
# Members may edit their own posts; the handler allows others' posts only to admins.
POST_EDIT = directive_types.register(
    DirectiveType("forum.post.edit", PostEdit, Role.member, subject=_post, sets_state=True, description="Edit a post.")
)
POST_HIDE = directive_types.register(
    DirectiveType("forum.post.hide", PostRef, Role.admin, subject=_post, sets_state=True, description="Hide a post.")
)
POST_UNHIDE = directive_types.register(
    DirectiveType(
        "forum.post.unhide", PostRef, Role.admin, subject=_post, sets_state=True, description="Unhide a post."
    )
)
POST_DELETE = directive_types.register(
    DirectiveType(
        "forum.post.delete",
        PostRef,
        Role.admin,
        high_impact=True,
        subject=_post,
        sets_state=True,
        description="Delete a post.",
    )
)


# ---------------------------------------------------------------- preconditions
# Checked when filing (a tool error) and again when running (the directive fails with the same message).
# `lock` takes row locks when running, so a concurrent lock or hide cannot slip between check and write.


def active_category(session: Session, category_id: uuid.UUID, *, lock: bool = False) -> ForumCategory:
    """With `lock`, the category stays active (not archived, not purged) until the caller commits."""
    category = fetch(session, ForumCategory, category_id, "forum category", share=lock)
    if category.status != CategoryStatus.active:
        raise InvalidState(f"forum category {category.slug!r} is archived; new threads need an active category")
    return category


def unarchived_category(session: Session, category_id: uuid.UUID) -> ForumCategory:
    category = fetch(session, ForumCategory, category_id, "forum category")
    if category.status == CategoryStatus.archived:
        raise InvalidState(f"forum category {category.slug!r} is already archived")
    return category


def unused_category_slug(session: Session, slug: str) -> None:
    if session.exec(select(ForumCategory.id).where(ForumCategory.slug == slug)).first() is not None:
        raise Conflict(f"a forum category with slug {slug!r} already exists; choose another slug")


@cache
def _open_thread_query(lock: bool) -> Select[tuple[str, str, str]]:
    """The thread's and its category's status in one prebuilt read (replies run it twice each: filing, running)."""
    query = (
        select(ForumThread.status, ForumCategory.status, ForumCategory.slug)
        .join(ForumCategory, col(ForumCategory.id) == ForumThread.category_id)
        .where(ForumThread.id == bindparam("b_thread"))
    )
    return query.with_for_update(read=True) if lock else query


def open_thread(session: Session, thread_id: uuid.UUID, *, lock: bool = False) -> None:
    """Refuse unless the thread takes replies. With `lock`, thread and category stay open until the caller commits
    (shared locks: replies don't queue)."""
    row = session.connection().execute(_open_thread_query(lock), {"b_thread": thread_id}).first()
    if row is None:
        raise NotFound(f"forum thread {thread_id} not found")
    thread_status, category_status, category_slug = row
    if thread_status != ThreadStatus.open:
        raise InvalidState(f"thread {thread_id} is {thread_status}; replies need an open thread")
    if category_status != CategoryStatus.active:
        raise InvalidState(f"thread {thread_id} is in archived category {category_slug!r}; it takes no replies")


def editable_post(
    session: Session, post_id: uuid.UUID, actor_id: str | None, is_admin: bool, *, lock: bool = False
) -> ForumPost:
    post = fetch(session, ForumPost, post_id, "forum post", lock=lock)
    if not is_admin and post.author_id != actor_id:
        raise Forbidden("only the post's author or an admin can edit it")
    if post.status == PostStatus.deleted:
        raise InvalidState(f"post {post.id} is deleted and cannot be edited")
    if not is_admin and post.status == PostStatus.hidden:
        raise InvalidState(f"post {post.id} was hidden by a moderator; only an admin can edit it now")
    if not is_admin:
        open_thread(session, post.thread_id, lock=lock)
    return post


def moderatable_post(session: Session, post_id: uuid.UUID, action: str, *, lock: bool = False) -> ForumPost:
    post = fetch(session, ForumPost, post_id, "forum post", lock=lock)
    if post.status == PostStatus.deleted and action in ("hide", "unhide"):
        raise InvalidState(f"post {post.id} is deleted; it cannot be {action}d")
    return post
