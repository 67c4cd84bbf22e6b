"""Backtest of the nightly scores on a transaction history (loyalty_mlm, #18).

    .venv/bin/python bench/backtest.py --csv orders.csv --cut 2024-06-30 \\
        -d mlm_18 [-c .run/odoo.cfg] [--keep]
    .venv/bin/python bench/backtest.py --synthetic retail --customers 5000 -d mlm_18
    .venv/bin/python bench/backtest.py --bench-like --customers 20000 \\
        --orders 200000 -d mlm_18

Takes a history (CSV `customer,date,amount`, header optional, ISO dates; or a
synthetic population drawn from a known BG/NBD + Gamma-Gamma process,
tools/clv_simulation.py, as bench/backtest_models.py does; or orders drawn the
way bench/bench_scores.py generates them) and a cut date, then:

1. copies the database given with -d into a throwaway one (createdb -T, on
   the server of the Odoo config), creates a company there with one customer
   per history customer and one confirmed sale order per purchase up to the
   cut, every date shifted so that the cut is today (the nightly chain scores
   as of today);
2. runs the nightly chain on that company: the full score refresh (model
   fit included) and the stage refresh that follows it;
3. reads back each customer's churn risk, CLV, frequency level and stage and
   sets them against what the history says happened after the cut: bought
   within the churn horizon (180 days), spend within 365 days;
4. prints, next to them, BG/NBD and Gamma-Gamma fitted on the same
   calibration data outside Odoo (bench/backtest_models.py's textbook
   comparison), plain recency and past spend: AUC, top-20% capture,
   Spearman, repurchase per churn band and per stage, calibration;
5. drops the throwaway database (unless --keep).

Never downloads anything. Not a test: it prints tables.
"""

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import backtest_models as bm  # noqa: E402  (also loads loyalty_mlm.tools)

from loyalty_mlm.tools.clv_model import (  # noqa: E402
    bgnbd_expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_value,
    model_columns,
)
from loyalty_mlm.tools.score_metrics import (  # noqa: E402
    calibration_table,
    rate_per_band,
    rate_per_group,
    roc_auc,
    spearman,
    top_share_capture,
)

CHURN_DAYS = bm.CHURN_DAYS
SPEND_DAYS = bm.SPEND_DAYS
STAGE_ORDER = (
    "acquisition",
    "onboarding",
    "growth",
    "ambassadorship",
    "retention",
    "winback",
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--database", required=True, help="template database")
    parser.add_argument("-c", "--config", default=str(ROOT / ".run" / "odoo.cfg"))
    parser.add_argument("--csv", help="orders: customer,date,amount")
    parser.add_argument("--cut", type=date.fromisoformat, help="cut date")
    parser.add_argument("--synthetic", choices=sorted(bm.SCENARIOS))
    parser.add_argument("--bench-like", action="store_true")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=50000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write-csv", help="also write the history to this CSV")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    if sum(bool(x) for x in (args.csv, args.synthetic, args.bench_like)) != 1:
        parser.error("give exactly one of --csv, --synthetic, --bench-like")
    if args.csv and not args.cut:
        parser.error("--csv needs --cut")
    return args


# ---------------------------------------------------------------------------
# Histories
# ---------------------------------------------------------------------------


def bench_like_rows(customers, orders, seed):
    """Orders as bench/bench_scores.py generates them: every customer one,
    the rest skewed to low customer numbers (random()^3), uniform over three
    years, amounts 20 + 480 r1 r2. Returns (rows, cut): the cut a year
    before the last day."""
    rng = random.Random(seed)
    end = date(2024, 12, 31)
    rows = []
    for n in range(1, orders + 1):
        customer = n if n <= customers else 1 + int(customers * rng.random() ** 3)
        day = end - timedelta(days=int(rng.random() * 3 * 365))
        amount = round(20 + rng.random() * rng.random() * 480, 2)
        rows.append((min(customer, customers), day, amount))
    return rows, end - timedelta(days=SPEND_DAYS)


def history(args):
    """(name, rows, cut, truth)."""
    if args.csv:
        return f"CSV {args.csv}", bm.csv_rows(args.csv), args.cut, None
    if args.synthetic:
        bgnbd, gamma_gamma = bm.SCENARIOS[args.synthetic]
        rows = bm.simulated_rows(
            bgnbd,
            gamma_gamma,
            args.customers,
            args.seed,
            bm.CUT_DAY + SPEND_DAYS,
        )
        cut = bm.START + timedelta(days=bm.CUT_DAY - 1)
        name = f"synthetic '{args.synthetic}'"
        return name, rows, cut, (bgnbd, gamma_gamma)
    rows, cut = bench_like_rows(args.customers, args.orders, args.seed)
    return "bench-like", rows, cut, None


# ---------------------------------------------------------------------------
# The throwaway database
# ---------------------------------------------------------------------------


def pg_env(config):
    env = dict(os.environ)
    if config.get("db_host"):
        env["PGHOST"] = config["db_host"]
    if config.get("db_port"):
        env["PGPORT"] = str(config["db_port"])
    if config.get("db_user"):
        env["PGUSER"] = config["db_user"]
    if config.get("db_password"):
        env["PGPASSWORD"] = config["db_password"]
    return env


def load(env, rows, cut):
    """A company, its customers and their orders up to `cut`, dated so that
    `cut` is today; returns (company, {history customer: partner id})."""
    cr = env.cr
    company = env["res.company"].create({"name": f"MLM Backtest {os.getpid()}"})
    shift = date.today() - cut
    customers = sorted({c for c, day, _a in rows if day <= cut}, key=str)
    cr.execute(
        "SELECT nextval('res_partner_id_seq') FROM generate_series(1, %s)",
        (len(customers),),
    )
    ids = [row[0] for row in cr.fetchall()]
    partner_of = dict(zip(customers, ids, strict=True))
    text = "".join(
        f"{pid}\t{pid}\tBacktest {pid}\tBacktest {pid}\tcontact\tt\tf\t1\task\n"
        for pid in ids
    )
    cr.copy_from(
        StringIO(text),
        "res_partner",
        columns=(
            "id",
            "commercial_partner_id",
            "name",
            "complete_name",
            "type",
            "active",
            "is_company",
            "customer_rank",
            "autopost_bills",
        ),
    )
    lines = []
    for customer, day, amount in rows:
        if day > cut:
            continue
        pid = partner_of[customer]
        when = datetime.combine(day + shift, dtime(12, 0))
        lines.append(
            f"BT\t{pid}\t{pid}\t{pid}\t{company.id}\t{company.currency_id.id}\t"
            f"{when}\tsale\t{amount}\t0\t{amount}\t1\tdirect\n"
        )
    cr.copy_from(
        StringIO("".join(lines)),
        "sale_order",
        columns=(
            "name",
            "partner_id",
            "partner_invoice_id",
            "partner_shipping_id",
            "company_id",
            "currency_id",
            "date_order",
            "state",
            "amount_untaxed",
            "amount_tax",
            "amount_total",
            "currency_rate",
            "picking_policy",
        ),
    )
    cr.execute("ANALYZE res_partner; ANALYZE sale_order")
    env.invalidate_all()
    return company, partner_of


def nightly(env, company):
    """The nightly chain of `company`: scores (model fit included), then
    stages. Returns the wall time."""
    started = time.perf_counter()
    scores = env["loyalty.mlm.partner.score"]
    while scores._cron_refresh_scores(companies=company, time_budget=3600):
        pass
    return time.perf_counter() - started


def read_back(env, company, partner_ids):
    env.flush_all()  # the stage moves are ORM writes
    env.cr.execute(
        """
        SELECT p.id, s.churn_risk, s.clv, s.frequency_score, st.code,
               s.churn_rise,
               (SELECT h.reason_code FROM loyalty_mlm_stage_history h
                 WHERE h.partner_id = p.id ORDER BY h.id DESC LIMIT 1)
          FROM res_partner p
     LEFT JOIN loyalty_mlm_partner_score s
            ON s.partner_id = p.id AND s.company_id = %s
     LEFT JOIN loyalty_mlm_stage st ON st.id = p.mlm_stage_id
         WHERE p.id = ANY(%s)
        """,
        (company.id, partner_ids),
    )
    return {row[0]: row[1:] for row in env.cr.fetchall()}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def report(name, rows, cut, truth, scored, partner_of, chain_time, fit_params):
    columns = model_columns(rows, cut, bm.DEFAULT_MARGIN)
    customers = columns.customers
    bought, spend = bm.holdout(rows, cut, customers)
    churned = [not b for b in bought]
    values = [scored[partner_of[c]] for c in customers]
    churn = [v[0] for v in values]
    clv = [v[1] for v in values]
    freq = [v[2] for v in values]
    stages = [v[3] or "-" for v in values]

    bgnbd = fit_bgnbd(columns.frequency, columns.recency, columns.age)
    gg = fit_gamma_gamma(columns.orders, columns.mean)
    keys = list(zip(columns.frequency, columns.recency, columns.age, strict=True))
    expected_180 = [
        bgnbd_expected_purchases(bgnbd.params, x, tx, t, CHURN_DAYS)
        for x, tx, t in keys
    ]
    textbook = [
        bgnbd_expected_purchases(bgnbd.params, x, tx, t, SPEND_DAYS)
        * gamma_gamma_expected_value(gg.params, n, m)
        for (x, tx, t), n, m in zip(keys, columns.orders, columns.mean, strict=True)
    ]
    recency = [t - tx for _x, tx, t in keys]
    n = len(customers)
    print(f"\n## {name}: {n} customers, cut {cut}")
    one_timers = sum(1 for x in columns.frequency if not x)
    print(
        f"one-purchase-day customers {one_timers / n:.0%}"
        f"; no purchase within {CHURN_DAYS} days after the cut: "
        f"{sum(churned) / n:.0%}; nightly chain {chain_time:.1f} s"
    )
    if fit_params:
        print(f"chain's fit: {fit_params}")
    p = bgnbd.params
    print(
        f"outside fit: BG/NBD r={p.r:.3f} alpha={p.alpha:.2f} a={p.a:.3f} "
        f"b={p.b:.3f}; Gamma-Gamma mean {gg.params.mean:.2f}"
    )
    if truth:
        tp = truth[0]
        print(f"truth:       BG/NBD r={tp.r} alpha={tp.alpha} a={tp.a} b={tp.b}")

    print(f"\nAUC, no purchase within {CHURN_DAYS} days:\n")
    print("| score | AUC |\n|---|---:|")
    for label, score in (
        ("nightly chain: mlm_churn_risk", churn),
        (f"BG/NBD expected purchases ({CHURN_DAYS} d), same data", expected_180),
        ("plain recency (days since last purchase)", recency),
    ):
        if score is expected_180:
            score = [-e for e in score]
        print(f"| {label} | {roc_auc(score, churned):.3f} |")

    print(f"\nTop 20% capture of the next {SPEND_DAYS} days' spend:\n")
    print("| score | capture | Spearman |\n|---|---:|---:|")
    for label, score in (
        ("nightly chain: mlm_clv", clv),
        ("BG/NBD x Gamma-Gamma (12 months), same data", textbook),
        ("past spend", columns.revenue),
    ):
        print(
            f"| {label} | {top_share_capture(score, spend, 0.2):.1%} | "
            f"{spearman(score, spend):.3f} |"
        )
    zero = sum(1 for v in clv if not v)
    print(f"\ncustomers with mlm_clv = 0: {zero}")

    print(f"\nBought again within {CHURN_DAYS} days, per churn risk band:\n")
    print("| churn risk | customers | bought again |\n|---|---:|---:|")
    for row in rate_per_band(churn, bought, [20, 40, 60, 70, 80, 90, 100]):
        print(f"| {row.label} | {row.count} | {row.observed:.1%} |")

    print(f"\nBought again within {CHURN_DAYS} days, per stage:\n")
    print("| stage | customers | bought again | spend share |\n|---|---:|---:|---:|")
    per_stage = rate_per_group(stages, bought)
    total_spend = sum(spend) or 1.0
    for stage in (*STAGE_ORDER, "-"):
        if stage in per_stage:
            count, rate = per_stage[stage]
            share = sum(s for s, g in zip(spend, stages, strict=True) if g == stage)
            print(f"| {stage} | {count} | {rate:.1%} | {share / total_spend:.1%} |")

    reasons = [f"{v[3]} / {v[5]}" for v in values]
    print(f"\nBought again within {CHURN_DAYS} days, per stage and reason:\n")
    print("| stage / reason | customers | bought again |\n|---|---:|---:|")
    for label, (count, rate) in rate_per_group(reasons, bought).items():
        print(f"| {label} | {count} | {rate:.1%} |")

    if os.environ.get("MLM_EXPLORE"):
        rises = [v[4] for v in values]
        active = [
            i for i, stage in enumerate(stages) if stage in ("growth", "retention")
        ]
        for th in (50, 60, 70, 80):
            for rt in (0, 5, 10, 20):
                ret = [i for i in active if churn[i] >= th and rises[i] >= rt]
                gro = [i for i in active if not (churn[i] >= th and rises[i] >= rt)]

                def rate(group):
                    return sum(bought[i] for i in group) / max(len(group), 1)

                print(
                    f"explore churn>={th} rise>={rt}: retention {len(ret)} "
                    f"{rate(ret):.1%}, growth {len(gro)} {rate(gro):.1%}"
                )

    print("\nCalibration of mlm_churn_risk (tenths):\n")
    print("| tenth | customers | predicted | observed |\n|---:|---:|---:|---:|")
    for row in calibration_table(churn, churned, 10):
        print(
            f"| {row.label} | {row.count} | {row.predicted / 100:.1%} "
            f"| {row.observed:.1%} |"
        )
    print("\nFrequency level (orders in 12 months): customers per level\n")
    print("| level | customers |\n|---:|---:|")
    for level in range(1, 6):
        print(f"| {level} | {sum(1 for f in freq if f == level)} |")


def main():
    args = parse_args()
    name, rows, cut, truth = history(args)
    if args.write_csv:
        with open(args.write_csv, "w", encoding="utf-8") as handle:
            handle.write("customer,date,amount\n")
            for customer, day, amount in rows:
                handle.write(f"{customer},{day.isoformat()},{amount:.2f}\n")
    import odoo  # noqa: PLC0415
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(["-c", args.config, "--log-level=warn", "--no-http"])
    target = f"mlm_backtest_{os.getpid()}"
    pg = pg_env(config)
    subprocess.run(["createdb", "-T", args.database, target], check=True, env=pg)
    try:
        registry = odoo.modules.registry.Registry(target)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            company, partner_of = load(env, rows, cut)
            env = env(context={"allowed_company_ids": [company.id]})
            chain_time = nightly(env, company)
            scored = read_back(env, company, list(partner_of.values()))
            run = env["loyalty.mlm.score.run"].search(
                [("company_id", "=", company.id), ("mode", "=", "full")], limit=1
            )
            model = (run.reference or {}).get("model") or {}
            fit = (
                f"BG/NBD {[round(v, 3) for v in model.get('bgnbd', [])]}, "
                f"Gamma-Gamma {[round(v, 3) for v in model.get('gamma_gamma', [])]}"
            )
            cr.rollback()
        report(name, rows, cut, truth, scored, partner_of, chain_time, fit)
    finally:
        odoo.sql_db.close_db(target)
        odoo.modules.registry.Registry.delete(target)
        if not args.keep:
            subprocess.run(["dropdb", target], check=False, env=pg)
        else:
            print(f"\nkept database {target}")


if __name__ == "__main__":
    main()
