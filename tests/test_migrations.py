"""The Alembic trees produce exactly the tables the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import Org
from sqlalchemy import MetaData
from sqlmodel import SQLModel

from fleetprompt.db.migrate import upgrade_all
from fleetprompt.db.tenancy import schema_name
from fleetprompt.models.base import TENANT_SCHEMA
from fleetprompt.platform import Platform


def _diff(connection, tables: list, schema: str | None) -> list:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_schemas": False,
            "target_metadata": SQLModel.metadata,
            # alembic_version is Alembic's own; fts_* (full-text search tables, triggers, indexes) no model declares.
            "include_name": lambda name, type_, parent: (
                name != "alembic_version" and not (name or "").startswith("fts_")
            ),
        },
    )
    subset = MetaData()
    for table in tables:
        table.to_metadata(subset, schema=schema)
    return compare_metadata(context, subset)


def test_shared_and_tenant_schemas_match_the_models(platform: Platform, org: Org) -> None:
    shared = [t for t in SQLModel.metadata.sorted_tables if t.schema is None]
    tenant = [t for t in SQLModel.metadata.sorted_tables if t.schema == TENANT_SCHEMA]
    with platform.db.engine.connect() as connection:
        assert _diff(connection, shared, None) == []
    if platform.db.is_postgres:
        with platform.db.engine.connect() as connection:
            connection.exec_driver_sql(f'SET search_path TO "{schema_name("acme")}"')
            assert _diff(connection, tenant, None) == []
    else:
        with platform.db.tenant_file_engine("acme").connect() as connection:
            assert _diff(connection, tenant, None) == []
    assert upgrade_all(platform.db) == ["acme"]  # idempotent: already at head
