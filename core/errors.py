"""User mistakes get a precise message and an exit code, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (file, option, config). ``str(err)`` is shown as is."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(UserError):
    """A broken configuration file: the message names the file, the key and the problem."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"config error in {file}: {key}: {problem}")
