"""Alembic migrations of the snapshot store (configured in code by ``services.db.migrate``)."""
