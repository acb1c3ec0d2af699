"""Forum handlers: the only code that writes forum rows. Each checks its preconditions again (the world may
have changed since filing), applies its change and signals in the directive's transaction, and is idempotent:
a row it created is found again by its directive id, and a state already reached changes nothing more."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from sqlalchemy import Insert, bindparam
from sqlmodel import select
from sqlmodel.sql.expression import Select

from fleetprompt.db.engine import dialect_name, insert_for
from fleetprompt.db.rows import fetch, insert_unique
from fleetprompt.errors import InvalidState
from fleetprompt.ledger.execution import DirectiveRun
from fleetprompt.ledger.registry import directive_types
from fleetprompt.ledger.types import forum as types
from fleetprompt.models.base import utcnow, uuid7
from fleetprompt.models.forum import AuthorType, CategoryStatus, ForumCategory, ForumPost, ForumThread, PostStatus
from fleetprompt.models.tenancy import Role

AUTHOR_TYPES = {"agent": AuthorType.agent, "system": AuthorType.system}


def _author(run: DirectiveRun) -> tuple[str, str]:
    """The requester is the author: identity comes from authentication, recorded on the directive."""
    directive = run.directive
    return AUTHOR_TYPES.get(directive.requested_by_type, AuthorType.human).value, directive.requested_by or "unknown"


def _source(run: DirectiveRun) -> dict[str, Any]:
    return {"via": run.directive.requested_via, "directive_id": str(run.directive.id)}


@directive_types.handles("forum.category.create")
def create_category(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.CategoryCreate)
    category = run.session.exec(
        select(ForumCategory).where(ForumCategory.created_by_directive == run.directive.id)
    ).first()
    if category is None:
        types.unused_category_slug(run.session, p.slug)
        category = ForumCategory(
            slug=p.slug,
            name=p.name,
            description=p.description,
            created_by_directive=run.directive.id,
            meta=_source(run),
        )
        insert_unique(run.session, category, f"a forum category with slug {p.slug!r} already exists")
        run.emit(
            "forum.category.created",
            {"category_id": str(category.id), "slug": category.slug, "name": category.name},
            subject=("forum.category", str(category.id)),
            dedupe_key=f"forum.category.created:{category.id}",
        )
    return {"category_id": str(category.id), "slug": category.slug, "status": category.status}


@directive_types.handles("forum.category.archive")
def archive_category(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.CategoryRef)
    category = fetch(run.session, ForumCategory, p.category_id, "forum category", lock=True)
    changed = category.status != CategoryStatus.archived
    if changed:
        category.status, category.updated_at = CategoryStatus.archived.value, utcnow()
        run.emit("forum.category.archived", {"category_id": str(category.id), "slug": category.slug})
    return {"category_id": str(category.id), "status": category.status, "changed": changed}


@directive_types.handles("forum.thread.create")
def create_thread(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.ThreadCreate)
    thread = run.session.exec(select(ForumThread).where(ForumThread.created_by_directive == run.directive.id)).first()
    if thread is None:
        types.active_category(run.session, p.category_id, lock=True)
        author_type, author_id = _author(run)
        thread = ForumThread(
            category_id=p.category_id,
            title=p.title,
            author_type=author_type,
            author_id=author_id,
            created_by_directive=run.directive.id,
            meta=_source(run),
        )
        run.session.add(thread)
        run.session.flush()
        run.emit(
            "forum.thread.created",
            {"thread_id": str(thread.id), "category_id": str(thread.category_id), "title": thread.title},
            subject=("forum.thread", str(thread.id)),
            dedupe_key=f"forum.thread.created:{thread.id}",
        )
        _new_post(run, thread.id, p.content)
    first = _existing_post(run)
    return {"thread_id": str(thread.id), "post_id": first["post_id"], "status": thread.status}


@cache
def _insert_post(dialect: str) -> Insert:
    """Replies are the hot path: a prebuilt INSERT binds a dict, where an ORM add and flush cost twice the CPU.
    A post this directive already made (a directive makes at most one) is left as it is and returns no id."""
    posts = ForumPost.__table__  # type: ignore[attr-defined]
    return (
        insert_for(dialect)(posts).on_conflict_do_nothing(index_elements=["created_by_directive"]).returning(posts.c.id)
    )


@cache
def _post_of_directive() -> Select[tuple[uuid.UUID, uuid.UUID, str]]:
    return select(ForumPost.id, ForumPost.thread_id, ForumPost.status).where(
        ForumPost.created_by_directive == bindparam("b_directive")
    )


def _new_post(run: DirectiveRun, thread_id: uuid.UUID, content: str) -> uuid.UUID | None:
    """A post by the requester, or None when this directive already made one. Its fact carries ids and sizes, never
    the text: moderators may hide the text later, and signals are immutable."""
    author_type, author_id = _author(run)
    post_id, now = uuid7(), utcnow()
    inserted = run.session.connection().execute(
        _insert_post(dialect_name(run.session)),
        {
            "id": post_id,
            "thread_id": thread_id,
            "content": content,
            "status": PostStatus.published.value,
            "author_type": author_type,
            "author_id": author_id,
            "created_by_directive": run.directive.id,
            "metadata": _source(run),
            "created_at": now,
            "updated_at": now,
            "edited_at": None,
        },
    )
    if inserted.first() is None:
        return None
    run.emit(
        "forum.post.created",
        {
            "post_id": str(post_id),
            "thread_id": str(thread_id),
            "author_type": author_type,
            "author_id": author_id,
            "length": len(content),
        },
        subject=("forum.post", str(post_id)),
        dedupe_key=f"forum.post.created:{post_id}",
    )
    return post_id


def _set_thread_status(run: DirectiveRun, status: str, event: str) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.ThreadRef)
    thread = fetch(run.session, ForumThread, p.thread_id, "forum thread", lock=True)
    if thread.status == "archived":
        raise InvalidState(f"thread {thread.id} is archived; it cannot be {event}")
    changed = thread.status != status
    if changed:
        previous = thread.status
        thread.status, thread.updated_at = status, utcnow()
        run.emit(f"forum.thread.{event}", {"thread_id": str(thread.id), "status": status, "previous": previous})
    return {"thread_id": str(thread.id), "status": thread.status, "changed": changed}


@directive_types.handles("forum.thread.lock")
def lock_thread(run: DirectiveRun) -> dict[str, Any]:
    return _set_thread_status(run, "locked", "locked")


@directive_types.handles("forum.thread.unlock")
def unlock_thread(run: DirectiveRun) -> dict[str, Any]:
    return _set_thread_status(run, "open", "unlocked")


@directive_types.handles("forum.post.create")
def create_post(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.PostCreate)
    # A first run has no post yet (a run that made one also committed its success), so only a rerun looks first:
    # it answers with the post its first run made, whatever became of the thread since.
    if run.directive.run_number > 1 and (found := _post_made_by(run)) is not None:
        return found
    types.open_thread(run.session, p.thread_id, lock=True)
    post_id = _new_post(run, p.thread_id, p.content)
    if post_id is None:  # an attempt whose claim was taken over: the attempt that replaced it made the post
        return _existing_post(run)
    return {"post_id": str(post_id), "thread_id": str(p.thread_id), "status": PostStatus.published.value}


def _existing_post(run: DirectiveRun) -> dict[str, Any]:
    """The post this directive made, which must exist (this transaction or a committed one inserted it)."""
    made = _post_made_by(run)
    if made is None:
        raise RuntimeError(f"the post directive {run.directive.id} made is gone")
    return made


def _post_made_by(run: DirectiveRun) -> dict[str, Any] | None:
    found = run.session.connection().execute(_post_of_directive(), {"b_directive": run.directive.id}).first()
    if found is None:
        return None
    return {"post_id": str(found.id), "thread_id": str(found.thread_id), "status": found.status}


@directive_types.handles("forum.post.edit")
def edit_post(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.PostEdit)
    post = types.editable_post(
        run.session, p.post_id, run.directive.requested_by, run.role.allows(Role.admin), lock=True
    )
    changed = post.content != p.content
    if changed:
        now = utcnow()
        post.content, post.edited_at, post.updated_at = p.content, now, now
        run.emit(
            "forum.post.edited",
            {"post_id": str(post.id), "thread_id": str(post.thread_id), "length": len(p.content)},
        )
    return {"post_id": str(post.id), "thread_id": str(post.thread_id), "changed": changed}


def _set_post_status(run: DirectiveRun, action: str, status: str, event: str) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.PostRef)
    post = types.moderatable_post(run.session, p.post_id, action, lock=True)
    changed = post.status != status
    if changed:
        previous = post.status
        post.status, post.updated_at = status, utcnow()
        run.emit(
            f"forum.post.{event}",
            {"post_id": str(post.id), "thread_id": str(post.thread_id), "status": status, "previous": previous},
        )
    return {"post_id": str(post.id), "thread_id": str(post.thread_id), "status": post.status, "changed": changed}


@directive_types.handles("forum.post.hide")
def hide_post(run: DirectiveRun) -> dict[str, Any]:
    return _set_post_status(run, "hide", PostStatus.hidden.value, "hidden")


@directive_types.handles("forum.post.unhide")
def unhide_post(run: DirectiveRun) -> dict[str, Any]:
    return _set_post_status(run, "unhide", PostStatus.published.value, "unhidden")


@directive_types.handles("forum.post.delete")
def delete_post(run: DirectiveRun) -> dict[str, Any]:
    return _set_post_status(run, "delete", PostStatus.deleted.value, "deleted")
