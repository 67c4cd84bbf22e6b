"""DB-free tests of the harness' test summary (junit parsing, browser counting)."""

from harness.run import read_junit

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
