"""The shared test helpers stay out of the product: no product package imports ``testing``."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("core", "contract", "forecasts", "streams", "services")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_product_module_imports_testing_or_tests() -> None:
    offenders = sorted(
        f"{path.relative_to(REPO)}: {name}"
        for package in PRODUCT_PACKAGES
        for path in (REPO / package).rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in ("testing", "tests")
    )
    assert offenders == []


def test_the_check_sees_an_import_of_testing(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("def f():\n    from testing.cli import run_cli\n    return run_cli\n")
    assert "testing.cli" in imported_modules(module)
