"""Forum tools: read categories, threads, posts and search; file directives for every change."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Uuid, and_, bindparam, func, literal_column, or_, union_all
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from fleetprompt.db.rows import fetch
from fleetprompt.errors import InvalidInput
from fleetprompt.ledger.pagination import decode_cursor, encode_cursor
from fleetprompt.ledger.types import forum as types
from fleetprompt.models.base import UTCDateTime
from fleetprompt.models.forum import ForumCategory, ForumPost, ForumThread, PostStatus, ThreadStatus
from fleetprompt.models.tenancy import Role
from fleetprompt.tools.context import ToolContext
from fleetprompt.tools.declare import directive_tool, read_tool
from fleetprompt.tools.receipts import DirectiveOptions, Filing, NoInput, ToolInput

PLACEHOLDER = {
    PostStatus.hidden.value: "[hidden by a moderator]",
    PostStatus.deleted.value: "[deleted]",
}
SNIPPET = 240


# ---------------------------------------------------------------- views (forum text is data, never instructions)


class CategoryView(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str | None
    status: str
    thread_count: int
    created_at: datetime


class ThreadView(BaseModel):
    id: uuid.UUID
    category_id: uuid.UUID
    title: str
    status: str
    author_type: str
    author_id: str
    post_count: int = Field(description="Published posts.")
    created_at: datetime
    updated_at: datetime


class PostView(BaseModel):
    id: uuid.UUID
    thread_id: uuid.UUID
    status: str
    content: str = Field(description="The text, or a placeholder when the post is hidden or deleted.")
    redacted: bool
    author_type: str
    author_id: str
    created_at: datetime
    edited_at: datetime | None


def _visible_posts(ctx: ToolContext) -> list[str]:
    if ctx.is_admin:
        return [s.value for s in PostStatus]
    return [PostStatus.published.value]


def post_view(ctx: ToolContext, post: ForumPost) -> PostView:
    """Only admins and owners read the text of hidden or deleted posts; everyone else sees a placeholder."""
    redacted = post.status != PostStatus.published and not ctx.is_admin
    return PostView(
        id=post.id,
        thread_id=post.thread_id,
        status=post.status,
        content=PLACEHOLDER[post.status] if redacted else post.content,
        redacted=redacted,
        author_type=post.author_type,
        author_id=post.author_id,
        created_at=post.created_at,
        edited_at=post.edited_at,
    )


def _post_counts(session: Session, thread_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not thread_ids:
        return {}
    rows = session.exec(
        select(ForumPost.thread_id, func.count())
        .where(col(ForumPost.thread_id).in_(thread_ids), ForumPost.status == PostStatus.published.value)
        .group_by(ForumPost.thread_id)
    ).all()
    return dict(rows)


def _category_view(category: ForumCategory, threads: int) -> CategoryView:
    return CategoryView(
        id=category.id,
        slug=category.slug,
        name=category.name,
        description=category.description,
        status=category.status,
        thread_count=threads,
        created_at=category.created_at,
    )


THREAD_VIEW_COLUMNS = (
    ForumThread.id,
    ForumThread.category_id,
    ForumThread.title,
    ForumThread.status,
    ForumThread.author_type,
    ForumThread.author_id,
    ForumThread.created_at,
    ForumThread.updated_at,
)


def _thread_view(thread: ForumThread, posts: int) -> ThreadView:
    return ThreadView(
        id=thread.id,
        category_id=thread.category_id,
        title=thread.title,
        status=thread.status,
        author_type=thread.author_type,
        author_id=thread.author_id,
        post_count=posts,
        created_at=thread.created_at,
        updated_at=thread.updated_at,
    )


# ---------------------------------------------------------------- read tools


class CategoryList(BaseModel):
    items: list[CategoryView]


@read_tool(
    "forum_list_categories",
    title="List forum categories",
    description="Every forum category of this organization (active and archived) with its thread count.",
    input=NoInput,
    output=CategoryList,
)
def forum_list_categories(ctx: ToolContext, args: NoInput) -> CategoryList:
    with ctx.reading() as session:
        categories = session.exec(select(ForumCategory).order_by(col(ForumCategory.name))).all()
        counts = dict(
            session.exec(select(ForumThread.category_id, func.count()).group_by(ForumThread.category_id)).all()
        )
    return CategoryList(items=[_category_view(c, counts.get(c.id, 0)) for c in categories])


class ThreadListInput(ToolInput):
    category_id: uuid.UUID | None = Field(default=None, description="Only threads of this category.")
    status: ThreadStatus | None = None
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page.")
    limit: int = Field(default=25, ge=1, le=100)


class ThreadList(BaseModel):
    items: list[ThreadView]
    next_cursor: str | None


@read_tool(
    "forum_list_threads",
    title="List forum threads",
    description="Threads, newest first, optionally of one category and one status (open, locked, archived).",
    input=ThreadListInput,
    output=ThreadList,
)
def forum_list_threads(ctx: ToolContext, args: ThreadListInput) -> ThreadList:
    params: dict[str, object] = {"b_limit": args.limit + 1}
    if args.category_id is not None:
        params["b_category"] = args.category_id
    if args.status is not None:
        params["b_status"] = args.status.value
    if args.cursor:
        params["b_when"], params["b_last"] = decode_cursor(args.cursor)
    query = _thread_list_query(args.category_id is not None, args.status is not None, bool(args.cursor))
    with ctx.reading() as session:
        if args.category_id is not None:
            fetch(session, ForumCategory, args.category_id, "forum category")
        rows = session.connection().execute(query, params).all()
    next_cursor = None
    if len(rows) > args.limit:
        rows = rows[: args.limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return ThreadList(items=[ThreadView(**row._mapping) for row in rows], next_cursor=next_cursor)


@cache
def _thread_list_query(by_category: bool, by_status: bool, after_cursor: bool) -> Select[Any]:
    """The listed columns, post counts included, in one prebuilt statement per filter combination: the most
    frequent read of agents polling a forum (bench/, benchmark 2)."""
    published = (ForumPost.thread_id == ForumThread.id) & (ForumPost.status == PostStatus.published.value)
    posts = select(func.count()).where(published).correlate(ForumThread).scalar_subquery()
    query = select(*THREAD_VIEW_COLUMNS, posts.label("post_count"))
    if by_category:
        query = query.where(ForumThread.category_id == bindparam("b_category"))
    if by_status:
        query = query.where(ForumThread.status == bindparam("b_status"))
    if after_cursor:
        when, last = bindparam("b_when", type_=UTCDateTime()), bindparam("b_last", type_=Uuid())
        query = query.where(
            or_(ForumThread.created_at < when, and_(ForumThread.created_at == when, col(ForumThread.id) < last))
        )
    return query.order_by(col(ForumThread.created_at).desc(), col(ForumThread.id).desc()).limit(bindparam("b_limit"))


class ThreadGetInput(ToolInput):
    thread_id: uuid.UUID
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page.")
    limit: int = Field(default=50, ge=1, le=200, description="Posts per page, oldest first.")


class ThreadDetail(BaseModel):
    thread: ThreadView
    category: CategoryView
    posts: list[PostView]
    next_cursor: str | None


@read_tool(
    "forum_get_thread",
    title="Read a forum thread",
    description=(
        "One thread and its posts, oldest first, each with its status. Hidden and deleted posts show a placeholder "
        "instead of their text unless you are an admin or owner."
    ),
    input=ThreadGetInput,
    output=ThreadDetail,
)
def forum_get_thread(ctx: ToolContext, args: ThreadGetInput) -> ThreadDetail:
    query = select(ForumPost).where(ForumPost.thread_id == args.thread_id)
    if args.cursor:
        when, last = decode_cursor(args.cursor)
        query = query.where(
            or_(ForumPost.created_at > when, and_(ForumPost.created_at == when, col(ForumPost.id) > last))
        )
    query = query.order_by(col(ForumPost.created_at), col(ForumPost.id)).limit(args.limit + 1)
    with ctx.reading() as session:
        thread = fetch(session, ForumThread, args.thread_id, "forum thread")
        category = fetch(session, ForumCategory, thread.category_id, "forum category")
        posts = list(session.exec(query).all())
        counts = _post_counts(session, [thread.id])
        threads_in_category = session.exec(
            select(func.count()).select_from(ForumThread).where(ForumThread.category_id == category.id)
        ).one()
    next_cursor = None
    if len(posts) > args.limit:
        posts = posts[: args.limit]
        next_cursor = encode_cursor(posts[-1].created_at, posts[-1].id)
    return ThreadDetail(
        thread=_thread_view(thread, counts.get(thread.id, 0)),
        category=_category_view(category, threads_in_category),
        posts=[post_view(ctx, p) for p in posts],
        next_cursor=next_cursor,
    )


class SearchInput(ToolInput):
    query: str = Field(min_length=1, max_length=200, description="Words to find in thread titles and post text.")
    limit: int = Field(default=20, ge=1, le=100)


class SearchHit(BaseModel):
    kind: Literal["thread", "post"]
    thread_id: uuid.UUID
    post_id: uuid.UUID | None
    title: str
    snippet: str
    status: str


class SearchResults(BaseModel):
    query: str
    hits: list[SearchHit]


WORD = re.compile(r"\w+", re.UNICODE)


def _terms(query: str) -> list[str]:
    terms = WORD.findall(query)
    if not terms:
        raise InvalidInput("query must contain at least one word (letters or digits)")
    return terms[:20]


def _matching_ids(session: Session, terms: list[str], visible: list[str], limit: int) -> list[tuple[str, uuid.UUID]]:
    """Full-text search, best first: PostgreSQL tsvector (GIN indexes), SQLite FTS5 (porter stemming). Posts the
    caller may not read are filtered here, so they never take the place of a hit the caller may read."""
    if session.get_bind().dialect.name == "postgresql":
        # The configuration is a literal so that the planner matches the GIN expression indexes.
        english = literal_column("'english'::regconfig")
        tsquery = func.plainto_tsquery(english, " ".join(terms))
        thread_vector = func.to_tsvector(english, ForumThread.title)
        post_vector = func.to_tsvector(english, ForumPost.content)
        threads = select(
            literal_column("'thread'").label("kind"),
            col(ForumThread.id).label("ref"),
            func.ts_rank(thread_vector, tsquery).label("rank"),
        )
        posts = select(
            literal_column("'post'").label("kind"),
            col(ForumPost.id).label("ref"),
            func.ts_rank(post_vector, tsquery).label("rank"),
        )
        union = union_all(
            threads.where(thread_vector.op("@@")(tsquery)),
            posts.where(post_vector.op("@@")(tsquery), col(ForumPost.status).in_(visible)),
        ).subquery()
        rows = session.exec(select(union.c.kind, union.c.ref).order_by(union.c.rank.desc()).limit(limit)).all()
        return [(kind, row_id) for kind, row_id in rows]
    match = " ".join('"' + term.replace('"', "") + '"' for term in terms)
    statuses = ", ".join("?" for _ in visible)
    rows = session.connection().exec_driver_sql(
        "SELECT f.kind, f.ref_id FROM fts_forum AS f LEFT JOIN forum_posts AS p ON f.kind = 'post' AND p.id = f.ref_id"
        f" WHERE fts_forum MATCH ? AND (f.kind = 'thread' OR p.status IN ({statuses})) ORDER BY f.rank LIMIT ?",
        (match, *visible, limit),
    )
    return [(kind, uuid.UUID(hex=str(ref))) for kind, ref in rows]


@read_tool(
    "forum_search",
    title="Search the forum",
    description="Full-text search over thread titles and post text (stemmed: 'locking' finds 'locked'), best first.",
    input=SearchInput,
    output=SearchResults,
)
def forum_search(ctx: ToolContext, args: SearchInput) -> SearchResults:
    terms = _terms(args.query)
    visible = _visible_posts(ctx)
    with ctx.reading() as session:
        found = _matching_ids(session, terms, visible, args.limit)
        thread_ids = [i for k, i in found if k == "thread"]
        post_ids = [i for k, i in found if k == "post"]
        posts = {
            p.id: p
            for p in session.exec(
                select(ForumPost).where(col(ForumPost.id).in_(post_ids), col(ForumPost.status).in_(visible))
            ).all()
        }
        thread_ids += [p.thread_id for p in posts.values()]
        threads = {t.id: t for t in session.exec(select(ForumThread).where(col(ForumThread.id).in_(thread_ids))).all()}
    hits: list[SearchHit] = []
    for kind, row_id in found:
        if kind == "thread" and row_id in threads:
            thread = threads[row_id]
            hits.append(
                SearchHit(
                    kind="thread",
                    thread_id=thread.id,
                    post_id=None,
                    title=thread.title,
                    snippet="",
                    status=thread.status,
                )
            )
        elif kind == "post" and row_id in posts and posts[row_id].thread_id in threads:
            post = posts[row_id]
            hits.append(
                SearchHit(
                    kind="post",
                    thread_id=post.thread_id,
                    post_id=post.id,
                    title=threads[post.thread_id].title,
                    snippet=post.content[:SNIPPET],
                    status=post.status,
                )
            )
        if len(hits) >= args.limit:
            break
    return SearchResults(query=args.query, hits=hits)


# ---------------------------------------------------------------- directive tools


class CategoryCreateInput(DirectiveOptions):
    slug: types.CategorySlug = Field(description="Lowercase letters, digits and hyphens, e.g. 'announcements'.")
    name: types.CategoryName
    description: types.Description | None = None


@directive_tool(
    "forum_create_category",
    title="Create a forum category",
    description="Create a forum category (admins).",
    input=CategoryCreateInput,
    directives=("forum.category.create",),
    role=Role.admin,
)
def forum_create_category(ctx: ToolContext, args: CategoryCreateInput) -> Filing:
    payload = types.CategoryCreate(slug=args.slug, name=args.name, description=args.description or None)
    return Filing(
        "forum.category.create",
        payload,
        f"create forum category {args.slug!r}",
        check=lambda session: types.unused_category_slug(session, args.slug),
    )


class CategoryRefInput(DirectiveOptions):
    category_id: uuid.UUID


@directive_tool(
    "forum_archive_category",
    title="Archive a forum category",
    description="Archive a forum category: it stays readable, takes no new threads or replies (admins).",
    input=CategoryRefInput,
    directives=("forum.category.archive",),
    role=Role.admin,
)
def forum_archive_category(ctx: ToolContext, args: CategoryRefInput) -> Filing:
    def check(session: Session) -> None:
        types.unarchived_category(session, args.category_id)

    return Filing(
        "forum.category.archive",
        types.CategoryRef(category_id=args.category_id),
        f"archive forum category {args.category_id}",
        check=check,
    )


class ThreadCreateInput(DirectiveOptions):
    category_id: uuid.UUID
    title: types.Title = Field(description="1 to 200 characters.")
    content: types.PostContent = Field(description="The first post, 1 to 20,000 characters.")


@directive_tool(
    "forum_create_thread",
    title="Start a forum thread",
    description="Start a thread with its first post in an active category; you are its author.",
    input=ThreadCreateInput,
    directives=("forum.thread.create",),
    role=Role.member,
)
def forum_create_thread(ctx: ToolContext, args: ThreadCreateInput) -> Filing:
    def check(session: Session) -> None:
        types.active_category(session, args.category_id)

    payload = types.ThreadCreate(category_id=args.category_id, title=args.title, content=args.content)
    return Filing("forum.thread.create", payload, f"start thread {args.title[:60]!r}", check=check)


class ReplyInput(DirectiveOptions):
    thread_id: uuid.UUID
    content: types.PostContent = Field(description="1 to 20,000 characters.")


@directive_tool(
    "forum_reply",
    title="Reply to a thread",
    description="Post a reply to an open thread; you are its author.",
    input=ReplyInput,
    directives=("forum.post.create",),
    role=Role.member,
)
def forum_reply(ctx: ToolContext, args: ReplyInput) -> Filing:
    def check(session: Session) -> None:
        types.open_thread(session, args.thread_id)

    payload = types.PostCreate(thread_id=args.thread_id, content=args.content)
    return Filing("forum.post.create", payload, f"reply to thread {args.thread_id}", check=check)


class EditInput(DirectiveOptions):
    post_id: uuid.UUID
    content: types.PostContent = Field(description="The new text, 1 to 20,000 characters.")


@directive_tool(
    "forum_edit_post",
    title="Edit a post",
    description="Replace a post's text. Authors edit their own posts; admins any post.",
    input=EditInput,
    directives=("forum.post.edit",),
    role=Role.member,
)
def forum_edit_post(ctx: ToolContext, args: EditInput) -> Filing:
    def check(session: Session) -> None:
        types.editable_post(session, args.post_id, ctx.actor.id, ctx.is_admin)

    payload = types.PostEdit(post_id=args.post_id, content=args.content)
    return Filing("forum.post.edit", payload, f"edit post {args.post_id}", check=check)


class ThreadRefInput(DirectiveOptions):
    thread_id: uuid.UUID


def _thread_status(action: str, args: ThreadRefInput) -> Filing:
    def check(session: Session) -> None:
        fetch(session, ForumThread, args.thread_id, "forum thread")

    return Filing(
        f"forum.thread.{action}", types.ThreadRef(thread_id=args.thread_id), f"{action} thread {args.thread_id}", check
    )


@directive_tool(
    "forum_lock_thread",
    title="Lock a thread",
    description="Lock a thread: it stays readable and takes no replies (admins).",
    input=ThreadRefInput,
    directives=("forum.thread.lock",),
    role=Role.admin,
)
def forum_lock_thread(ctx: ToolContext, args: ThreadRefInput) -> Filing:
    return _thread_status("lock", args)


@directive_tool(
    "forum_unlock_thread",
    title="Unlock a thread",
    description="Reopen a locked thread for replies (admins).",
    input=ThreadRefInput,
    directives=("forum.thread.unlock",),
    role=Role.admin,
)
def forum_unlock_thread(ctx: ToolContext, args: ThreadRefInput) -> Filing:
    return _thread_status("unlock", args)


class PostRefInput(DirectiveOptions):
    post_id: uuid.UUID


def _moderation(action: str, args: PostRefInput) -> Filing:
    def check(session: Session) -> None:
        types.moderatable_post(session, args.post_id, action)

    return Filing(f"forum.post.{action}", types.PostRef(post_id=args.post_id), f"{action} post {args.post_id}", check)


@directive_tool(
    "forum_hide_post",
    title="Hide a post",
    description="Hide a post from members; admins still see its text (admins).",
    input=PostRefInput,
    directives=("forum.post.hide",),
    role=Role.admin,
)
def forum_hide_post(ctx: ToolContext, args: PostRefInput) -> Filing:
    return _moderation("hide", args)


@directive_tool(
    "forum_unhide_post",
    title="Unhide a post",
    description="Publish a hidden post again (admins).",
    input=PostRefInput,
    directives=("forum.post.unhide",),
    role=Role.admin,
)
def forum_unhide_post(ctx: ToolContext, args: PostRefInput) -> Filing:
    return _moderation("unhide", args)


@directive_tool(
    "forum_delete_post",
    title="Delete a post",
    description="Delete a post: members see a placeholder from then on (admins; high-impact).",
    input=PostRefInput,
    directives=("forum.post.delete",),
    role=Role.admin,
    destructive=True,
)
def forum_delete_post(ctx: ToolContext, args: PostRefInput) -> Filing:
    return _moderation("delete", args)
