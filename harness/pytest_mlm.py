"""pytest plugin loaded for the Odoo suite (`-p harness.pytest_mlm`).

* Marks every HttpCase test as a browser test (a junit property) so the summary
  can count them.
* A browser test that Odoo skips because the browser is missing or
  unreachable (no Chromium, no websocket-client, no devtools connection) is a
  failure here, not a pass: a green run must mean the browser really ran. A
  test's own `skipTest` for another reason (Odoo's suites skip when an
  optional module is absent) stays a skip.
"""

import logging
import re

import pytest


class _ImportWarningFilter(logging.Filter):
    """pytest-odoo imports odoo.tests before it switches test mode on (it must:
    test_enable at registry load would run every module's at_install tests), so
    Odoo logs a misleading "Importing test framework" ERROR. Drop that one."""

    def filter(self, record):
        return not str(record.msg).startswith("Importing test framework")


logging.getLogger("odoo.tests.common").addFilter(_ImportWarningFilter())


# Odoo's own reasons for skipping a browser test (odoo/tests/common.py:
# "Chrome executable not found", "websocket-client module is not installed",
# "Cannot connect to chrome dev tools", ...).
_BROWSER_MISSING = re.compile(r"chrom|websocket|devtools", re.IGNORECASE)


def _is_browser_test(item):
    from odoo.tests.common import HttpCase  # noqa: PLC0415 (odoo loaded by pytest-odoo)

    cls = getattr(item, "cls", None)
    return bool(cls) and issubclass(cls, HttpCase)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not _is_browser_test(item):
        return
    if ("browser", "1") not in item.user_properties:
        item.user_properties.append(("browser", "1"))
    if report.skipped and call.when in ("setup", "call"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else ""
        if not _BROWSER_MISSING.search(reason):
            return
        report.outcome = "failed"
        report.longrepr = f"browser test was skipped ({reason}): counted as a failure"
