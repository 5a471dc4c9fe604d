"""lakery's Alembic migrations (``env.py`` and ``versions/``), shipped with the package.

Run them with ``lakery db upgrade`` or `lakery.maintenance.upgrade_database`; the version
is kept in the ``lakery_alembic_version`` table, apart from any Alembic setup of your own.
"""
