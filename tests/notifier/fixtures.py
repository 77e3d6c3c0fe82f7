"""Fixtures of this test area."""
