"""Tenant forum, marketplace and agent tables, and full-text search over threads and posts.

Revision ID: t0002
Revises: t0001

Search: PostgreSQL uses GIN indexes on to_tsvector('english', ...); SQLite an FTS5 table kept current by
triggers (named fts_*: the model comparison test ignores them, since no model declares them).
"""

import sqlalchemy as sa
from alembic import op

from fleetprompt.models.base import JSONType, UTCDateTime

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE fts_forum USING fts5(kind UNINDEXED, ref_id UNINDEXED, body, tokenize='porter unicode61')",
    """CREATE TRIGGER fts_forum_posts_ai AFTER INSERT ON forum_posts BEGIN
         INSERT INTO fts_forum (kind, ref_id, body) VALUES ('post', new.id, new.content); END""",
    """CREATE TRIGGER fts_forum_posts_au AFTER UPDATE OF content ON forum_posts BEGIN
         DELETE FROM fts_forum WHERE kind = 'post' AND ref_id = old.id;
         INSERT INTO fts_forum (kind, ref_id, body) VALUES ('post', new.id, new.content); END""",
    """CREATE TRIGGER fts_forum_posts_ad AFTER DELETE ON forum_posts BEGIN
         DELETE FROM fts_forum WHERE kind = 'post' AND ref_id = old.id; END""",
    """CREATE TRIGGER fts_forum_threads_ai AFTER INSERT ON forum_threads BEGIN
         INSERT INTO fts_forum (kind, ref_id, body) VALUES ('thread', new.id, new.title); END""",
    """CREATE TRIGGER fts_forum_threads_au AFTER UPDATE OF title ON forum_threads BEGIN
         DELETE FROM fts_forum WHERE kind = 'thread' AND ref_id = old.id;
         INSERT INTO fts_forum (kind, ref_id, body) VALUES ('thread', new.id, new.title); END""",
    """CREATE TRIGGER fts_forum_threads_ad AFTER DELETE ON forum_threads BEGIN
         DELETE FROM fts_forum WHERE kind = 'thread' AND ref_id = old.id; END""",
]
POSTGRES_FTS = [
    "CREATE INDEX fts_forum_posts ON forum_posts USING gin (to_tsvector('english', content))",
    "CREATE INDEX fts_forum_threads ON forum_threads USING gin (to_tsvector('english', title))",
]


def _metadata() -> sa.Column:
    return sa.Column("metadata", JSONType, nullable=False)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "forum_categories",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("package_slug", sa.String(64), nullable=True),
        sa.Column("created_by_directive", sa.Uuid(), nullable=True),
        _metadata(),
        *_timestamps(),
        sa.UniqueConstraint("slug", name="uq_forum_categories_slug"),
        sa.UniqueConstraint("created_by_directive", name="uq_forum_categories_directive"),
        sa.CheckConstraint("status IN ('active', 'archived')", name="ck_forum_categories_status"),
    )
    op.create_table(
        "forum_threads",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("category_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author_type", sa.String(16), nullable=False),
        sa.Column("author_id", sa.String(255), nullable=False),
        sa.Column("created_by_directive", sa.Uuid(), nullable=True),
        _metadata(),
        *_timestamps(),
        sa.UniqueConstraint("created_by_directive", name="uq_forum_threads_directive"),
        sa.CheckConstraint("status IN ('open', 'locked', 'archived')", name="ck_forum_threads_status"),
        sa.CheckConstraint("length(title) > 0", name="ck_forum_threads_title"),
    )
    op.create_index("ix_forum_threads_category", "forum_threads", ["category_id", "created_at"])
    op.create_table(
        "forum_posts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author_type", sa.String(16), nullable=False),
        sa.Column("author_id", sa.String(255), nullable=False),
        sa.Column("created_by_directive", sa.Uuid(), nullable=True),
        _metadata(),
        *_timestamps(),
        sa.Column("edited_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("created_by_directive", name="uq_forum_posts_directive"),
        sa.CheckConstraint("status IN ('published', 'hidden', 'deleted')", name="ck_forum_posts_status"),
        sa.CheckConstraint("author_type IN ('human', 'agent', 'system')", name="ck_forum_posts_author_type"),
        sa.CheckConstraint("length(content) BETWEEN 1 AND 20000", name="ck_forum_posts_content"),
    )
    op.create_index("ix_forum_posts_thread", "forum_posts", ["thread_id", "created_at"])

    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("package_slug", sa.String(64), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("package_slug", "name", name="uq_agents_package_name"),
    )
    op.create_table(
        "package_installations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("package_slug", sa.String(64), nullable=False),
        sa.Column("package_name", sa.String(200), nullable=False),
        sa.Column("package_version", sa.String(32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("tool_allowlist", JSONType, nullable=False),
        sa.Column("installed_by", sa.String(255), nullable=True),
        sa.Column("created_by_directive", sa.Uuid(), nullable=True),
        sa.Column("installed_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("package_slug", name="uq_package_installations_slug"),
    )
    op.create_table(
        "installation_resources",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("installation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("created", sa.Boolean(), nullable=False),
        sa.Column("package_version", sa.String(32), nullable=False),
        sa.Column("directive_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("installation_id", "kind", "key", name="uq_installation_resources_key"),
        sa.CheckConstraint("kind IN ('agent', 'forum_category')", name="ck_installation_resources_kind"),
    )
    op.create_index("ix_installation_resources_installation_id", "installation_resources", ["installation_id"])

    statements = POSTGRES_FTS if op.get_context().dialect.name == "postgresql" else SQLITE_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS fts_forum")
    for table in (
        "installation_resources",
        "package_installations",
        "agents",
        "forum_posts",
        "forum_threads",
        "forum_categories",
    ):
        op.drop_table(table)
