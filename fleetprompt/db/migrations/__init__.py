"""Alembic trees: `shared` for the shared tables, `tenant` for the tables every tenant has."""

from __future__ import annotations

from alembic import context


def run_on_given_connection() -> None:
    """Both trees run only on a connection handed over by fleetprompt.db.migrate (never from a URL), or render their
    SQL for a dialect (offline): how a new tenant's schema is created in one batch."""
    if context.is_offline_mode():
        # No BEGIN/COMMIT in the script: it runs inside the transaction that creates the organization.
        context.configure(dialect_name=context.config.attributes["dialect_name"], transactional_ddl=False)
    else:
        context.configure(connection=context.config.attributes["connection"], target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
