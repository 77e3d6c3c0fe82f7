"""Shared pytest set-up. Each area keeps its fixtures in ``tests/<area>/fixtures.py``."""
