"""Loads this area's fixtures until tests/conftest.py registers ``tests.report.fixtures``.

(pytest refuses ``pytest_plugins`` outside the root conftest.) Once registered there, delete
this file.
"""

from tests.report.fixtures import (
    august_files,
    august_report,
    report_case,
    report_db_url,
    report_domain,
)

__all__ = ["august_files", "august_report", "report_case", "report_db_url", "report_domain"]
