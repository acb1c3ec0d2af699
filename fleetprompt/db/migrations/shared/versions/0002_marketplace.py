"""Shared marketplace registry: packages, package_versions (several per slug), package_reviews and
package_install_records (one per installation ever made: what install_count counts).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from fleetprompt.models.base import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("long_description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("author", sa.String(200), nullable=True),
        sa.Column("license", sa.String(64), nullable=False),
        sa.Column("pricing_model", sa.String(32), nullable=False),
        sa.Column("pricing_config", JSONType, nullable=False),
        sa.Column("min_tier", sa.String(16), nullable=False),
        sa.Column("is_published", sa.Boolean(), nullable=False),
        sa.Column("is_featured", sa.Boolean(), nullable=False),
        sa.Column("is_verified", sa.Boolean(), nullable=False),
        sa.Column("install_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("slug", name="uq_packages_slug"),
        sa.CheckConstraint("min_tier IN ('free', 'pro', 'enterprise')", name="ck_packages_min_tier"),
        sa.CheckConstraint(
            "pricing_model IN ('free', 'freemium', 'paid', 'revenue_share')", name="ck_packages_pricing_model"
        ),
    )
    op.create_index("ix_packages_listing", "packages", ["is_published", "install_count"])
    op.create_table(
        "package_versions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("package_id", sa.Uuid(), sa.ForeignKey("packages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("manifest", JSONType, nullable=False),
        sa.Column("changelog", sa.Text(), nullable=True),
        sa.Column("is_published", sa.Boolean(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("package_id", "version", name="uq_package_versions_package_version"),
    )
    op.create_index("ix_package_versions_package_id", "package_versions", ["package_id"])
    op.create_table(
        "package_reviews",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("package_id", sa.Uuid(), sa.ForeignKey("packages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("package_id", "user_id", name="uq_package_reviews_package_user"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_package_reviews_rating"),
    )
    op.create_index("ix_package_reviews_package_id", "package_reviews", ["package_id"])
    op.create_table(
        "package_install_records",
        sa.Column("installation_id", sa.Uuid(), primary_key=True),
        sa.Column("package_id", sa.Uuid(), sa.ForeignKey("packages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("installed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_package_install_records_package_id", "package_install_records", ["package_id"])
    op.create_index("ix_package_install_records_org_id", "package_install_records", ["org_id"])


def downgrade() -> None:
    for table in ("package_install_records", "package_reviews", "package_versions", "packages"):
        op.drop_table(table)
