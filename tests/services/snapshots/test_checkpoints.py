"""config/checkpoints.yaml: the shipped file, the defaults, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError, UserError
from core.settings import DEFAULT_CONFIG_DIR
from services.snapshots.checkpoints import (
    DEFAULT_CHECKPOINTS,
    check_checkpoint_name,
    load_checkpoints,
)


def test_shipped_file_names_the_year_s_checkpoints() -> None:
    assert load_checkpoints(DEFAULT_CONFIG_DIR) == {
        3: "mars",
        4: "april",
        8: "delår",
        10: "okt",
        12: "bokslut",
    }


def test_without_the_file_the_defaults_apply(tmp_path: Path) -> None:
    assert load_checkpoints(tmp_path) == dict(DEFAULT_CHECKPOINTS)


def test_quoted_months_and_an_empty_list_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.yaml").write_text('checkpoints:\n  "6": halvår\n  2: feb\n')
    assert load_checkpoints(tmp_path) == {2: "feb", 6: "halvår"}
    (tmp_path / "checkpoints.yaml").write_text("checkpoints: {}\n")
    assert load_checkpoints(tmp_path) == {}


@pytest.mark.parametrize(
    ("content", "key", "problem"),
    [
        ("checkpoints:\n  13: tretton\n", "checkpoints.13", "outside 1..12"),
        ("checkpoints:\n  0: noll\n", "checkpoints.0", "outside 1..12"),
        ("checkpoints:\n  mars: mars\n", "checkpoints.mars", "whole number 1..12"),
        ("checkpoints:\n  true: ja\n", "checkpoints.True", "not true/false"),
        ("checkpoints:\n  8: ''\n", "checkpoints.8", "non-empty"),
        ("checkpoints:\n  8: 42\n", "checkpoints.8", "non-empty text"),
        ("checkpoints:\n  8: delår 2024\n", "checkpoints.8", "no spaces"),
        ("checkpoints:\n  8: " + "x" * 33 + "\n", "checkpoints.8", "at most 32"),
        ("checkpoints:\n  3: delår\n  8: delår\n", "checkpoints.8", "already used for month 3"),
        ("checkpoints:\n  3: mars\n  '3': mars2\n", "checkpoints.3", "listed twice"),
        ("checkpoints:\n  - mars\n", "checkpoints", "mapping month → name"),
        ("checkpoint:\n  3: mars\n", "checkpoint", "unknown key"),
        ("{}\n", "checkpoints", "missing"),
        ("- 3\n", "(top level)", "mapping"),
        ("checkpoints:\n  3: [mars\n", "line", "not valid YAML"),
    ],
)
def test_broken_files_name_the_file_the_key_and_the_problem(
    tmp_path: Path, content: str, key: str, problem: str
) -> None:
    path = tmp_path / "checkpoints.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_checkpoints(tmp_path)
    message = str(caught.value)
    assert str(path) in message
    assert key in caught.value.key
    assert problem in caught.value.problem, message


def test_command_line_names_are_checked_like_the_file_s() -> None:
    assert check_checkpoint_name(" delår ") == "delår"
    with pytest.raises(UserError, match=r"--checkpoint: .*no spaces"):
        check_checkpoint_name("del år")
