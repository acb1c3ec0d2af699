"""Alembic trees: `shared` for the shared tables, `tenant` for the tables every tenant has."""

from __future__ import annotations

from alembic import context


def run_on_given_connection() -> None:
    """Both trees run only on a connection handed over by fleetprompt.db.migrate (never from a URL)."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
