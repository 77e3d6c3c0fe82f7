"""Errors of the follow-up writes; the web layer maps them to HTTP status codes."""

from __future__ import annotations

from core.errors import UserError


class FollowUpError(UserError):
    """Base of the follow-up errors; ``str(err)`` is the message shown to the user."""


class InvalidInput(FollowUpError):
    """A field of the input is missing or wrong (HTTP 422); ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


class NotFound(FollowUpError):
    """No snapshot for the period, or the node is not in it (HTTP 404)."""


class Conflict(FollowUpError):
    """The write contradicts the state, e.g. the nämnd before its avdelningar (HTTP 409)."""
