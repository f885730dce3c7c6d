"""Alembic's environment for the history database, run programmatically by ``history.store.open_history``.

The connection is handed in through ``config.attributes["connection"]``; there is no alembic.ini and
no logging set-up here (restorecheck's own logging stays as the CLI set it).
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True,
                  version_table="restorecheck_alembic_version")
with context.begin_transaction():
    context.run_migrations()
