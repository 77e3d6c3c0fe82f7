from typer.testing import CliRunner

from services.cli import app


def test_help_lists_the_program() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "budgetvakt" in result.output.lower()
