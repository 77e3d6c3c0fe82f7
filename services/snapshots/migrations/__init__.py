"""Alembic migrations of the snapshot store (configured in code by ``services.snapshots.migrate``)."""
