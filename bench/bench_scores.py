"""Benchmark of the segment score refresh (loyalty_mlm, issue 4).

    .venv/bin/python bench/bench_scores.py --customers 100000 --orders 1000000 \\
        -d mlm_bench [-c .run/odoo.cfg] [--pos-share 0.1] [--commit]

Against a database with loyalty_mlm installed. By default everything happens
in one transaction that is rolled back at the end; with --commit the generated
data is committed (and VACUUM ANALYZEd) before the measures and left in the
database: use a throwaway copy (createdb -T yourdb mlm_bench). Committed data
is the realistic case: rows inserted by the measuring transaction itself make
PostgreSQL re-check foreign keys on every UPDATE of them.

1. creates a company of its own (so its customers are the whole scored
   population), N customers and M orders with set-based SQL
   (generate_series): every customer has at least one order, the rest are
   spread with a skew (few heavy buyers, many light ones) over three years;
   a share of them are POS orders (10% of those are refunds); 70% of the
   lines have a product cost, the rest use the default margin; then ANALYZE;
2. the floor: one SQL aggregation over the same orders (count, revenue,
   first and last date per customer), fetched;
3. the full refresh, as the nightly job runs it (called until nothing is
   left): wall time, queries, then once more under tracemalloc for the peak
   memory of the Python side (nothing to write then);
4. "next night": a full refresh scoring as of tomorrow, which rewrites only
   the customers whose scores moved;
5. one night's KPI snapshots (the current week, month, quarter and year,
   with their stage / segment / tier / quadrant rows) and the 24-month
   backfill;
6. an incremental refresh after 1% of the customers ordered again.

Prints a table. Not a test: timings depend on the machine.
"""

import argparse
import os
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
        "--commit",
        action="store_true",
        help="commit the generated data before measuring (throwaway database!)",
    )
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="generate and commit the data, measure nothing (with --commit): a"
        " template to copy with createdb -T for --reuse runs",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure on the data a --generate-only run left (nothing measured"
        " on it yet): no generation",
    )
    args = parser.parse_args()
    if args.generate_only and not args.commit:
        parser.error("--generate-only needs --commit")
    if args.orders < args.customers:
        parser.error("--orders must be at least --customers (one order each)")
    return args


def timed(function, *args, **kwargs):
    import odoo.sql_db  # noqa: PLC0415 (odoo is set up by main)

    queries = odoo.sql_db.sql_counter
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start, odoo.sql_db.sql_counter - queries


def generate(env, company, customers, orders, pos_share):
    """Customers and orders of `company`, set-based; returns the customer ids."""
    cr = env.cr
    product = env["product.product"].create({"name": "Bench Beans"})
    cr.execute(
        "INSERT INTO pos_session (config_id, name, state, user_id)"
        " SELECT MIN(id), 'MLM bench', 'closed', 1 FROM pos_config RETURNING id"
    )
    session_id = cr.fetchone()[0]
    cr.execute("SELECT setseed(0.42)")
    cr.execute(
        """
        CREATE TEMP TABLE bench_partner ON COMMIT DROP AS
        SELECT nextval('res_partner_id_seq')::int AS id, g AS n
          FROM generate_series(1, %s) g
        """,
        (customers,),
    )
    cr.execute(
        """
        INSERT INTO res_partner (id, commercial_partner_id, name, complete_name,
                                 email, phone, street, city, type, active,
                                 is_company, customer_rank, autopost_bills,
                                 create_uid, write_uid, create_date, write_date)
        SELECT id, id, 'Bench Customer ' || n, 'Bench Customer ' || n,
               'customer' || n || '@bench.example.com',
               '+31 6 ' || lpad((n % 100000000)::text, 8, '0'),
               'Benchstraat ' || n, 'Utrecht', 'contact', true, false, 1, 'ask',
               1, 1, now() - interval '3 years', now() - interval '3 years'
          FROM bench_partner
        """
    )
    # One order per customer, then the rest skewed towards low customer
    # numbers (random() ^ 3: a few heavy buyers, a long tail of light ones).
    cr.execute(
        """
        CREATE TEMP TABLE bench_order ON COMMIT DROP AS
        SELECT o.n, p.id AS partner_id, o.day, o.amount, o.costed, o.pos
          FROM (SELECT g AS n,
                       CASE WHEN g <= %(customers)s THEN g
                            ELSE 1 + floor(%(customers)s * power(random(), 3))::int
                       END AS customer,
                       now() - random() * interval '3 years' AS day,
                       round((20 + random() * random() * 480)::numeric, 2) AS amount,
                       random() < 0.7 AS costed,
                       random() < %(pos)s AS pos
                  FROM generate_series(1, %(orders)s) g) o
          JOIN bench_partner p ON p.n = o.customer
        """,
        {"orders": orders, "customers": customers, "pos": pos_share},
    )
    cr.execute(
        """
        CREATE TEMP TABLE bench_sale ON COMMIT DROP AS
        SELECT nextval('sale_order_id_seq')::int AS id, o.*
          FROM bench_order o WHERE NOT o.pos
        """
    )
    cr.execute(
        """
        INSERT INTO sale_order (id, name, partner_id, partner_invoice_id,
                                partner_shipping_id, company_id, currency_id,
                                date_order, state, amount_untaxed, amount_tax,
                                amount_total, currency_rate, margin, picking_policy,
                                create_uid, write_uid, create_date, write_date)
        SELECT s.id, 'BENCH/' || s.id, s.partner_id, s.partner_id, s.partner_id,
               %(company)s, %(currency)s, s.day, 'sale', s.amount, 0, s.amount, 1,
               CASE WHEN s.costed THEN round(s.amount * 0.4, 2) ELSE s.amount END,
               'direct', 1, 1, s.day, now() - interval '2 days'
          FROM bench_sale s
        """,
        {"company": company.id, "currency": company.currency_id.id},
    )
    cr.execute(
        """
        INSERT INTO sale_order_line (order_id, name, product_id, company_id,
                                     currency_id, order_partner_id, state,
                                     price_unit, product_uom_qty, price_subtotal,
                                     price_total, purchase_price, margin,
                                     customer_lead, create_uid, write_uid,
                                     create_date, write_date)
        SELECT s.id, 'Bench Beans', %(product)s, %(company)s, %(currency)s,
               s.partner_id, 'sale', s.amount, 1, s.amount, s.amount,
               CASE WHEN s.costed THEN round(s.amount * 0.6, 2) ELSE 0 END,
               CASE WHEN s.costed THEN round(s.amount * 0.4, 2) ELSE s.amount END,
               0, 1, 1, s.day, now() - interval '2 days'
          FROM bench_sale s
        """,
        {
            "product": product.id,
            "company": company.id,
            "currency": company.currency_id.id,
        },
    )
    # POS: one order in ten is a refund (negative amounts, not an order).
    cr.execute(
        """
        CREATE TEMP TABLE bench_pos ON COMMIT DROP AS
        SELECT nextval('pos_order_id_seq')::int AS id, o.*,
               CASE WHEN random() < 0.1 THEN -1 ELSE 1 END AS sign
          FROM bench_order o WHERE o.pos
        """
    )
    cr.execute(
        """
        INSERT INTO pos_order (id, name, session_id, company_id, partner_id,
                               date_order, state, amount_total, amount_tax,
                               amount_paid, amount_return, currency_rate,
                               create_uid, write_uid, create_date, write_date)
        SELECT p.id, 'BENCH POS/' || p.id, %(session)s, %(company)s, p.partner_id,
               p.day, 'done', p.sign * p.amount, 0, p.sign * p.amount, 0, 1,
               1, 1, p.day, now() - interval '2 days'
          FROM bench_pos p
        """,
        {"session": session_id, "company": company.id},
    )
    cr.execute(
        """
        INSERT INTO pos_order_line (order_id, name, product_id, qty, price_unit,
                                    price_subtotal, price_subtotal_incl, total_cost,
                                    create_uid, write_uid, create_date, write_date)
        SELECT p.id, 'Bench Beans', %(product)s, p.sign, p.amount,
               p.sign * p.amount, p.sign * p.amount,
               CASE WHEN p.costed THEN round(p.sign * p.amount * 0.6, 2) ELSE 0 END,
               1, 1, p.day, now() - interval '2 days'
          FROM bench_pos p
        """,
        {"product": product.id},
    )
    for table in (
        "res_partner",
        "sale_order",
        "sale_order_line",
        "pos_order",
        "pos_order_line",
    ):
        cr.execute(f"ANALYZE {table}")
    cr.execute("SELECT id FROM bench_partner ORDER BY n")
    return [row[0] for row in cr.fetchall()], product


def generated(env):
    """(company, customer ids, product) of the one --generate-only run whose
    data this database holds."""
    company = env["res.company"].search([("name", "=like", "MLM Bench %")])
    if len(company) != 1:
        sys.exit(f"--reuse: {len(company)} bench companies here, not one")
    if env["loyalty.mlm.partner.score"].search_count([("company_id", "=", company.id)]):
        sys.exit("--reuse: measured already; copy the template again")
    env.cr.execute(
        """
        SELECT partner_id FROM sale_order WHERE company_id = %(company)s
         UNION
        SELECT partner_id FROM pos_order WHERE company_id = %(company)s
         ORDER BY 1
        """,
        {"company": company.id},
    )
    partner_ids = [row[0] for row in env.cr.fetchall()]
    product = env["product.product"].search(
        [("name", "=", "Bench Beans")], order="id desc", limit=1
    )
    return company, partner_ids, product


def floor(env, company):
    """One aggregation over the same orders: the least any refresh must read.

    Run with the same work_mem as the refresh's own aggregation."""
    from odoo.addons.loyalty_mlm.models.loyalty_mlm_partner_score import (  # noqa: PLC0415
        SCORE_WORK_MEM,
    )

    env.cr.execute("SET LOCAL work_mem = %s", (SCORE_WORK_MEM,))
    env.cr.execute(
        """
        SELECT partner_id, COUNT(*), SUM(amount), MIN(day), MAX(day)
          FROM (SELECT partner_id, amount_untaxed AS amount,
                       date_order::date AS day
                  FROM sale_order WHERE company_id = %(company)s AND state = 'sale'
                UNION ALL
                SELECT partner_id, amount_total, date_order::date
                  FROM pos_order WHERE company_id = %(company)s
                   AND state IN ('paid', 'done', 'invoiced')) o
         GROUP BY partner_id
        """,
        {"company": company.id},
    )
    count = len(env.cr.fetchall())
    env.cr.execute("RESET work_mem")
    return count


def full_refresh(env, company, today=None):
    # Scores alone: the stage step the nightly job chains is timed apart.
    scores = env["loyalty.mlm.partner.score"].with_context(mlm_scores_only=True)
    calls = 1
    while scores._cron_refresh_scores(companies=company, time_budget=3600, today=today):
        calls += 1
    run = env["loyalty.mlm.score.run"].search(
        [("company_id", "=", company.id), ("mode", "=", "full")], limit=1
    )
    return calls, run.done_count


def reorder(env, company, product, partner_ids):
    """1% of the customers order again today (a sale order each)."""
    chosen = partner_ids[::100]
    env.cr.execute(
        """
        WITH new AS (
            SELECT nextval('sale_order_id_seq')::int AS id, p AS partner_id
              FROM unnest(%(partners)s::int[]) p
        ), orders AS (
            INSERT INTO sale_order (id, name, partner_id, partner_invoice_id,
                                    partner_shipping_id, company_id, currency_id,
                                    date_order, state, amount_untaxed, amount_tax,
                                    amount_total, currency_rate, margin,
                                    picking_policy, create_date, write_date)
            SELECT id, 'BENCH/' || id, partner_id, partner_id, partner_id,
                   %(company)s, %(currency)s, now(), 'sale', 100, 0, 100, 1, 40,
                   'direct', now(), now()
              FROM new
        )
        INSERT INTO sale_order_line (order_id, name, product_id, company_id,
                                     currency_id, state, price_unit,
                                     product_uom_qty, price_subtotal, price_total,
                                     purchase_price, margin, customer_lead)
        SELECT id, 'Bench Beans', %(product)s, %(company)s, %(currency)s, 'sale',
               100, 1, 100, 100, 60, 40, 0
          FROM new
        """,
        {
            "partners": chosen,
            "company": company.id,
            "currency": company.currency_id.id,
            "product": product.id,
        },
    )
    return len(chosen)


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
    rows = []
    try:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if args.reuse:
            company, partner_ids, product = generated(env)
            env = env(context={"allowed_company_ids": [company.id]})
            gen_time = 0.0
            # Odoo builds its table of field triggers once per process, at
            # the first create or write: the generation's creates did it
            # before the measures; so does this, outside them, as a cron
            # worker has long done by the night.
            assert registry._field_triggers
        else:
            company = env["res.company"].create({"name": f"MLM Bench {os.getpid()}"})
            env = env(context={"allowed_company_ids": [company.id]})
            (partner_ids, product), gen_time, _q = timed(
                generate, env, company, args.customers, args.orders, args.pos_share
            )
        if args.commit and not args.reuse:
            cr.commit()
            with registry.cursor() as vacuum_cr:
                vacuum_cr._cnx.autocommit = True
                # Every generated table: left to autovacuum, the order lines
                # got vacuumed in the middle of the measures.
                for table in (
                    "res_partner",
                    "sale_order",
                    "sale_order_line",
                    "pos_order",
                    "pos_order_line",
                ):
                    vacuum_cr.execute(f"VACUUM ANALYZE {table}")
        print(
            f"generated {args.customers} customers and {args.orders} orders "
            f"in {gen_time:.1f} s",
            flush=True,
        )
        if args.generate_only:
            return
        floor(env, company)  # warm the cache: both measures read warm pages
        count, floor_time, floor_queries = timed(floor, env, company)
        rows.append(("floor: one SQL aggregation", floor_time, floor_queries, None))
        today = odoo.fields.Date.today()
        Score = env["loyalty.mlm.partner.score"]
        (population, days), stats_time, stats_queries = timed(
            Score._mlm_score_population, company, today
        )
        rows.append(("  the refresh's stats query", stats_time, stats_queries, None))
        # The churn / CLV model (BG/NBD + Gamma-Gamma fit, issue 18), part of
        # the full refresh below.
        _model, fit_time, _q = timed(Score._mlm_score_fit, company, population, days)
        rows.append(("  the refresh's model fit", fit_time, 0, None))
        (calls, written), full_time, full_queries = timed(full_refresh, env, company)
        rows.append(
            (f"full refresh ({written} written)", full_time, full_queries, None)
        )
        # Lifecycle stages (issue: at most 1x the scores step). The full
        # refresh above already ran them once (the nightly job chains them);
        # time a first assignment from scratch, then an unchanged night.
        env.cr.execute(
            "UPDATE res_partner SET mlm_stage_id = NULL WHERE id = ANY(%s)",
            [partner_ids],
        )
        env.invalidate_all()

        def stage_step():
            # Flushed inside the timer: the ORM defers the stage writes.
            moved = env["loyalty.mlm.stage"]._mlm_refresh_all_stages(company)
            env.flush_all()
            return moved

        moved, stage_time, stage_queries = timed(stage_step)
        rows.append((f"  stage step ({moved} moved)", stage_time, stage_queries, None))
        moved2, stage2_time, stage2_queries = timed(stage_step)
        rows.append(
            (f"  stage step again ({moved2} moved)", stage2_time, stage2_queries, None)
        )
        tracemalloc.start()
        (_c, again), again_time, again_queries = timed(full_refresh, env, company)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(
            (f"  again, traced ({again} written)", again_time, again_queries, peak)
        )
        tomorrow = today + timedelta(days=1)
        (_c, night), night_time, night_queries = timed(
            full_refresh, env, company, tomorrow
        )
        rows.append((f"next night ({night} written)", night_time, night_queries, None))
        # KPI snapshots (issue 15: one night's at most the full refresh's
        # time), then the 24-month backfill an install runs once.
        Snapshot = env["loyalty.mlm.kpi.snapshot"]
        snapshots, snap_time, snap_queries = timed(
            Snapshot._cron_snapshots, companies=company
        )
        rows.append(
            (f"KPI snapshots ({snapshots} rows)", snap_time, snap_queries, None)
        )
        backfilled, backfill_time, backfill_queries = timed(
            Snapshot._mlm_backfill, company
        )
        rows.append(
            (
                f"  KPI backfill ({len(backfilled)} rows)",
                backfill_time,
                backfill_queries,
                None,
            )
        )
        reordered = reorder(env, company, product, partner_ids)
        _n, inc_time, inc_queries = timed(
            env["loyalty.mlm.partner.score"]._cron_refresh_scores_incremental, company
        )
        rows.append(
            (f"incremental ({reordered} customers)", inc_time, inc_queries, None)
        )
    finally:
        if args.commit:
            cr.commit()
        else:
            cr.rollback()
        cr.close()

    print(
        f"\n{args.customers} customers ({count} with orders, "
        f"{len(population.partner_ids)} scored), "
        f"{args.orders} orders, POS share {args.pos_share:.0%}; "
        f"full refresh in {calls} call(s)\n"
    )
    print(f"{'measure':<38} {'wall (s)':>9} {'queries':>8} {'peak MiB':>9}")
    for label, seconds, queries, memory in rows:
        mib = f"{memory / 2**20:9.1f}" if memory else f"{'':>9}"
        print(f"{label:<38} {seconds:9.3f} {queries:8d} {mib}")
    print(f"\nfull refresh / floor: {full_time / floor_time:.1f}x")
    print(f"KPI snapshots / full refresh: {snap_time / full_time:.2f}x")
    print(
        f"stage step / full refresh: {stage_time / full_time:.2f}x "
        f"(first assignment), {stage2_time / full_time:.2f}x (unchanged night)"
    )


if __name__ == "__main__":
    main()
