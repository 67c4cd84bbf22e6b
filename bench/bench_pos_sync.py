"""Benchmark of the register's order sync with loyalty_mlm (issue 8).

    .venv/bin/python bench/bench_pos_sync.py -d mlm_base -d mlm_dev \
        --orders 100 --history 200

The first database is the baseline: the same dependencies (contacts, crm,
sale_loyalty, sale_margin, pos_loyalty, portal and OCA's
sale_loyalty_partner_applicability) and NOT loyalty_mlm, so that the
difference is our module alone, e.g.

    odoo-bin -c .run/odoo.cfg -d mlm_base --stop-after-init \
        -i contacts,crm,sale_loyalty,sale_margin,pos_loyalty,portal,\
sale_loyalty_partner_applicability

the next ones have loyalty_mlm installed. Each database gets the same
fixtures in one transaction that is rolled back at the end (nothing is left
in the database):

1. a cash journal, a POS config and an open session of the main company, a
   product at 10.00 untaxed, a loyalty programme (1 point per currency unit,
   every other programme archived) used as the member programme when
   loyalty_mlm is installed, and one customer with a card;
2. the customer's history: `--history` paid orders through the same path;
3. `--orders` identical orders (3 x 10.00, earning 30 points), each through
   the register's two calls: `pos.order.sync_from_ui` then
   `confirm_coupon_programs` (points), as the payment screen does, one order
   on each database in turn (the machine's load weighs on both alike);
4. prints queries and wall time per order for each database, and the
   difference to the baseline (target: at most +5 queries and +15% wall
   time per order, whatever the history).

Both databases are served by one process (one registry each). Not a test:
timings depend on the machine.
"""

import argparse
import collections
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-d",
        "--database",
        action="append",
        required=True,
        help="repeat: the first is the baseline, orders alternate between them",
    )
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument(
        "--dump-queries",
        metavar="FILE",
        help="write the SQL of one more order to FILE.<database> (numbers masked)",
    )
    return parser.parse_args()


def fixtures(env):
    """Session, product, programme, customer with a card (see the docstring)."""
    company = env.company
    journal = env["account.journal"].create(
        {"name": "Bench Cash", "type": "cash", "code": "BNCH"}
    )
    cash = env["pos.payment.method"].create(
        {"name": "Bench Cash", "journal_id": journal.id}
    )
    config = env["pos.config"].create(
        {"name": "Bench Register", "payment_method_ids": [(6, 0, cash.ids)]}
    )
    session = env["pos.session"].create({"config_id": config.id, "user_id": env.uid})
    product = env["product.product"].create(
        {
            "name": "Bench Bread",
            "list_price": 10.0,
            "taxes_id": [(5, 0, 0)],
            "available_in_pos": True,
        }
    )
    env["loyalty.program"].search([]).write({"active": False})
    program = env["loyalty.program"].create(
        {
            "name": "Bench Members",
            "program_type": "loyalty",
            "applies_on": "both",
            "pos_ok": True,
            "rule_ids": [
                (5, 0, 0),
                (0, 0, {"reward_point_mode": "money", "reward_point_amount": 1}),
            ],
        }
    )
    if "mlm_program_id" in company._fields:
        company.mlm_program_id = program
    customer = env["res.partner"].create({"name": "Bench Member"})
    card = env["loyalty.card"].create(
        {"program_id": program.id, "partner_id": customer.id, "points": 0}
    )
    return session, cash, product, program, customer, card


def order_data(session, cash, product, customer):
    """The order as the register sends it (3 x 10.00, paid cash)."""
    order_uuid = str(uuid.uuid4())
    return {
        "amount_paid": 30.0,
        "amount_return": 0,
        "amount_tax": 0.0,
        "amount_total": 30.0,
        "date_order": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "fiscal_position_id": False,
        "pricelist_id": session.config_id.pricelist_id.id,
        "name": f"Order {order_uuid}",
        "last_order_preparation_change": "{}",
        "lines": [
            (
                0,
                0,
                {
                    "price_unit": 10.0,
                    "product_id": product.id,
                    "price_subtotal": 30.0,
                    "price_subtotal_incl": 30.0,
                    "qty": 3,
                    "tax_ids": [(6, 0, [])],
                    "pack_lot_ids": [],
                },
            )
        ],
        "partner_id": customer.id,
        "session_id": session.id,
        "sequence_number": 2,
        "payment_ids": [
            (0, 0, {"amount": 30.0, "name": "bench", "payment_method_id": cash.id})
        ],
        "uuid": order_uuid,
        "user_id": session.env.uid,
        "to_invoice": False,
    }


def sell(env, session, cash, product, program, customer, card):
    """One order through the register's two calls."""
    data = order_data(session, cash, product, customer)
    result = env["pos.order"].sync_from_ui([data])
    order = env["pos.order"].browse(result["pos.order"][0]["id"])
    order.confirm_coupon_programs(
        {
            str(card.id): {
                "points": 30.0,
                "program_id": program.id,
                "coupon_id": card.id,
                "partner_id": customer.id,
            }
        }
    )
    # What the next request would do: write everything, start from a cold
    # cache.
    env.flush_all()
    env.invalidate_all()


def dump_queries(path, function):
    """Run `function` with Odoo's SQL log captured into `path`, one query a
    line, numbers and quoted strings masked (so two runs diff cleanly)."""
    import logging  # noqa: PLC0415
    import re  # noqa: PLC0415

    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            text = " ".join(record.getMessage().split())
            text = re.sub(r"'[^']*'", "'?'", re.sub(r"\d+(\.\d+)?", "N", text))
            lines.append(text)

    logger = logging.getLogger("odoo.sql_db")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        function()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    Path(path).write_text("\n".join(lines) + "\n")


class Run:
    """One database's cursor, fixtures and measures."""

    def __init__(self, odoo, database, history):
        from odoo import SUPERUSER_ID, api  # noqa: PLC0415

        self.database = database
        self.registry = odoo.modules.registry.Registry(database)
        self.cr = self.registry.cursor()
        # A cashier-like user would add access checks; the superuser keeps the
        # comparison about the code paths. The register's calls carry the
        # user's context (language, timezone): so does this environment.
        self.env = api.Environment(
            self.cr,
            SUPERUSER_ID,
            {"tracking_disable": True, "lang": "en_US", "tz": "Europe/Brussels"},
        )
        self.installed = bool(
            self.env["ir.module.module"].search_count(
                [("name", "=", "loyalty_mlm"), ("state", "=", "installed")]
            )
        )
        self.setup = fixtures(self.env)
        for _index in range(history):
            self.sell()
        self.sell()  # warm-up
        self.queries, self.times = [], []

    def sell(self):
        sell(self.env, *self.setup)

    def measure(self, sql_db):
        count = sql_db.sql_counter
        start = time.perf_counter()
        self.sell()
        self.times.append(time.perf_counter() - start)
        self.queries.append(sql_db.sql_counter - count)

    def report(self, baseline=None):
        queries = statistics.mean(self.queries)
        median = statistics.median(self.times) * 1000
        print(
            f"{self.database} (loyalty_mlm "
            f"{'installed' if self.installed else 'NOT installed'}): "
            f"queries per order mean {queries:.1f} (min {min(self.queries)}, "
            f"max {max(self.queries)}), wall time per order median "
            f"{median:.1f} ms, mean {statistics.mean(self.times) * 1000:.1f} ms"
        )
        spread = collections.Counter(self.queries)
        print(
            "  queries: "
            + ", ".join(f"{count} x {spread[count]}" for count in sorted(spread))
        )
        if baseline:
            base_queries = statistics.mean(baseline.queries)
            base_median = statistics.median(baseline.times) * 1000
            print(
                f"  versus {baseline.database}: {queries - base_queries:+.1f} "
                f"queries, {(median / base_median - 1) * 100:+.1f}% wall time "
                "(medians)"
            )

    def close(self):
        self.cr.rollback()
        self.cr.close()


def main():
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    import odoo  # noqa: PLC0415
    import odoo.sql_db  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        ["-c", args.config, "-d", args.database[0], "--log-level=warn", "--no-http"]
    )
    runs = [Run(odoo, database, args.history) for database in args.database]
    try:
        # Interleaved, one order on each database in turn: the machine's load
        # weighs on both alike.
        for _index in range(args.orders):
            for run in runs:
                run.measure(odoo.sql_db)
        if args.dump_queries:
            for run in runs:
                path = f"{args.dump_queries}.{run.database}"
                dump_queries(path, run.sell)
        print(f"history {args.history} orders, {args.orders} orders measured")
        for run in runs:
            run.report(runs[0] if run is not runs[0] else None)
    finally:
        for run in runs:
            run.close()


if __name__ == "__main__":
    main()
