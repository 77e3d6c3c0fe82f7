"""core.yamlfile: the one YAML loader and its errors."""

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.yamlfile import read_yaml


def test_reads_safe_yaml(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("a: 1\nb: [x, y]\n", encoding="utf-8")
    assert read_yaml(path) == {"a": 1, "b": ["x", "y"]}
    path.write_text("a: !!python/object:os.system x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(path)


def test_errors_name_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert (caught.value.file, caught.value.key, caught.value.problem) == (
        str(path),
        "(file)",
        "file not found",
    )
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert caught.value.key == "(file)"
    assert caught.value.problem == "not UTF-8 text (byte 3): save it as UTF-8"
    path.write_text("a: 1\nb: {c: 2\n\nd: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert caught.value.key == "line 4"
    assert "(while parsing a flow mapping that starts on line 2)" in caught.value.problem
    with pytest.raises(ConfigError) as caught:
        read_yaml(path, column=True)
    assert caught.value.key == "line 4, column 2"
    assert str(caught.value).startswith(f"config error in {path}: line 4, column 2: not valid")
