"""Benchmark of the nightly chain, step by step (loyalty_mlm, issue 22).

    .venv/bin/python bench/bench_chain.py --customers 100000 --orders 1000000 \\
        -d mlm_bench [-c .run/odoo.cfg] [--pos-share 0.1] [--member-share 0.3] \\
        [--commit [--trace]] [--kill-resume [--kill-at scores:1:0.5,...]]

Against a database with loyalty_mlm installed: use a throwaway copy
(createdb -T yourdb mlm_bench).

1. generates in SQL (bench_scores.generate: a company of its own, N
   customers, M orders, --pos-share of them POS orders), then a member
   programme for the company and a member card for --member-share of the
   customers, each with --lots earned ledger lots dated over the last
   12 / (1 - --expired-share) months (12-month validity: about
   --expired-share of the lots are past their expiry date), a member-since
   date and a referral code (what enrolment gives a member);
2. the floor (bench_scores.floor: one SQL aggregation over the same orders),
   measured in the run of the chain;
3. the nightly chain, each step the way the scheduler runs it (see
   run_cron): the `_cron_*` method called again while it reports work done
   and work remaining (ir.cron._run_job), a commit after each call with
   --commit:
   scores (`_cron_refresh_scores`, context mlm_scores_only so that the
   stages are timed apart), stages (`_mlm_refresh_all_stages`, the first
   assignment, then again: an unchanged night), tier review
   (`_cron_review`), treatment planning (the plans the treatment job's
   walk makes over a round, range by range, without firing them),
   treatments (`_cron_mlm_treatments`), KPI snapshots
   (`_cron_snapshots`), expiry (`_cron_expire_points`).
   Per step: calls, wall seconds, queries, peak RSS of the process during
   the step (VmHWM, reset through /proc/self/clear_refs) and the ratio of
   the wall time to the floor's.

Without --commit everything happens in one transaction, rolled back at the
end (no commit between calls; --trace traces that one run, wall times
included). With --commit the generated data is
committed (and VACUUM ANALYZEd) and the chain runs in a fresh Python
process (bench_chain.py --run-chain) that commits after every call, as
ir.cron does; --trace then copies the database first and runs the chain a
second time on the copy under tracemalloc, for the peak Python memory of
each step (tracemalloc slows Python down: its wall times are printed apart
and are not the step's time).

--kill-resume (implies --commit): the demonstration that the chain can be
killed at any point (issue 22, item 5). After generating, the database is
copied twice (A, B). On A the chain runs once, uninterrupted. On B it is
started, killed with SIGKILL at each --kill-at point (step:commits:seconds:
that many seconds after that many commits of that step), restarted from
the top each time as the scheduler would, then run to the end. Prints the
fingerprints of both final states (scores, stages and their history,
tiers and their history, ledger and allocations, treatment logs, KPI
snapshots), whether they are the same, and the double postings found.

Not a test: timings depend on the machine.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scores  # noqa: E402 (the bench folder, not a package)

# The chain, in the scheduler's order: (key, label).
STEPS = (
    ("scores", "scores (_cron_refresh_scores)"),
    ("stages", "stages, first assignment"),
    ("stages_again", "stages again (unchanged night)"),
    ("tiers", "tier review (_cron_review)"),
    ("plan", "treatment planning (the walk's plans of every contact)"),
    ("treatments", "treatments (_cron_mlm_treatments)"),
    ("kpi", "KPI snapshots (_cron_snapshots)"),
    ("expiry", "expiry (_cron_expire_points)"),
)
STEP_KEYS = [key for key, _label in STEPS]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--orders", type=int, default=100000)
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument(
        "--pos-share", type=float, default=0.1, help="share of POS orders (0..1)"
    )
    parser.add_argument(
        "--member-share",
        type=float,
        default=0.3,
        help="share of the customers with a member card (0..1)",
    )
    parser.add_argument("--lots", type=int, default=6, help="earned lots per card")
    parser.add_argument("--expired-share", type=float, default=0.4)
    parser.add_argument(
        "--score-budget",
        type=float,
        help="time budget (s) of a score call (default: the cron's); "
        "0: one batch per call",
    )
    parser.add_argument(
        "--expiry-batch", type=int, help="cards per expiry call (default: the cron's)"
    )
    parser.add_argument(
        "--steps",
        default=",".join(STEP_KEYS),
        help="the steps to run, in the chain's order (default: all)",
    )
    parser.add_argument(
        "--treatment-calls",
        type=int,
        help="stop the treatment step after this many calls (default: none); "
        "the table shows what was left",
    )
    parser.add_argument(
        "--treatment-budget",
        type=float,
        help="time budget (s) of a treatment call (default: the cron's); "
        "0: one batch of 500 customers per call",
    )
    parser.add_argument(
        "--commit",
        action="store_true",
        help="commit the generated data and after each call (throwaway database!)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="with --commit: also run the chain under tracemalloc on a copy; "
        "without: the one run is traced",
    )
    parser.add_argument(
        "--kill-resume",
        action="store_true",
        help="kill the chain at the --kill-at points, resume, compare final states",
    )
    parser.add_argument(
        "--kill-at",
        default="scores:1:0.3,stages:0:1.0,treatments:2:0.3,expiry:1:0.1",
        help=f"step:commits:seconds[,...] (steps: {', '.join(STEP_KEYS)})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases the script copies"
    )
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="generate (and commit) the data set, print its time, stop",
    )
    parser.add_argument(
        "--reuse",
        type=int,
        metavar="COMPANY_ID",
        help="with --commit: run the chain on the data a --generate-only run"
        " left in this database (a copy of it: the chain changes it), for the"
        " company it printed; with --kill-resume: copy that database to A and"
        " B (it is left unchanged)",
    )
    parser.add_argument(
        "--compare",
        type=int,
        metavar="COMPANY_ID",
        help="only compare the final states of the copies <database>_a and "
        "<database>_b left by --kill-resume --keep (company of the bench)",
    )
    # Internal: the chain alone, in its own process (see run_chain_process).
    parser.add_argument(
        "--run-chain", type=int, metavar="COMPANY_ID", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.orders < args.customers:
        parser.error("--orders must be at least --customers (one order each)")
    if args.kill_resume:
        args.commit = True
    args.steps = args.steps.split(",")
    if set(args.steps) - set(STEP_KEYS):
        parser.error(f"--steps: choose among {', '.join(STEP_KEYS)}")
    args.kill_points = []
    for spec in filter(None, args.kill_at.split(",")):
        step, commits, seconds = spec.split(":")
        if step not in STEP_KEYS:
            parser.error(f"--kill-at: unknown step {step!r}")
        args.kill_points.append((step, int(commits), float(seconds)))
    return args


# ---------------------------------------------------------------------------
# Odoo set-up and databases
# ---------------------------------------------------------------------------


def setup_odoo(args, database):
    sys.path.insert(0, str(ROOT))
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        ["-c", args.config, "-d", database, "--log-level=warn", "--no-http"]
    )


def close_database(database):
    """Drop this process's registry and connections of `database`, so that
    it can serve as a template."""
    import odoo  # noqa: PLC0415

    odoo.modules.registry.Registry.delete(database)
    odoo.sql_db.close_db(database)


def admin_execute(statement):
    """Run `statement` (CREATE / DROP DATABASE) from the postgres database."""
    import odoo  # noqa: PLC0415

    for attempt in range(10):
        cr = odoo.sql_db.db_connect("postgres").cursor()
        cr._cnx.autocommit = True
        try:
            cr.execute(statement)
            return
        except Exception as error:  # retried, then raised
            # An autovacuum worker on the template blocks CREATE DATABASE.
            if "being accessed" not in str(error) or attempt == 9:
                raise
            time.sleep(3)
        finally:
            cr.close()


def wait_backends(database, timeout=600):
    """Wait until no session is connected to `database`; returns the
    seconds waited. A client killed with SIGKILL leaves its PostgreSQL
    backend running until its statement ends (and rolls back): its locks
    would hold up the next run, as after a crashed Odoo worker."""
    import odoo  # noqa: PLC0415

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        cr = odoo.sql_db.db_connect("postgres").cursor()
        cr._cnx.autocommit = True
        try:
            cr.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            if not cr.fetchone()[0]:
                break
        finally:
            cr.close()
        time.sleep(0.5)
    return time.perf_counter() - start


def copy_database(source, target):
    from psycopg2 import sql  # noqa: PLC0415

    start = time.perf_counter()
    admin_execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(target), sql.Identifier(source)
        )
    )
    return time.perf_counter() - start


def drop_database(database):
    from psycopg2 import sql  # noqa: PLC0415

    close_database(database)
    admin_execute(
        sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database))
    )


# ---------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------


def generate_members(env, company, share, lots, expired_share):
    """A member programme for `company`, a card for `share` of its bench
    customers (bench_partner, from bench_scores.generate) with `lots` earned
    lots each; returns the number of cards."""
    cr = env.cr
    program = env["loyalty.program"].create(
        {"name": "Bench Members", "program_type": "loyalty", "company_id": company.id}
    )
    company.mlm_program_id = program
    company.mlm_points_validity_months = 12
    env.flush_all()
    prefix = f"bench-{company.id}-"
    cr.execute("SELECT setseed(0.24)")
    cr.execute(
        """
        CREATE TEMP TABLE bench_member ON COMMIT DROP AS
        SELECT p.id AS partner_id, nextval('loyalty_card_id_seq')::int AS card_id,
               p.n
          FROM bench_partner p WHERE random() < %s
        """,
        (share,),
    )
    # Uniform over 12 / (1 - share) months: `expired_share` of the lots are
    # past the 12-month validity. Points spread so that the 12-month sums
    # fall in every tier of the default ladder (0, 500, 1500).
    span_days = 365.0 / max(1e-6, 1.0 - expired_share)
    cr.execute(
        """
        CREATE TEMP TABLE bench_lot ON COMMIT DROP AS
        SELECT m.partner_id, m.card_id, m.n,
               now() - random() * %(span)s * interval '1 day' AS date,
               round((1 + random() * random() * 600)::numeric, 2) AS points
          FROM bench_member m, generate_series(1, %(lots)s)
        """,
        {"span": span_days, "lots": lots},
    )
    cr.execute(
        """
        INSERT INTO loyalty_card (id, program_id, company_id, partner_id, code,
                                  points, active, create_uid, write_uid,
                                  create_date, write_date)
        SELECT m.card_id, %(program)s, %(company)s, m.partner_id,
               %(prefix)s || m.n, s.points, true, 1, 1, now(), now()
          FROM bench_member m
          JOIN (SELECT card_id, SUM(points)::float8 AS points
                  FROM bench_lot GROUP BY card_id) s ON s.card_id = m.card_id
        """,
        {"program": program.id, "company": company.id, "prefix": prefix},
    )
    cr.execute(
        """
        INSERT INTO loyalty_mlm_ledger (date, partner_id, card_id, card_code,
                                        program_id, company_id, points, kind,
                                        user_id, reason, expiry_date, remaining,
                                        unallocated, create_uid, write_uid,
                                        create_date, write_date)
        SELECT date, partner_id, card_id, %(prefix)s || n, %(program)s,
               %(company)s, points, 'earn', 1, 'Bench lot',
               (date + interval '12 months')::date, points, 0, 1, 1, now(), now()
          FROM bench_lot
        """,
        {"program": program.id, "company": company.id, "prefix": prefix},
    )
    # What enrolment gives a member: the date and a referral code (unique:
    # built from the contact's id).
    cr.execute(
        """
        UPDATE res_partner p
           SET mlm_member_since = f.day,
               mlm_referral_code = 'B' || lpad(upper(to_hex(p.id)), 7, '0')
          FROM (SELECT partner_id, MIN(date)::date AS day
                  FROM bench_lot GROUP BY partner_id) f
         WHERE p.id = f.partner_id
        """
    )
    cr.execute("SELECT COUNT(*) FROM bench_member")
    cards = cr.fetchone()[0]
    for table in ("loyalty_card", "loyalty_mlm_ledger", "res_partner"):
        cr.execute(f"ANALYZE {table}")
    return cards


def generate(env, args):
    """The company and its data set; returns (company, cards, seconds)."""
    start = time.perf_counter()
    company = env["res.company"].create({"name": f"MLM Chain {os.getpid()}"})
    env = env(context={"allowed_company_ids": [company.id]})
    company = company.with_env(env)
    bench_scores.generate(env, company, args.customers, args.orders, args.pos_share)
    cards = generate_members(
        env, company, args.member_share, args.lots, args.expired_share
    )
    return company, cards, time.perf_counter() - start


GENERATED_TABLES = (
    "res_partner",
    "sale_order",
    "sale_order_line",
    "pos_order",
    "pos_order_line",
    "loyalty_card",
    "loyalty_mlm_ledger",
)


def vacuum(registry):
    with registry.cursor() as vacuum_cr:
        vacuum_cr._cnx.autocommit = True
        for table in GENERATED_TABLES:
            vacuum_cr.execute(f"VACUUM ANALYZE {table}")


# ---------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------


def rss_reset():
    """Reset the process's peak RSS (VmHWM); returns the current RSS (MiB)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return proc_status("VmRSS")


def proc_status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return None


def run_cron(env, xmlid, call, commit, on_commit, max_calls=None):
    """Call `call(env)` as ir.cron._run_job does: a progress record in the
    context, the call, a flush, a commit; again while the call reported
    work done and work remaining (the scheduler's 10 calls per run then
    "reschedule ASAP" make no difference to what is done); at most
    `max_calls` calls. Returns (calls, work the last call left)."""
    cron = env.ref(xmlid)
    calls = 0
    while True:
        cron_ctx, progress = cron._add_progress()
        if commit:
            env.cr.commit()
        call(env(context=dict(env.context, **cron_ctx.env.context)))
        env.flush_all()
        calls += 1
        if commit:
            env.cr.commit()
            on_commit(calls)
        if not progress.remaining or not progress.done or calls == max_calls:
            return calls, progress.remaining


def chain_steps(env, company, args):
    """{step key: function(on_commit) -> calls}, in the chain's order."""
    commit = args.commit
    score_kwargs = {"companies": company}
    if args.score_budget is not None:
        score_kwargs["time_budget"] = args.score_budget
    expiry_kwargs = {}
    if args.expiry_batch:
        expiry_kwargs["batch_size"] = args.expiry_batch
    treatment_kwargs = {}
    if args.treatment_budget is not None:
        treatment_kwargs["time_budget"] = args.treatment_budget

    def scores(on_commit):
        return run_cron(
            env,
            "loyalty_mlm.ir_cron_scores_full",
            lambda e: (
                e["loyalty.mlm.partner.score"]
                .with_context(mlm_scores_only=True)
                ._cron_refresh_scores(**score_kwargs)
            ),
            commit,
            on_commit,
        )

    def stages(on_commit):
        # What the score job chains once the scores are done (one call,
        # inside the score job's last transaction).
        env["loyalty.mlm.stage"].with_context(
            mlm_defer_treatments=True
        )._mlm_refresh_all_stages(company)
        env.flush_all()
        if commit:
            env.cr.commit()
            on_commit(1)
        return 1, 0

    def plan(on_commit):
        # What the treatment job's walk plans over a whole round, range by
        # range as its calls do, without firing anything: the planning of
        # the chain, apart from the treatments themselves (mails, coupons).
        Treatment = env["loyalty.mlm.treatment"].sudo()
        due = sum(
            len(partners)
            for _end, walk_plan, _seconds in Treatment._mlm_range_plans(company, 0)
            for _rule, partners in walk_plan
        )
        return 1, due

    def cron(xmlid, model, method, max_calls=None, **kwargs):
        def step(on_commit):
            return run_cron(
                env,
                xmlid,
                lambda e: getattr(e[model], method)(**kwargs),
                commit,
                on_commit,
                max_calls,
            )

        return step

    return {
        "scores": scores,
        "stages": stages,
        "stages_again": stages,
        "plan": plan,
        "tiers": cron(
            "loyalty_mlm.ir_cron_review_tiers", "loyalty.mlm.tier", "_cron_review"
        ),
        "treatments": cron(
            "loyalty_mlm.ir_cron_treatments",
            "loyalty.mlm.treatment",
            "_cron_mlm_treatments",
            max_calls=args.treatment_calls,
            **treatment_kwargs,
        ),
        "kpi": cron(
            "loyalty_mlm.ir_cron_kpi_snapshots",
            "loyalty.mlm.kpi.snapshot",
            "_cron_snapshots",
            companies=company,
        ),
        "expiry": cron(
            "loyalty_mlm.ir_cron_expire_points",
            "loyalty.mlm.ledger",
            "_cron_expire_points",
            **expiry_kwargs,
        ),
    }


def work_counts(env, company):
    """What the chain produced so far (for the table's labels)."""
    cr = env.cr
    counts = {}
    for key, query in (
        (
            "scores",
            "SELECT COUNT(*) FROM loyalty_mlm_partner_score WHERE company_id = %s",
        ),
        (
            "stage_moves",
            "SELECT COUNT(*) FROM loyalty_mlm_stage_history WHERE company_id = %s",
        ),
        (
            "tier_moves",
            "SELECT COUNT(*) FROM loyalty_mlm_tier_history WHERE company_id = %s",
        ),
        (
            "treatments",
            "SELECT COUNT(*) FROM loyalty_mlm_treatment_log WHERE company_id = %s",
        ),
        ("kpi", "SELECT COUNT(*) FROM loyalty_mlm_kpi_snapshot WHERE company_id = %s"),
        (
            "expired",
            "SELECT COUNT(*) FROM loyalty_mlm_ledger WHERE company_id = %s"
            " AND kind = 'expire'",
        ),
    ):
        cr.execute(query, (company.id,))
        counts[key] = cr.fetchone()[0]
    return counts


def run_chain(env, company, args, emit):
    """Floor, then each step; `emit(kind, **data)` reports progress and
    results. Returns the list of result dicts."""
    import odoo.sql_db  # noqa: PLC0415

    trace = getattr(args, "trace_here", False)
    bench_scores.floor(env, company)  # warm the cache, as bench_scores does
    start = time.perf_counter()
    floor_rows = bench_scores.floor(env, company)
    floor_time = time.perf_counter() - start
    emit("floor", seconds=floor_time, rows=floor_rows)
    if args.commit:
        env.cr.commit()
    results = []
    steps = chain_steps(env, company, args)
    before = work_counts(env, company)
    if trace:
        tracemalloc.start()
    for key in STEP_KEYS:
        if key not in args.steps:
            continue
        emit("start", step=key)
        rss_before = rss_reset()
        if trace:
            tracemalloc.reset_peak()
        queries = odoo.sql_db.sql_counter
        start = time.perf_counter()
        calls, left = steps[key](lambda n, key=key: emit("commit", step=key, commits=n))
        seconds = time.perf_counter() - start
        queries = odoo.sql_db.sql_counter - queries
        peak_traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
        if key == "treatments" and left:
            # The job reports only that it is not done: the customers still
            # due, from a plan of the whole company (not timed).
            plan = env["loyalty.mlm.treatment"].sudo()._mlm_plan(company)
            left = sum(len(due) for _rule, due in plan)
        after = work_counts(env, company)
        result = {
            "step": key,
            "calls": calls,
            "left": left,
            "seconds": seconds,
            "queries": queries,
            "rss_before": rss_before,
            "rss_peak": proc_status("VmHWM"),
            "traced_peak": peak_traced,
            "ratio": seconds / floor_time,
            "made": {k: after[k] - before[k] for k in after},
        }
        before = after
        results.append(result)
        emit("done", **result)
    if trace:
        tracemalloc.stop()
    return floor_time, floor_rows, results


def run_chain_process(args):
    """--run-chain: the chain in this fresh process, committing as ir.cron
    does; one line per event on stdout (JSON) for the parent."""
    import odoo  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    registry = odoo.modules.registry.Registry(args.database)

    def emit(kind, **data):
        print(json.dumps({"event": kind, **data}), flush=True)

    with registry.cursor() as cr:
        # The scheduler's environment: the job's user (root), no company in
        # the context.
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env["res.company"].browse(args.run_chain)
        run_chain(env, company, args, emit)


def chain_command(args, database, trace=False):
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "-d",
        database,
        "-c",
        args.config,
        "--commit",
        "--run-chain",
        str(args.company_id),
        "--customers",
        str(args.customers),
        "--orders",
        str(args.orders),
    ]
    if args.score_budget is not None:
        command += ["--score-budget", str(args.score_budget)]
    if args.expiry_batch:
        command += ["--expiry-batch", str(args.expiry_batch)]
    if args.treatment_calls:
        command += ["--treatment-calls", str(args.treatment_calls)]
    if args.treatment_budget is not None:
        command += ["--treatment-budget", str(args.treatment_budget)]
    command += ["--steps", ",".join(args.steps)]
    if trace:
        command.append("--trace")
    return command


def spawn_chain(args, database, trace=False, kill=None, log=None):
    """Run the chain in a subprocess; `kill` = (step, commits, seconds):
    SIGKILL it that long after that many commits of that step. Returns
    (floor time, floor rows, results, killed: None or where)."""
    process = subprocess.Popen(
        chain_command(args, database, trace),
        stdout=subprocess.PIPE,
        stderr=log or subprocess.DEVNULL,
        text=True,
    )
    floor_time = floor_rows = None
    results = []
    state = {"step": None, "commits": 0, "killed": None}
    timer = None

    def do_kill():
        state["killed"] = f"{state['step']} (after {state['commits']} of its commits)"
        process.send_signal(signal.SIGKILL)

    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "floor":
            floor_time, floor_rows = event["seconds"], event["rows"]
        elif event["event"] == "start":
            state.update(step=event["step"], commits=0)
        elif event["event"] == "commit":
            state["commits"] = event["commits"]
        elif event["event"] == "done":
            results.append(event)
        if (
            kill
            and timer is None
            and state["step"] == kill[0]
            and (state["commits"] >= kill[1])
            and event["event"] in ("start", "commit")
        ):
            timer = threading.Timer(kill[2], do_kill)
            timer.start()
    process.wait()
    if timer:
        timer.cancel()
    if process.returncode and not state["killed"]:
        raise RuntimeError(f"the chain on {database} failed ({process.returncode})")
    return floor_time, floor_rows, results, state["killed"]


# ---------------------------------------------------------------------------
# Final state: fingerprints
# ---------------------------------------------------------------------------


# (label, query): each returns one row of values; the md5 ones hash every
# row as JSON without the columns that legitimately differ between two runs
# (ids from sequences, timestamps, random coupon codes).
def fingerprint_queries(company_id):
    return [
        (
            "scores: rows, md5",
            """
            SELECT COUNT(*), md5(string_agg(j::text, '|' ORDER BY j::text))
              FROM (SELECT to_jsonb(s) - ARRAY['id', 'create_date', 'write_date',
                                               'create_uid', 'write_uid'] AS j
                      FROM loyalty_mlm_partner_score s WHERE company_id = %(c)s) t
            """,
        ),
        (
            "stages and tiers of the contacts: md5",
            """
            SELECT md5(string_agg(j::text, '|' ORDER BY id))
              FROM (SELECT id, jsonb_build_array(
                               mlm_stage_id -> %(k)s, mlm_stage_locked_until -> %(k)s,
                               mlm_tier_id -> %(k)s, mlm_tier_below_since -> %(k)s,
                               mlm_member_since, mlm_referral_code) AS j
                      FROM res_partner
                     WHERE mlm_stage_id ? %(k)s OR mlm_tier_id ? %(k)s) t
            """,
        ),
        (
            "stage history: rows, md5",
            """
            SELECT COUNT(*), md5(string_agg(j::text, '|' ORDER BY j::text))
              FROM (SELECT (to_jsonb(h) - ARRAY['id', 'date', 'create_date',
                                                'write_date'])
                           || jsonb_build_object('day', h.date::date) AS j
                      FROM loyalty_mlm_stage_history h WHERE company_id = %(c)s) t
            """,
        ),
        (
            "tier history: rows, md5",
            """
            SELECT COUNT(*), md5(string_agg(j::text, '|' ORDER BY j::text))
              FROM (SELECT (to_jsonb(h) - ARRAY['id', 'date', 'create_date',
                                                'write_date'])
                           || jsonb_build_object('day', h.date::date) AS j
                      FROM loyalty_mlm_tier_history h WHERE company_id = %(c)s) t
            """,
        ),
        (
            "ledger: entries, sum, md5",
            """
            SELECT COUNT(*), ROUND(SUM(points)::numeric, 2),
                   md5(string_agg(j::text, '|' ORDER BY j::text))
              FROM (SELECT points, to_jsonb(l) - ARRAY['id', 'date', 'create_date',
                                                       'write_date', 'res_id'] AS j
                      FROM loyalty_mlm_ledger l WHERE company_id = %(c)s) t
            """,
        ),
        (
            "ledger entries per kind",
            """
            SELECT string_agg(kind || ' ' || n || ' / ' || total, ', ' ORDER BY kind)
              FROM (SELECT kind, COUNT(*) AS n, ROUND(SUM(points)::numeric, 2) AS total
                      FROM loyalty_mlm_ledger WHERE company_id = %(c)s
                  GROUP BY kind) t
            """,
        ),
        (
            "allocations: rows, sum",
            """
            SELECT COUNT(*), ROUND(COALESCE(SUM(a.points), 0)::numeric, 2)
              FROM loyalty_mlm_ledger_allocation a
              JOIN loyalty_mlm_ledger l ON l.id = a.lot_id
             WHERE l.company_id = %(c)s
            """,
        ),
        (
            "member cards: count, points",
            """
            SELECT COUNT(*), ROUND(SUM(points)::numeric, 2) FROM loyalty_card
             WHERE program_id = (SELECT mlm_program_id FROM res_company
                                  WHERE id = %(c)s)
            """,
        ),
        (
            "treatment logs: rows, md5",
            """
            SELECT COUNT(*), md5(string_agg(j::text, '|' ORDER BY j::text))
              FROM (SELECT jsonb_build_array(
                               l.treatment_id, l.partner_id,
                               -- a stage entry's occasion names the history
                               -- row by id: its content instead
                               COALESCE(jsonb_build_array(h.partner_id,
                                                          h.to_stage_id,
                                                          h.date::date),
                                        to_jsonb(l.occasion)),
                               l.outcome, l.stage_id, l.trigger) AS j
                      FROM loyalty_mlm_treatment_log l
                 LEFT JOIN loyalty_mlm_stage_history h
                        ON l.occasion LIKE '%%:stage:%%'
                       AND h.id = CASE WHEN l.occasion LIKE '%%:stage:%%'
                                       THEN split_part(l.occasion, ':', 3)::int
                                  END
                     WHERE l.company_id = %(c)s) t
            """,
        ),
        (
            "treatment logs per outcome",
            """
            SELECT string_agg(outcome || ' ' || n, ', ' ORDER BY outcome)
              FROM (SELECT outcome, COUNT(*) AS n FROM loyalty_mlm_treatment_log
                     WHERE company_id = %(c)s GROUP BY outcome) t
            """,
        ),
        (
            "mails / activities / coupons of the treatments",
            """
            SELECT COUNT(mail_id), COUNT(activity_id), COUNT(coupon_id)
              FROM loyalty_mlm_treatment_log WHERE company_id = %(c)s
            """,
        ),
        (
            "KPI snapshots: rows, md5",
            """
            SELECT COUNT(*), md5(string_agg(j::text, '|' ORDER BY j::text))
              FROM (SELECT to_jsonb(k) - ARRAY['id', 'create_date', 'write_date']
                           AS j
                      FROM loyalty_mlm_kpi_snapshot k WHERE company_id = %(c)s) t
            """,
        ),
    ]


def integrity_queries(company_id):
    """Checks that must give 0 on any final state."""
    return [
        (
            "cards whose points != sum of their ledger",
            """
            SELECT COUNT(*) FROM loyalty_card c
              LEFT JOIN (SELECT card_id, SUM(points) AS total
                           FROM loyalty_mlm_ledger GROUP BY card_id) l
                ON l.card_id = c.id
             WHERE c.company_id = %(c)s
               AND abs(c.points - COALESCE(l.total, 0)) > 0.005
            """,
        ),
        (
            "lots expired twice (expire entries per lot > 1)",
            """
            SELECT COUNT(*) FROM (
                SELECT expired_lot_id FROM loyalty_mlm_ledger
                 WHERE company_id = %(c)s AND kind = 'expire'
              GROUP BY expired_lot_id HAVING COUNT(*) > 1) t
            """,
        ),
        (
            "expired lots with points left",
            """
            SELECT COUNT(*) FROM loyalty_mlm_ledger
             WHERE company_id = %(c)s AND points > 0 AND remaining > 0
               AND expiry_date < CURRENT_DATE
            """,
        ),
        (
            "lots allocated beyond their points",
            """
            SELECT COUNT(*) FROM (
                SELECT l.id FROM loyalty_mlm_ledger l
                  JOIN loyalty_mlm_ledger_allocation a ON a.lot_id = l.id
                 WHERE l.company_id = %(c)s AND l.points > 0
              GROUP BY l.id, l.points HAVING SUM(a.points) > l.points + 0.005) t
            """,
        ),
        (
            "treatment postings twice (bonus entries per log > 1)",
            """
            SELECT COUNT(*) FROM (
                SELECT res_id FROM loyalty_mlm_ledger
                 WHERE company_id = %(c)s AND kind = 'treatment'
              GROUP BY res_id HAVING COUNT(*) > 1) t
            """,
        ),
        (
            "welcome bonuses twice",
            """
            SELECT COUNT(*) FROM (
                SELECT partner_id FROM loyalty_mlm_ledger
                 WHERE company_id = %(c)s AND kind = 'welcome'
              GROUP BY partner_id HAVING COUNT(*) > 1) t
            """,
        ),
        (
            "occasions treated twice",
            """
            SELECT COUNT(*) FROM (
                SELECT 1 FROM loyalty_mlm_treatment_log WHERE company_id = %(c)s
              GROUP BY treatment_id, partner_id, occasion HAVING COUNT(*) > 1) t
            """,
        ),
        (
            "score runs still running",
            """
            SELECT COUNT(*) FROM loyalty_mlm_score_run
             WHERE company_id = %(c)s AND state = 'running'
            """,
        ),
    ]


def read_state(database, company_id):
    import odoo  # noqa: PLC0415

    params = {"c": company_id, "k": str(company_id)}
    state = {}
    with odoo.sql_db.db_connect(database).cursor() as cr:
        for label, query in fingerprint_queries(company_id):
            cr.execute(query, params)
            state[label] = " ".join(str(value) for value in cr.fetchone())
        checks = {}
        for label, query in integrity_queries(company_id):
            cr.execute(query, params)
            checks[label] = cr.fetchone()[0]
        cr.execute(
            "SELECT state, COUNT(*) FROM loyalty_mlm_score_run"
            " WHERE company_id = %s GROUP BY state ORDER BY state",
            (company_id,),
        )
        runs = ", ".join(f"{state} {count}" for state, count in cr.fetchall())
    return state, checks, runs


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def step_label(result):
    made = result["made"]
    label = dict(STEPS)[result["step"]]
    detail = {
        "scores": f"{made['scores']} new rows",
        "stages": f"{made['stage_moves']} moves",
        "stages_again": f"{made['stage_moves']} moves",
        "tiers": f"{made['tier_moves']} moves",
        "plan": f"{result['left']} customers due",
        "treatments": f"{made['treatments']} logs"
        + (f", {result['left']} customers left" if result.get("left") else ""),
        "kpi": f"{made['kpi']} new rows",
        "expiry": f"{made['expired']} lots",
    }[result["step"]]
    return f"{label}: {detail}"


def mib(value):
    return "" if value is None else f"{value:.0f}"


def print_table(floor_time, floor_rows, results, traced=None):
    traced = {r["step"]: r for r in traced or []}
    head = (
        "| step | calls | wall (s) | queries | RSS before / peak (MiB) "
        "| ratio to floor |"
    )
    rule = "|---|---:|---:|---:|---:|---:|"
    if traced:
        head += " traced peak (MiB) | traced wall (s) |"
        rule += "---:|---:|"
    print(head)
    print(rule)
    print(
        f"| floor: one SQL aggregation ({floor_rows} customers) | 1 | "
        f"{floor_time:.3f} | 1 | | 1.0x |" + (" | |" if traced else "")
    )
    total = 0.0
    for result in results:
        total += result["seconds"]
        row = (
            f"| {step_label(result)} | {result['calls']} | {result['seconds']:.3f} | "
            f"{result['queries']} | {mib(result['rss_before'])} / "
            f"{mib(result['rss_peak'])} | {result['ratio']:.1f}x |"
        )
        if traced:
            other = traced.get(result["step"], {})
            row += f" {mib(other.get('traced_peak'))} | {other.get('seconds', 0):.3f} |"
        print(row)
    print(
        f"| **chain** | | {total:.3f} | {sum(r['queries'] for r in results)} | | "
        f"{total / floor_time:.1f}x |" + (" | |" if traced else "")
    )
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def generate_in(args):
    """Generate in args.database; committed with --commit (then the
    database is left ready to copy). Returns (company id, cards, seconds,
    and with no commit the open cursor and env)."""
    import odoo  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    registry = odoo.modules.registry.Registry(args.database)
    cr = registry.cursor()
    env = api.Environment(cr, SUPERUSER_ID, {})
    company, cards, seconds = generate(env, args)
    print(
        f"generated {args.customers} customers, {args.orders} orders and "
        f"{cards} member cards with {cards * args.lots} lots in {seconds:.1f} s"
        f" (company {company.id})",
        flush=True,
    )
    if not args.commit:
        return company, cards, cr
    cr.commit()
    cr.close()
    start = time.perf_counter()
    vacuum(registry)
    print(f"VACUUM ANALYZE in {time.perf_counter() - start:.1f} s", flush=True)
    close_database(args.database)
    return company.id, cards, None


def main_in_transaction(args):
    """No --commit: generate and run the chain in one transaction, rolled
    back."""
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    company, _cards, cr = generate_in(args)
    try:
        env = api.Environment(cr, SUPERUSER_ID, {})
        args.trace_here = args.trace
        floor_time, floor_rows, results = run_chain(
            env, company.with_env(env), args, lambda kind, **data: None
        )
    finally:
        cr.rollback()
        cr.close()
    print("\none transaction, no commit between calls; rolled back\n")
    if args.trace:
        print("under tracemalloc: every wall time is a traced one\n")
    print_table(floor_time, floor_rows, results, results if args.trace else None)


def main_committed(args):
    if args.reuse:
        # A copy of a --generate-only database (createdb -T): no generation.
        args.company_id = args.reuse
    else:
        args.company_id, _cards, _cr = generate_in(args)
    if args.generate_only:
        return
    log_path = ROOT / ".run" / "logs" / f"bench-chain-{args.database}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    traced_db = f"{args.database}_traced"
    with open(log_path, "a") as log:
        if args.trace:
            seconds = copy_database(args.database, traced_db)
            print(f"copied to {traced_db} in {seconds:.1f} s", flush=True)
        floor_time, floor_rows, results, _k = spawn_chain(args, args.database, log=log)
        print_header(args)
        print_table(floor_time, floor_rows, results)
        traced = None
        if args.trace:
            print("\nthe same chain on the copy, under tracemalloc:\n", flush=True)
            _f, _r, traced, _k = spawn_chain(args, traced_db, trace=True, log=log)
            if not args.keep:
                drop_database(traced_db)
    if traced:
        print_table(floor_time, floor_rows, results, traced)


def print_header(args):
    print(
        f"\n{args.customers} customers, {args.orders} orders (POS share "
        f"{args.pos_share:.0%}), member share {args.member_share:.0%}; "
        "a commit after each call\n",
        flush=True,
    )


def main_kill_resume(args):
    if args.reuse:
        # A --generate-only database: copied to A and B, left as it is.
        args.company_id = args.reuse
    else:
        args.company_id, _cards, _cr = generate_in(args)
    copy_a, copy_b = f"{args.database}_a", f"{args.database}_b"
    for copy in (copy_a, copy_b):
        seconds = copy_database(args.database, copy)
        print(f"copied to {copy} in {seconds:.1f} s", flush=True)
    log_path = ROOT / ".run" / "logs" / f"bench-chain-{args.database}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        start = time.perf_counter()
        floor_time, floor_rows, results, _k = spawn_chain(args, copy_a, log=log)
        print(
            f"\nA: the chain uninterrupted in {time.perf_counter() - start:.1f} s\n",
            flush=True,
        )
        print_table(floor_time, floor_rows, results)
        print("\nB: killed (SIGKILL) and restarted from the top", flush=True)
        for number, point in enumerate(args.kill_points, start=1):
            start = time.perf_counter()
            _f, _r, done, killed = spawn_chain(args, copy_b, kill=point, log=log)
            elapsed = time.perf_counter() - start
            waited = wait_backends(copy_b)
            finished = ", ".join(r["step"] for r in done) or "none"
            print(
                f"  run {number}: kill asked {point[2]} s after {point[1]} "
                f"commit(s) of {point[0]}: killed during "
                f"{killed or 'nothing (ended first)'}, {elapsed:.1f} s after "
                f"the process started; steps finished: {finished}; "
                f"its database session gone {waited:.1f} s later",
                flush=True,
            )
        start = time.perf_counter()
        _f, _r, results_b, _k = spawn_chain(args, copy_b, log=log)
        print(
            f"  run {len(args.kill_points) + 1}: to the end in "
            f"{time.perf_counter() - start:.1f} s; what each step did:",
            flush=True,
        )
        for result in results_b:
            print(f"    {step_label(result)} ({result['calls']} calls)")
    compare_states(copy_a, copy_b, args.company_id)
    if not args.keep:
        for copy in (copy_a, copy_b):
            drop_database(copy)


def compare_states(copy_a, copy_b, company_id):
    """Print the final states of the two copies side by side."""
    state_a, checks_a, runs_a = read_state(copy_a, company_id)
    state_b, checks_b, runs_b = read_state(copy_b, company_id)
    print("\n| final state | A: uninterrupted | B: killed and resumed | same |")
    print("|---|---|---|---|")
    for label in state_a:
        same = "yes" if state_a[label] == state_b[label] else "**no**"
        print(f"| {label} | {state_a[label]} | {state_b[label]} | {same} |")
    for label in checks_a:
        print(f"| {label} | {checks_a[label]} | {checks_b[label]} | |")
    print(f"| score runs (by state) | {runs_a} | {runs_b} | |")
    same = state_a == state_b
    doubles = sum(checks_b[label] for label in checks_b if "twice" in label)
    print(f"\nsame final state: {'yes' if same else 'no'}")
    print(f"double postings: {doubles}")


def main():
    args = parse_args()
    setup_odoo(args, args.database)
    if args.compare:
        compare_states(f"{args.database}_a", f"{args.database}_b", args.compare)
    elif args.run_chain:
        args.trace_here = args.trace
        run_chain_process(args)
    elif args.kill_resume:
        main_kill_resume(args)
    elif args.commit:
        main_committed(args)
    else:
        main_in_transaction(args)


if __name__ == "__main__":
    main()
