"""Benchmark of the daily points expiry (loyalty_mlm, issues 13 and 22).

    .venv/bin/python bench/bench_expiry.py --cards 100000 --lots 10 \\
        -d mlm_bench [-c .run/odoo.cfg] [--expired-share 0.4] [--commit]

Against a database with loyalty_mlm installed. By default everything happens
in one transaction that is rolled back at the end; with --commit the generated
data is committed (and VACUUM ANALYZEd) before the measures and left in the
database: use a throwaway copy (createdb -T yourdb mlm_bench).

1. creates a company of its own with a member programme, N members with a
   card each and L earned lots per card (set-based SQL, generate_series),
   dated over three years with a 12-month validity, so about
   --expired-share of the lots are past their expiry date;
2. the floor: one SQL read pass over the expired lots (total left per
   card), fetched; the best of three;
3. the expiry job, as the scheduler runs it (called until nothing is
   left; with --commit each call is committed, as the scheduler does):
   wall time and queries;
4. checks: every card equals its ledger, every expired lot is closed, a
   second run posts nothing; counts the chatter messages and tracking
   values the run made (expected: none).

Prints a table, with the CPU time of the PostgreSQL backend next to the
wall time (on a shared machine the CPU time is the steadier of the two).
Not a test: timings depend on the machine.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=10000)
    parser.add_argument("--lots", type=int, default=10, help="earned lots per card")
    parser.add_argument("--expired-share", type=float, default=0.4)
    parser.add_argument(
        "--batch",
        type=int,
        default=10000,
        help="per call, the cards of this many oldest expired lots",
    )
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument(
        "--commit",
        action="store_true",
        help="commit the generated data before measuring (throwaway database!)",
    )
    return parser.parse_args()


def server_cpu(cr):
    """CPU seconds the PostgreSQL backend of `cr` has used (Linux, database
    on this machine): unlike wall time, hardly moved by other jobs sharing
    the cores. None when it cannot be read."""
    cr.execute("SELECT pg_backend_pid()")
    pid = cr.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime, fields 14 and 15 of stat(5), in clock ticks
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_timed(cr, function, *args, **kwargs):
    """timed(), plus the server CPU seconds it took (None if unknown)."""
    before = server_cpu(cr)
    result, wall, queries = timed(function, *args, **kwargs)
    after = server_cpu(cr)
    cpu = after - before if before is not None and after is not None else None
    return result, wall, queries, cpu


def timed(function, *args, **kwargs):
    import odoo.sql_db  # noqa: PLC0415 (odoo is set up by main)

    queries = odoo.sql_db.sql_counter
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start, odoo.sql_db.sql_counter - queries


def generate(env, company, cards, lots, expired_share):
    """Members, cards and lots of `company`, set-based; returns the programme."""
    cr = env.cr
    prefix = f"bench-{company.id}-"
    program = env["loyalty.program"].create(
        {
            "name": "Bench Members",
            "program_type": "loyalty",
            "company_id": company.id,
        }
    )
    company.mlm_program_id = program
    company.mlm_points_validity_months = 12
    cr.execute(
        """
        CREATE TEMP TABLE bench_member ON COMMIT DROP AS
        SELECT nextval('res_partner_id_seq')::int AS id,
               nextval('loyalty_card_id_seq')::int AS card_id, g AS n
          FROM generate_series(1, %s) g
        """,
        (cards,),
    )
    cr.execute(
        """
        INSERT INTO res_partner (id, commercial_partner_id, name, complete_name,
                                 type, active, is_company, autopost_bills,
                                 create_uid, write_uid, create_date, write_date)
        SELECT id, id, 'Bench Member ' || n, 'Bench Member ' || n, 'contact',
               true, false, 'ask', 1, 1, now(), now()
          FROM bench_member
        """
    )
    # Lot dates spread so that `expired_share` of them are older than the
    # 12-month validity: uniform over 12 / (1 - share) months.
    span_days = 365.0 / max(1e-6, 1.0 - expired_share)
    cr.execute("SELECT setseed(0.42)")
    cr.execute(
        """
        CREATE TEMP TABLE bench_lot ON COMMIT DROP AS
        SELECT m.id AS partner_id, m.card_id, m.n,
               now() - random() * %(span)s * interval '1 day' AS date,
               round((1 + random() * 99)::numeric, 2) AS points
          FROM bench_member m, generate_series(1, %(lots)s)
        """,
        {"span": span_days, "lots": lots},
    )
    cr.execute(
        """
        INSERT INTO loyalty_card (id, program_id, company_id, partner_id, code,
                                  points, active, create_uid, write_uid,
                                  create_date, write_date)
        SELECT m.id, %(program)s, %(company)s, m.partner_id, %(prefix)s || m.n,
               s.points, true, 1, 1, now(), now()
          FROM (SELECT card_id AS id, id AS partner_id, n FROM bench_member) m
          JOIN (SELECT card_id, SUM(points)::float8 AS points
                  FROM bench_lot GROUP BY card_id) s ON s.card_id = m.id
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
    cr.execute("ANALYZE loyalty_mlm_ledger")
    cr.execute("ANALYZE loyalty_card")
    return program


def floor(env, company):
    """One SQL read pass over the expired lots: the least any expiry costs."""
    env.cr.execute(
        """
        SELECT card_id, SUM(remaining), COUNT(*)
          FROM loyalty_mlm_ledger
         WHERE company_id = %s AND points > 0 AND remaining > 0
           AND expiry_date < CURRENT_DATE AND card_id IS NOT NULL
         GROUP BY card_id
        """,
        (company.id,),
    )
    rows = env.cr.fetchall()
    return len(rows), sum(row[2] for row in rows)


def expire_all(env, batch, commit=False):
    """Call the job until nothing is left; with `commit`, commit after each
    call as the scheduler does (each call its own transaction: what a call
    closed is then dead to every later one, as in production)."""
    ledger = env["loyalty.mlm.ledger"]
    calls = 0
    while True:
        calls += 1
        ledger._cron_expire_points(batch_size=batch)
        if commit:
            env.cr.commit()
        env.cr.execute(
            "SELECT 1 FROM loyalty_mlm_ledger WHERE points > 0 AND remaining > 0 "
            "AND expiry_date < CURRENT_DATE AND card_id IS NOT NULL LIMIT 1"
        )
        if not env.cr.fetchone():
            return calls


def check(env, company):
    env.cr.execute(
        """
        SELECT COUNT(*) FILTER (WHERE abs(c.points - COALESCE(l.total, 0)) > 0.005),
               COUNT(*)
          FROM loyalty_card c
          LEFT JOIN (SELECT card_id, SUM(points) AS total
                       FROM loyalty_mlm_ledger GROUP BY card_id) l
            ON l.card_id = c.id
         WHERE c.company_id = %s
        """,
        (company.id,),
    )
    return env.cr.fetchone()


def main():
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    import odoo  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        ["-c", args.config, "-d", args.database, "--log-level=warn", "--no-http"]
    )
    registry = odoo.modules.registry.Registry(args.database)
    cr = registry.cursor()
    try:
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env["res.company"].create({"name": f"MLM Expiry {os.getpid()}"})
        env = env(context={"allowed_company_ids": [company.id]})
        _program, gen_time, _q = timed(
            generate, env, company, args.cards, args.lots, args.expired_share
        )
        if args.commit:
            cr.commit()
            with registry.cursor() as vacuum_cr:
                vacuum_cr._cnx.autocommit = True
                for table in ("res_partner", "loyalty_card", "loyalty_mlm_ledger"):
                    vacuum_cr.execute(f"VACUUM ANALYZE {table}")
        print(
            f"generated {args.cards} cards with {args.cards * args.lots} lots "
            f"in {gen_time:.1f} s",
            flush=True,
        )
        floor(env, company)  # warm the cache: both measures read warm pages
        # the best of three: one read pass is short, and other jobs on the
        # machine weigh on a single measure
        floor_runs = [cpu_timed(cr, floor, env, company) for _i in range(3)]
        (_cards, lots), floor_time, _q, floor_cpu = min(
            floor_runs, key=lambda run: run[1]
        )
        if floor_cpu is not None:
            floor_cpu = min(run[3] for run in floor_runs)
        cr.execute("SELECT COUNT(*) FROM mail_message")
        messages = cr.fetchone()[0]
        cr.execute("SELECT COUNT(*) FROM mail_tracking_value")
        trackings = cr.fetchone()[0]
        load_before = os.getloadavg()[0]
        calls, expiry_time, queries, expiry_cpu = cpu_timed(
            cr, expire_all, env, args.batch, args.commit
        )
        load_after = os.getloadavg()[0]
        cr.execute("SELECT COUNT(*) FROM mail_message")
        messages = cr.fetchone()[0] - messages
        cr.execute("SELECT COUNT(*) FROM mail_tracking_value")
        trackings = cr.fetchone()[0] - trackings
        mismatches, total_cards = check(env, company)
        cr.execute(
            "SELECT COUNT(*) FROM loyalty_mlm_ledger WHERE kind = 'expire' "
            "AND company_id = %s",
            (company.id,),
        )
        entries = cr.fetchone()[0]
        _calls, again_time, _q = timed(expire_all, env, args.batch, args.commit)
        cr.execute(
            "SELECT COUNT(*) FROM loyalty_mlm_ledger WHERE kind = 'expire' "
            "AND company_id = %s",
            (company.id,),
        )
        again = cr.fetchone()[0] - entries
        print()
        print("| measure | value |")
        print("|---|---:|")
        print(
            f"| cards / lots / expired lots | {total_cards} / "
            f"{args.cards * args.lots} / {lots} |"
        )
        print(f"| floor: one read pass over the expired lots | {floor_time:.3f} s |")
        print(
            f"| expiry job ({calls} calls) | {expiry_time:.3f} s, {queries} queries |"
        )
        print(f"| ratio to the floor | {expiry_time / floor_time:.1f}x |")
        if floor_cpu and expiry_cpu is not None:
            print(
                f"| server CPU: floor, job, ratio | {floor_cpu:.2f} s, "
                f"{expiry_cpu:.2f} s, {expiry_cpu / floor_cpu:.1f}x |"
            )
        print(f"| expire entries posted | {entries} |")
        print(f"| cards where card != ledger | {mismatches} |")
        print(f"| chatter messages / tracking values made | {messages} / {trackings} |")
        print(f"| second run: entries posted, time | {again}, {again_time:.3f} s |")
        print(
            f"| load average (1 min) before / after the job | {load_before:.2f} / "
            f"{load_after:.2f} |"
        )
        if args.commit:
            cr.commit()
    finally:
        if not args.commit:
            cr.rollback()
        cr.close()


if __name__ == "__main__":
    main()
