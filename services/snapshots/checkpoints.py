"""``config/checkpoints.yaml``: which closed months are named checkpoints (mars, delår, …)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigError, UserError
from core.yamlfile import read_yaml

CHECKPOINTS_FILE = "checkpoints.yaml"
NAME_PATTERN = re.compile(r"^\w[\w-]*$")
NAME_MAX_LENGTH = 32
DEFAULT_CHECKPOINTS: Mapping[int, str] = {
    3: "mars",
    4: "april",
    8: "delår",
    10: "okt",
    12: "bokslut",
}


def _month(key: Any, file: str) -> int:
    where = f"checkpoints.{key}"
    if isinstance(key, bool):
        raise ConfigError(file, where, "a month must be a whole number 1..12, not true/false")
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key.strip())
    if not isinstance(key, int):
        raise ConfigError(file, where, f"a month must be a whole number 1..12, got {key!r}")
    if not 1 <= key <= 12:
        raise ConfigError(file, where, f"month {key} is outside 1..12")
    return key


def _name(value: Any) -> str:
    """The stripped name; ValueError with the problem otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the checkpoint name must be a non-empty text, got {value!r}")
    name = value.strip()
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"name {name!r} is {len(name)} characters, at most {NAME_MAX_LENGTH}")
    if not NAME_PATTERN.match(name):
        raise ValueError(f"name {name!r}: use letters, digits, '_' or '-' (no spaces)")
    return name


def parse_checkpoints(data: Any, file: str) -> dict[int, str]:
    """Validate the file's content; every problem names the file and the key."""
    if not isinstance(data, dict):
        raise ConfigError(file, "(top level)", "expected a mapping with the key 'checkpoints'")
    unknown = sorted(str(k) for k in data if k != "checkpoints")
    if unknown:
        raise ConfigError(file, unknown[0], "unknown key; expected only 'checkpoints'")
    if "checkpoints" not in data:
        raise ConfigError(file, "checkpoints", "missing")
    entries = data["checkpoints"]
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ConfigError(file, "checkpoints", "expected a mapping month → name, e.g. '8: delår'")
    out: dict[int, str] = {}
    month_of: dict[str, int] = {}
    for key, value in entries.items():
        month = _month(key, file)
        where = f"checkpoints.{month}"
        if month in out:
            raise ConfigError(file, where, f"month {month} is listed twice")
        try:
            name = _name(value)
        except ValueError as err:
            raise ConfigError(file, where, str(err)) from None
        if name in month_of:
            raise ConfigError(
                file, where, f"name {name!r} is already used for month {month_of[name]}"
            )
        out[month], month_of[name] = name, month
    return dict(sorted(out.items()))


def load_checkpoints(config_dir: Path) -> dict[int, str]:
    """month → checkpoint name from ``config_dir/checkpoints.yaml``; the defaults without it."""
    path = config_dir / CHECKPOINTS_FILE
    if not path.exists():
        return dict(DEFAULT_CHECKPOINTS)
    return parse_checkpoints(read_yaml(path), str(path))


def check_checkpoint_name(name: str) -> str:
    """A checkpoint name given on the command line, checked like the file's names."""
    try:
        return _name(name)
    except ValueError as err:
        raise UserError(f"--checkpoint: {err}") from None
