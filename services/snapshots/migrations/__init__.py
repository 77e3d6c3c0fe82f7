"""Alembic migrations of the snapshot store (configured in code: ``services.snapshots.migrate``)."""
