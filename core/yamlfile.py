"""The one YAML loader of budgetvakt: safe YAML, and a ConfigError naming file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError


def read_yaml(
    path: Path, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader, column: bool = False
) -> Any:
    """The parsed content of ``path``.

    A missing file, a file that is not UTF-8 or not YAML is a :class:`ConfigError` with the key
    ``(file)`` or ``line N`` (``line N, column M`` with ``column``); the problem says what is
    wrong and where an unclosed construct started. ``loader`` must be a SafeLoader (subclass).
    """
    if not path.is_file():
        raise ConfigError(str(path), "(file)", "file not found")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except UnicodeDecodeError as err:
        raise ConfigError(
            str(path), "(file)", f"not UTF-8 text (byte {err.start}): save it as UTF-8"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(str(path), *_yaml_problem(err, column)) from None


def _yaml_problem(err: yaml.YAMLError, column: bool) -> tuple[str, str]:
    """(where, what is wrong), naming where an unclosed construct started."""
    mark = getattr(err, "problem_mark", None)
    if mark is None:
        return "(file)", f"not valid YAML: {err}"
    problem = f"not valid YAML: {getattr(err, 'problem', None) or err}"
    context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and start is not None and start.line != mark.line:
        problem += f" ({context} that starts on line {start.line + 1})"
    where = f"line {mark.line + 1}"
    return (f"{where}, column {mark.column + 1}" if column else where), problem
