"""Migration scripts; Alembic skips this file (it ignores ``__init__``)."""
