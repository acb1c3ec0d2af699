"""The Alembic trees produce exactly the tables the models declare, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import Org
from sqlalchemy import Connection, MetaData, text
from sqlmodel import SQLModel

from fleetprompt.accounts.organizations import create_organization
from fleetprompt.db.migrate import upgrade_all, upgrade_tenant
from fleetprompt.db.tenancy import schema_name
from fleetprompt.models.base import TENANT_SCHEMA
from fleetprompt.platform import Platform

HEAD = "t0003"  # the tenant tree's newest revision


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


def _catalog(connection: Connection, schema: str) -> dict[str, list[tuple[str, ...]]]:
    """Everything a schema's tables are made of, with the schema's name taken out so two schemas compare."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, COALESCE(character_maximum_length, 0)::text, "
        "is_nullable, COALESCE(column_default, '') FROM information_schema.columns WHERE table_schema = :s",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s",
        "constraints": "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = :s",
        "functions": "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :s",
        "triggers": "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND NOT t.tgisinternal",
    }

    def unqualified(value: object) -> str:
        return str(value).replace(f'"{schema}".', "").replace(f"{schema}.", "")

    found = {}
    for name, sql in queries.items():
        found[name] = sorted(tuple(map(unqualified, row)) for row in connection.execute(text(sql), {"s": schema}))
    versions = connection.execute(text(f'SELECT version_num FROM "{schema}".alembic_version'))
    found["version"] = [tuple(row) for row in versions]
    return found


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_new_organization_gets_in_one_batch_exactly_what_the_migrations_build(platform: Platform) -> None:
    """PostgreSQL creates a new tenant's schema from the tenant tree's rendered head script (one round trip); it must
    be the schema the migrations build step by step, down to indexes, constraints and the recorded version."""
    create_organization(platform.db, "batched", "Batched")
    upgrade_tenant(platform.db, "stepwise")  # the migrations, operation by operation
    with platform.db.engine.connect() as connection:
        batched = _catalog(connection, schema_name("batched"))
        stepwise = _catalog(connection, schema_name("stepwise"))
    assert len(batched["columns"]) > 50 and len(batched["indexes"]) > 20 and batched["version"] == [(HEAD,)]
    assert batched == stepwise
    assert platform.db.engine.connect().exec_driver_sql("SHOW search_path").scalar_one() == '"$user", public'


@pytest.mark.parametrize("backend", ["postgres"])
def test_an_organization_whose_schema_was_left_behind_is_migrated_not_recreated(platform: Platform) -> None:
    with platform.db.engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema_name("leftover")}"')
    create_organization(platform.db, "leftover", "Left over")
    with platform.db.engine.connect() as connection:
        connection.exec_driver_sql(f'SET search_path TO "{schema_name("leftover")}"')
        tenant = [t for t in SQLModel.metadata.sorted_tables if t.schema == TENANT_SCHEMA]
        assert _diff(connection, tenant, None) == []
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == HEAD
