"""DB-free tests of the harness' test summary (junit parsing, browser counting)."""

from harness.pytest_mlm import _BROWSER_MISSING
from harness.run import Counts, merge_rerun, peer_summary, read_junit, rerun_selection

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
  <testcase classname="a.TestX" name="test_ok"/>
  <testcase classname="a.TestX" name="test_bad"><failure message="boom"/></testcase>
  <testcase classname="a.TestX" name="test_err"><error message="boom"/></testcase>
  <testcase classname="a.TestX" name="test_skip"><skipped message="later"/></testcase>
  <testcase classname="a.TestUi" name="test_tour">
    <properties><property name="browser" value="1"/></properties>
  </testcase>
  <testcase classname="a.TestUi" name="test_tour_skipped_means_failed">
    <properties><property name="browser" value="1"/></properties>
    <failure message="browser test was skipped"/>
  </testcase>
</testsuite></testsuites>
"""


def test_counts(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(JUNIT)
    counts = read_junit(report)
    assert (counts.passed, counts.failed, counts.skipped) == (2, 3, 1)
    assert (counts.browser_passed, counts.browser_failed) == (1, 1)


def test_missing_report_is_a_failure(tmp_path):
    counts = read_junit(tmp_path / "absent.xml")
    assert counts.failed == 1


def test_failures_are_named(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(JUNIT)
    counts = read_junit(report)
    assert counts.failures == [
        "TestX.test_bad",
        "TestX.test_err",
        "TestUi.test_tour_skipped_means_failed",
    ]


def test_peer_summary_names_known_failures(capsys):
    results = {
        "loyalty": Counts(passed=3),
        "sale_loyalty": Counts(passed=2, failed=1, failures=["TestA.test_odoo"]),
    }
    known = {("sale_loyalty", "TestA.test_odoo"): "fails without loyalty_mlm"}
    assert peer_summary(results, known=known) == 0
    out = capsys.readouterr().out
    assert "known, Odoo's own: TestA.test_odoo (fails without loyalty_mlm)" in out
    assert "total: 5 passed, 1 failed (1 known), 0 skipped" in out


def test_peer_summary_fails_on_new_failures_and_empty_suites(capsys):
    results = {
        "loyalty": Counts(passed=3, failed=1, failures=["TestB.test_ours"]),
        "pos_loyalty": Counts(),
    }
    assert peer_summary(results, known={}) == 1
    out = capsys.readouterr().out
    assert "FAILED: TestB.test_ours" in out
    assert "collected no test: counted as a failure" in out


def test_only_a_missing_browser_turns_a_skip_into_a_failure():
    assert _BROWSER_MISSING.search("Skipped: Chrome executable not found")
    assert _BROWSER_MISSING.search("websocket-client module is not installed")
    assert _BROWSER_MISSING.search("Cannot connect to chrome dev tools")
    assert not _BROWSER_MISSING.search("pos_discount module is required for this test")


def test_rerun_selection_and_merge():
    assert (
        rerun_selection(["TestUi.test_a", "TestUi.test_b"])
        == "(TestUi and test_a) or (TestUi and test_b)"
    )
    counts = Counts(
        passed=5,
        failed=3,
        failures=["TestUi.test_a", "TestUi.test_b", "TestX.test_c"],
        browser_failures=["TestUi.test_a", "TestUi.test_b"],
    )
    again = Counts(
        passed=1, failed=1, failures=["TestUi.test_b"], passes=["TestUi.test_a"]
    )
    merge_rerun(counts, again)
    assert (counts.passed, counts.failed) == (6, 2)
    assert counts.failures == ["TestUi.test_b", "TestX.test_c"]
    assert counts.passed_on_rerun == ["TestUi.test_a"]


def test_a_rerun_without_report_changes_nothing(tmp_path):
    counts = Counts(
        failed=1, failures=["TestUi.test_a"], browser_failures=["TestUi.test_a"]
    )
    merge_rerun(counts, read_junit(tmp_path / "absent.xml"))
    assert (counts.passed, counts.failed) == (0, 1)
