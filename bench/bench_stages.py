"""The lifecycle stage step alone, on a database bench_scores.py filled.

    .venv/bin/python bench/bench_stages.py -d mlm_bench [-c .run/odoo.cfg] \\
        [--profile stages.prof] [--queries 15]

Reruns only what bench_scores.py measures as "stage step" on the data it left
with --commit (its last "MLM Bench" company): clears the stages of that
company's customers, times a first assignment, then an unchanged night. All
in one transaction that is rolled back: rerun it as often as needed, no copy
of the database to make. --profile writes a cProfile of the first assignment;
--queries prints the N most frequent statements of it (their first words).
Not a test: timings depend on the machine.
"""

import argparse
import cProfile
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument("--profile", help="cProfile output of the first assignment")
    parser.add_argument(
        "--queries", type=int, default=0, help="print the N most frequent statements"
    )
    return parser.parse_args()


def main():
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    import odoo  # noqa: PLC0415
    import odoo.sql_db  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        ["-c", args.config, "-d", args.database, "--log-level=warn", "--no-http"]
    )
    registry = odoo.modules.registry.Registry(args.database)
    statements = Counter()
    if args.queries:
        execute = odoo.sql_db.Cursor.execute

        def counting_execute(self, query, params=None, log_exceptions=True):
            text = query.code if isinstance(query, odoo.tools.SQL) else str(query)
            statements[re.sub(r"\s+", " ", text).strip()[:90]] += 1
            return execute(self, query, params, log_exceptions)

        odoo.sql_db.Cursor.execute = counting_execute
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env["res.company"].search(
            [("name", "=like", "MLM Bench %")], order="id desc", limit=1
        )
        if not company:
            sys.exit("no MLM Bench company: run bench_scores.py --commit first")
        env = env(context={"allowed_company_ids": [company.id]})
        cr.execute(
            """
            SELECT partner_id FROM sale_order WHERE company_id = %(company)s
             UNION
            SELECT partner_id FROM pos_order WHERE company_id = %(company)s
            """,
            {"company": company.id},
        )
        partner_ids = [row[0] for row in cr.fetchall()]
        # As bench_scores.py does: a first assignment from scratch.
        cr.execute(
            "UPDATE res_partner SET mlm_stage_id = NULL WHERE id = ANY(%s)",
            [partner_ids],
        )
        env.invalidate_all()

        def stage_step():
            moved = env["loyalty.mlm.stage"]._mlm_refresh_all_stages(company)
            env.flush_all()
            return moved

        def timed(profile=None):
            statements.clear()
            queries = odoo.sql_db.sql_counter
            start = time.perf_counter()
            if profile:
                profile.enable()
            moved = stage_step()
            if profile:
                profile.disable()
            return moved, time.perf_counter() - start, odoo.sql_db.sql_counter - queries

        profile = cProfile.Profile() if args.profile else None
        moved, seconds, queries = timed(profile)
        print(f"first assignment: {moved} moved in {seconds:.3f} s, {queries} queries")
        if profile:
            profile.dump_stats(args.profile)
        for text, count in statements.most_common(args.queries):
            print(f"{count:8d}  {text}")
        moved, seconds, queries = timed()
        print(f"unchanged night: {moved} moved in {seconds:.3f} s, {queries} queries")
        cr.rollback()


if __name__ == "__main__":
    main()
