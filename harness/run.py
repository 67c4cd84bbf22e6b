"""Entry point of `make demo`, `make test`, `make test-peers` and `make lint`.

    python3 -m harness.run test|test-peers|demo|lint|pot

Environment variables (all optional) are documented in the README.
"""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from . import pg
from .odoo_src import OdooNotFound, locate_odoo
from .shell import Apt, HarnessError, die, run, say
from .venv import ensure_venv

ROOT = Path(__file__).resolve().parent.parent
ADDON = "loyalty_mlm"
# The web shop bridge (auto-installed with website_sale_loyalty): tested and
# shown in the demo next to the add-on; loyalty_mlm installs without it.
BRIDGE = "loyalty_mlm_website_sale"
ADDONS = (ADDON, BRIDGE)
SKIP_LINE = "ODOO SUITE SKIPPED:"


@dataclass
class Context:
    environ: dict
    run_dir: Path
    apt: Apt
    python: Path = None
    odoo_src: Path = None
    config: Path = None
    db_options: dict = field(default_factory=dict)

    @property
    def odoo_bin(self):
        return self.odoo_command()

    def odoo_command(self, subcommand=None):
        """odoo-bin with our config; a subcommand (shell, ...) must come first."""
        sub = [subcommand] if subcommand else []
        return [
            str(self.python),
            str(self.odoo_src / "odoo-bin"),
            *sub,
            "-c",
            str(self.config),
        ]


def make_context(environ):
    run_dir = Path(environ.get("LOYALTY_MLM_RUN_DIR") or ROOT / ".run").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    return Context(environ=environ, run_dir=run_dir, apt=Apt(environ))


def prepare(ctx, odoo_src, browser=False):
    """Everything the demo and the tests need, idempotently."""
    venv = Path(ctx.environ.get("LOYALTY_MLM_VENV") or ROOT / ".venv")
    ctx.odoo_src = odoo_src
    ctx.python = ensure_venv(venv, ROOT, odoo_src, ctx.apt)
    if not odoo_src:
        return ctx
    # Odoo prints reports (the Points Statement) to PDF with wkhtmltopdf;
    # without it Odoo falls back to HTML.
    ctx.apt.install(["wkhtmltopdf"], why="printing reports as PDF")
    if browser:
        ctx.apt.install(["chromium"], why="Odoo's browser tests (HttpCase, tours)")
    ctx.db_options = pg.external_db_options(ctx.environ) or pg.ensure_private_cluster(
        ctx.run_dir, ctx.environ, ctx.apt
    )
    ctx.config = write_config(ctx)
    return ctx


def write_config(ctx):
    addons = [ctx.odoo_src / "addons", ctx.odoo_src / "odoo" / "addons", ROOT]
    options = {
        "addons_path": ",".join(str(p) for p in addons),
        "data_dir": str(ctx.run_dir / "data"),
        # Browser tests' screenshots (failures, the POS badge for the README).
        "screenshots": str(ctx.run_dir / "screenshots"),
        "http_port": ctx.environ.get("LOYALTY_MLM_HTTP_PORT", "8069"),
        "max_cron_threads": "0",
        **ctx.db_options,
    }
    path = ctx.run_dir / "odoo.cfg"
    body = "".join(f"{key} = {value}\n" for key, value in options.items())
    path.write_text("[options]\n" + body)
    return path


def odoo_install(ctx, db, update=False, logname="install", modules=ADDON):
    """Install (or update) the add-on (or `modules`, comma-separated), failing
    on any ERROR in Odoo's log."""
    log = ctx.run_dir / "logs" / f"{logname}.log"
    log.parent.mkdir(exist_ok=True)
    log.unlink(missing_ok=True)
    flag = "-u" if update else "-i"
    say(
        f"{'Updating' if update else 'Installing'} {modules} in database {db} "
        f"(log: {log})"
    )
    proc = subprocess.run(
        [
            *ctx.odoo_bin,
            "-d",
            db,
            flag,
            modules,
            "--stop-after-init",
            "--no-http",
            "--log-level=warn",
            f"--logfile={log}",
        ],
        check=False,
    )
    text = log.read_text(errors="replace") if log.exists() else ""
    errors = [
        line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line
    ]
    if proc.returncode != 0 or errors:
        sys.stderr.write("\n".join(text.splitlines()[-60:]) + "\n")
        die(
            f"Odoo could not {'update' if update else 'install'} {modules} in {db}; "
            f"see {log}."
        )


# ---------------------------------------------------------------------------
# test
# ---------------------------------------------------------------------------


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    browser_passed: int = 0
    browser_failed: int = 0
    # "Class.test_method" of every failed or erroring test, and of the
    # browser tests among them
    failures: list = field(default_factory=list)
    browser_failures: list = field(default_factory=list)
    # "Class.test_method" of the passed tests
    passes: list = field(default_factory=list)
    # browser tests that failed, then passed when run again
    passed_on_rerun: list = field(default_factory=list)

    @property
    def total(self):
        return self.passed + self.failed + self.skipped


def read_junit(path):
    counts = Counts()
    if not path.exists():
        counts.failed = 1  # the runner died before writing its report
        return counts
    for case in ET.parse(path).iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        browser = any(prop.get("name") == "browser" for prop in case.iter("property"))
        if failed:
            counts.failed += 1
            counts.browser_failed += browser
            owner = case.get("classname", "").rsplit(".", 1)[-1]
            counts.failures.append(f"{owner}.{case.get('name')}")
            if browser:
                counts.browser_failures.append(counts.failures[-1])
        elif skipped:
            counts.skipped += 1
        else:
            counts.passed += 1
            counts.browser_passed += browser
            owner = case.get("classname", "").rsplit(".", 1)[-1]
            counts.passes.append(f"{owner}.{case.get('name')}")
    return counts


def pytest(ctx, args, report, env=None):
    report.unlink(missing_ok=True)
    cmd = [
        str(ctx.python),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        "-o",
        "junit_family=xunit1",
        *args,
    ]
    subprocess.run(cmd, cwd=ROOT, check=False, env=env)
    return read_junit(report)


def lint(ctx):
    """ruff (lint + format) and pylint-odoo's mandatory checks; True when clean."""
    say("Lint: ruff check, ruff format --check, pylint-odoo mandatory checks")
    checks = [
        [str(ctx.python), "-m", "ruff", "check", "."],
        [str(ctx.python), "-m", "ruff", "format", "--check", "--quiet", "."],
        [str(ctx.python), "-m", "pylint", "--rcfile=.pylintrc-mandatory", *ADDONS],
    ]
    ok = True
    for cmd in checks:
        ok &= subprocess.run(cmd, cwd=ROOT, check=False).returncode == 0
    return ok


def odoo_suite(ctx):
    db = ctx.environ.get("LOYALTY_MLM_TEST_DB") or f"{ADDON}_test_{os.getpid()}"
    pg.drop_database(ctx.db_options, db)
    webshop = ctx.environ.get("LOYALTY_MLM_WEBSHOP", "1") != "0"
    try:
        # The add-on alone first (it must install without a web shop), then
        # the bridge, which brings website_sale_loyalty.
        odoo_install(ctx, db, logname="test-install")
        if webshop:
            odoo_install(ctx, db, logname="test-install-webshop", modules=BRIDGE)
        say(f"Odoo suite: pytest-odoo on {db}, browser tests in headless Chromium")
        selection = ctx.environ.get("LOYALTY_MLM_TESTS") or " ".join(
            f"{module}/tests" for module in (ADDONS if webshop else (ADDON,))
        )
        return pytest(
            ctx,
            [
                "-p",
                "harness.pytest_mlm",
                f"--odoo-config={ctx.config}",
                f"--odoo-database={db}",
                "--odoo-http",
                "--odoo-log-level=warn",
                *selection.split(),
            ],
            ctx.run_dir / "odoo-tests.xml",
        )
    finally:
        if not ctx.environ.get("LOYALTY_MLM_KEEP_DB"):
            pg.drop_database(ctx.db_options, db)
            shutil.rmtree(ctx.run_dir / "data" / "filestore" / db, ignore_errors=True)


def cmd_test(environ):
    ctx = make_context(environ)
    odoo_src, skip_reason = None, None
    if environ.get("LOYALTY_MLM_DB_FREE_ONLY") == "1":
        skip_reason = "LOYALTY_MLM_DB_FREE_ONLY=1 asked for the DB-free tests only."
    else:
        try:
            odoo_src = locate_odoo(environ)
        except OdooNotFound as exc:
            if environ.get("LOYALTY_MLM_ALLOW_NO_ODOO") != "1":
                die(
                    f"{exc} (To run only the DB-free tests, set "
                    "LOYALTY_MLM_DB_FREE_ONLY=1.)"
                )
            skip_reason = str(exc)
    prepare(ctx, odoo_src, browser=True)

    lint_ok = lint(ctx)
    say("DB-free tests (pure math, the harness itself)")
    db_free = pytest(ctx, ["-p", "no:odoo", "tests"], ctx.run_dir / "db-free-tests.xml")
    suite = odoo_suite(ctx) if odoo_src else None

    print("\n==================== loyalty_mlm test summary ====================")
    print(f"lint:          {'clean' if lint_ok else 'FAILED'}")
    print(
        f"DB-free tests: {db_free.passed} passed, {db_free.failed} failed, "
        f"{db_free.skipped} skipped"
    )
    total = Counts(db_free.passed, db_free.failed, db_free.skipped)
    if suite:
        print(
            f"Odoo tests:    {suite.passed} passed, {suite.failed} failed, "
            f"{suite.skipped} skipped (in a real database)"
        )
        print(
            f"  of which browser tests (HttpCase, headless Chromium): "
            f"{suite.browser_passed} passed, {suite.browser_failed} failed"
        )
        total.passed += suite.passed
        total.failed += suite.failed
        total.skipped += suite.skipped
    else:
        print(f"{SKIP_LINE} {skip_reason}")
    failed = total.failed + (0 if lint_ok else 1)
    print(
        f"total: {total.passed} passed, {total.failed} failed, {total.skipped} skipped"
    )
    if suite and suite.total == 0:
        print("The Odoo suite collected no test: counted as a failure.")
        failed += 1
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# test-peers: Odoo's and OCA's loyalty suites on a database with loyalty_mlm
# ---------------------------------------------------------------------------

# (module, where its tests live): Odoo's source tree or the venv (OCA add-ons
# installed from PyPI into site-packages/odoo/addons).
PEER_SUITES = (
    ("loyalty", "odoo"),
    ("sale_loyalty", "odoo"),
    ("pos_loyalty", "odoo"),
    ("loyalty_partner_applicability", "venv"),
    ("sale_loyalty_partner_applicability", "venv"),
)
# What the baseline (LOYALTY_MLM_PEERS_BASELINE=1) installs: loyalty_mlm's
# dependencies and the OCA suites' modules, not loyalty_mlm.
PEER_BASELINE_MODULES = (
    "contacts,crm,sale_loyalty,sale_margin,pos_loyalty,portal,"
    "loyalty_partner_applicability,sale_loyalty_partner_applicability"
)
# Failures of Odoo's own that happen without loyalty_mlm too (checked with
# LOYALTY_MLM_PEERS_BASELINE=1): named in the summary, not counted against us.
KNOWN_PEER_FAILURES = {
    (
        "sale_loyalty",
        "TestSaleCouponProgramNumbers.test_coupon_discount_with_taxes_applied",
    ): "sale_loyalty reads sale.order.line.is_delivery, a field of the "
    "delivery module, which neither sale_loyalty nor loyalty_mlm depends on",
}


def peer_test_dirs(ctx, suites):
    """{module: its tests folder} for the selected suites."""
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run(
        [str(ctx.python), "-c", where],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    roots = {"odoo": ctx.odoo_src / "addons", "venv": Path(site) / "odoo" / "addons"}
    dirs = {}
    for module, where in PEER_SUITES:
        if module not in suites:
            continue
        tests = roots[where] / module / "tests"
        if not tests.is_dir():
            die(f"No tests folder for {module}: {tests} does not exist.")
        dirs[module] = tests
    return dirs


def peer_summary(results, baseline=False, known=None):
    """Print one line per suite, the failures (known ones named as Odoo's own)
    and a total line; 1 if a failure is not a known one or a suite is empty."""
    known = KNOWN_PEER_FAILURES if known is None else known
    what = "WITHOUT loyalty_mlm (baseline)" if baseline else "with loyalty_mlm"
    print(f"\n============ peer suites on a database {what} ============")
    total, unexpected, known_failed = Counts(), 0, 0
    for module, counts in results.items():
        print(
            f"{module + ':':37} {counts.passed:4} passed, {counts.failed:3} failed, "
            f"{counts.skipped:3} skipped"
        )
        if counts.total == 0:
            print("    collected no test: counted as a failure")
            unexpected += 1
        for name in counts.passed_on_rerun:
            print(f"    passed when run again (failed the first time): {name}")
        for name in counts.failures:
            why = known.get((module, name))
            if why:
                print(f"    known, Odoo's own: {name} ({why})")
                known_failed += 1
            else:
                print(f"    FAILED: {name}")
                unexpected += 1
        total.passed += counts.passed
        total.failed += counts.failed
        total.skipped += counts.skipped
    print(
        f"total: {total.passed} passed, {total.failed} failed "
        f"({known_failed} known), {total.skipped} skipped"
    )
    return 1 if unexpected else 0


def rerun_selection(names):
    """pytest -k expression for "Class.test_method" names."""
    return " or ".join(
        f"({owner} and {method})"
        for owner, method in (name.rsplit(".", 1) for name in names)
    )


def merge_rerun(counts, again):
    """Count the browser tests that failed and then passed as passed (named
    in `passed_on_rerun`); the rest stay failures."""
    for name in counts.browser_failures:
        if name not in again.passes:
            continue
        counts.failures.remove(name)
        counts.failed -= 1
        counts.passed += 1
        counts.passed_on_rerun.append(name)


def cmd_test_peers(environ):
    """Run Odoo's loyalty, sale_loyalty, pos_loyalty suites and OCA's two
    partner-applicability suites on one throwaway database with loyalty_mlm
    installed (the full registry, demo data), one pytest-odoo run per suite."""
    ctx = prepared_with_odoo(environ, browser=True)
    known = {module for module, _where in PEER_SUITES}
    suites = (environ.get("LOYALTY_MLM_PEER_SUITES") or " ".join(known)).split()
    unknown = sorted(set(suites) - known)
    if unknown:
        die(f"LOYALTY_MLM_PEER_SUITES: no such suite {', '.join(unknown)}.")
    dirs = peer_test_dirs(ctx, suites)
    baseline = environ.get("LOYALTY_MLM_PEERS_BASELINE") == "1"
    modules = (
        PEER_BASELINE_MODULES
        if baseline
        else f"{ADDON},loyalty_partner_applicability,sale_loyalty_partner_applicability"
    )
    db = ctx.environ.get("LOYALTY_MLM_TEST_DB") or f"{ADDON}_peers_{os.getpid()}"
    pg.drop_database(ctx.db_options, db)
    results = {}
    try:
        odoo_install(ctx, db, logname="peers-install", modules=modules)
        for module, tests in dirs.items():
            say(f"Peer suite {module}: pytest-odoo on {db} ({tests})")
            args = [
                "-p",
                "harness.pytest_mlm",
                f"--odoo-config={ctx.config}",
                f"--odoo-database={db}",
                "--odoo-http",
                "--odoo-log-level=warn",
                # Odoo's test folders are outside this repository: keep
                # pytest's root (and our pyproject options) here.
                f"--rootdir={ROOT}",
                str(tests),
            ]
            counts = pytest(ctx, args, ctx.run_dir / f"peers-{module}.xml")
            if counts.browser_failures:
                # Tours wait 10 s per step: on a loaded machine some time out
                # (the 6 of pos_loyalty that did passed when run again). Run
                # the failed ones once more; a real failure fails twice.
                say(f"Peer suite {module}: running the failed browser tests again")
                again = pytest(
                    ctx,
                    [*args, "-k", rerun_selection(counts.browser_failures)],
                    ctx.run_dir / f"peers-{module}-rerun.xml",
                )
                merge_rerun(counts, again)
            results[module] = counts
    finally:
        if not ctx.environ.get("LOYALTY_MLM_KEEP_DB"):
            pg.drop_database(ctx.db_options, db)
            shutil.rmtree(ctx.run_dir / "data" / "filestore" / db, ignore_errors=True)

    return peer_summary(results, baseline)


def cmd_lint(environ):
    ctx = make_context(environ)
    try:
        odoo_src = locate_odoo(environ)
    except OdooNotFound:
        odoo_src = None
    prepare(ctx, odoo_src)
    return 0 if lint(ctx) else 1


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------

RUN_CRONS = """
crons = env["ir.cron"].with_context(active_test=False).search([])
ours = [c for c in crons if c.get_external_id()[c.id].startswith("loyalty_mlm.")]
for cron in ours:
    print("[loyalty_mlm] running scheduled job:", cron.name)
    cron.method_direct_trigger()
env.cr.commit()
print("[loyalty_mlm] scheduled jobs run:", len(ours))
"""


def prepared_with_odoo(environ, browser=False):
    """Context for commands that cannot work without Odoo (demo, pot, peers)."""
    ctx = make_context(environ)
    try:
        odoo_src = locate_odoo(environ)
    except OdooNotFound as exc:
        die(str(exc))
    return prepare(ctx, odoo_src, browser=browser)


def cmd_demo(environ):
    ctx = prepared_with_odoo(environ)
    db = environ.get("LOYALTY_MLM_DEMO_DB", f"{ADDON}_demo")
    installed = (
        pg.database_exists(ctx.db_options, db)
        and pg.module_state(ctx.db_options, db, ADDON) == "installed"
    )
    if pg.database_exists(ctx.db_options, db) and not installed:
        die(
            f"Database {db} exists but has no {ADDON} installed; drop it or set "
            "LOYALTY_MLM_DEMO_DB to another name."
        )
    odoo_install(ctx, db, update=installed, logname="demo-install")
    # The web shop with the member's points (loyalty_mlm_website_sale).
    odoo_install(
        ctx,
        db,
        update=pg.module_state(ctx.db_options, db, BRIDGE) == "installed",
        logname="demo-install-webshop",
        modules=BRIDGE,
    )
    run(
        [*ctx.odoo_command("shell"), "-d", db, "--no-http", "--log-level=warn"],
        input=RUN_CRONS,
        text=True,
    )
    port = environ.get("LOYALTY_MLM_HTTP_PORT", "8069")
    say(
        f"Serving Odoo with the demo on http://localhost:{port}, scheduled "
        "jobs running  (logins in the README: admin/admin, sales/sales, "
        "cashier/cashier, portal member anna/anna; Ctrl-C stops it)"
    )
    sys.stdout.flush()
    os.execv(
        str(ctx.python),
        [
            *ctx.odoo_bin,
            "-d",
            db,
            f"--db-filter=^{db}$",
            f"--http-port={port}",
            # The tests' config keeps the scheduler off (max_cron_threads 0);
            # the demo runs its scheduled jobs (scores, stages, expiry) as a
            # production server would.
            "--max-cron-threads=1",
            "--log-level=warn",
        ],
    )


def cmd_pot(environ):
    """Export the .pot from an installed database and merge nl.po."""
    ctx = prepared_with_odoo(environ)
    db = environ.get("LOYALTY_MLM_I18N_DB", f"{ADDON}_demo")
    if pg.module_state(ctx.db_options, db, ADDON) != "installed":
        die(
            f"{ADDON} is not installed in {db}; run make demo first or set "
            "LOYALTY_MLM_I18N_DB to a database that has it."
        )
    modules = [
        module
        for module in ADDONS
        if pg.module_state(ctx.db_options, db, module) == "installed"
    ]
    odoo_install(ctx, db, update=True, logname="pot-update", modules=",".join(modules))
    for module in modules:
        i18n = ROOT / module / "i18n"
        run(
            [
                *ctx.odoo_bin,
                "-d",
                db,
                "--stop-after-init",
                "--log-level=warn",
                f"--i18n-export={i18n / (module + '.pot')}",
                f"--modules={module}",
            ]
        )
        merge = (
            "from harness.i18n import merge_po; import sys; "
            "missing = merge_po(sys.argv[1], sys.argv[2]); "
            "print('\\n'.join(['untranslated in nl.po:'] + missing) if missing "
            "else 'nl.po covers every string')"
        )
        run(
            [
                str(ctx.python),
                "-c",
                merge,
                str(i18n / f"{module}.pot"),
                str(i18n / "nl.po"),
            ],
            cwd=ROOT,
        )
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    commands = {
        "test": cmd_test,
        "test-peers": cmd_test_peers,
        "demo": cmd_demo,
        "lint": cmd_lint,
        "pot": cmd_pot,
    }
    if len(argv) != 1 or argv[0] not in commands:
        print(
            "usage: python3 -m harness.run test|test-peers|demo|lint|pot",
            file=sys.stderr,
        )
        return 2
    try:
        return commands[argv[0]](dict(os.environ))
    except HarnessError as exc:
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
