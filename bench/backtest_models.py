"""Backtest of the churn risk and CLV models (loyalty_mlm, issue 18), DB-free.

    python bench/backtest_models.py [--customers 20000] [--seed 1]
    python bench/backtest_models.py --csv orders.csv --cut 2024-06-30
    python bench/backtest_models.py --timing-customers 100000

Scores every customer as of a cut date from the orders up to it, then checks
them against what the customers did after it:

* AUC for "no purchase within 180 days after the cut" of: the new churn
  probability (BG/NBD, tools/clv_model.py), BG/NBD expected purchases over
  the same 180 days (fewer = more at risk), plain recency (days since the
  last purchase), and the old churn risk (tools/scoring.py, called as the
  nightly job calls it: `score_population` on the Population the SQL
  aggregation would give, company interval = `population_interval`);
* share of the next 12 months' spend captured by the top 20% by: the new
  CLV, BG/NBD x Gamma-Gamma (undiscounted expected purchases x expected
  order value: the textbook comparison), the old CLV and past spend;
  Spearman of each with the next 12 months' spend;
* calibration of the new churn probability (predicted vs observed per
  decile) and the repurchase rate per band of the new and the old churn
  risk; the new frequency levels against the old frequency quintiles.

Synthetic populations are drawn from known BG/NBD + Gamma-Gamma processes
(tools/clv_simulation.py), so the true model's own scores are shown too (the
ceiling: "truth"). A CSV has one order per line, `customer,date,amount`
(header optional, ISO dates); the holdout is everything after --cut.

Finally the timing of the model at --timing-customers customers (whole days,
as the nightly job has them): both fits and the scoring, next to the old
`score_population` on the same customers, measured in the same run (the
bench/README.md figures put the latter at 0.30 s on an idle machine).

Not a test: it prints tables.
"""

import argparse
import csv
import os
import sys
import time
import types
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Load the pure loyalty_mlm.tools modules without Odoo (as tests/conftest.py).
if "loyalty_mlm" not in sys.modules:
    _package = types.ModuleType("loyalty_mlm")
    _package.__path__ = [str(ROOT / "loyalty_mlm")]
    sys.modules["loyalty_mlm"] = _package

from loyalty_mlm.tools.clv_model import (  # noqa: E402
    BgNbdParams,
    GammaGammaParams,
    ModelSettings,
    bgnbd_expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    frequency_cuts,
    frequency_score,
    model_columns,
    score_model,
)
from loyalty_mlm.tools.clv_simulation import simulate_customers  # noqa: E402
from loyalty_mlm.tools.score_metrics import (  # noqa: E402
    calibration_table,
    rate_per_band,
    roc_auc,
    spearman,
    top_share_capture,
)
from loyalty_mlm.tools.scoring import (  # noqa: E402
    Population,
    ScoringParams,
    population_interval,
    score_population,
)

CHURN_DAYS = 180
SPEND_DAYS = 365
DEFAULT_MARGIN = 0.30
START = date(2021, 1, 1)

# Synthetic populations (days): name -> (BG/NBD, Gamma-Gamma, acquisition
# days, cut day).
SCENARIOS = {
    # About 3 purchases a year while alive, moderate dropout.
    "retail": (BgNbdParams(0.25, 30.0, 0.8, 2.5), GammaGammaParams(6.0, 4.0, 15.0)),
    # Frequent buyers with short gaps, low dropout: where the old churn risk
    # saturated at 100.
    "frequent": (
        BgNbdParams(1.5, 40.0, 0.6, 6.0),
        GammaGammaParams(4.0, 5.0, 60.0),
    ),
    # Mostly one-order customers (CDNOW-like, slower), high dropout.
    "one-timers": (
        BgNbdParams(0.15, 60.0, 1.2, 1.5),
        GammaGammaParams(3.0, 3.0, 40.0),
    ),
}
ACQUISITION_DAYS = 730
CUT_DAY = 900


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--csv", help="orders: customer,date,amount")
    parser.add_argument("--cut", type=date.fromisoformat, help="cut date (CSV)")
    parser.add_argument("--timing-customers", type=int, default=100000)
    parser.add_argument(
        "--skip-synthetic", action="store_true", help="only the CSV and timing"
    )
    args = parser.parse_args()
    if args.csv and not args.cut:
        parser.error("--csv needs --cut")
    return args


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def simulated_rows(bgnbd, gamma_gamma, customers, seed, end_day):
    """(customer, date, amount) rows of a simulated population."""
    rows = []
    population = simulate_customers(
        bgnbd, gamma_gamma, customers, ACQUISITION_DAYS, end_day, seed
    )
    for c in population:
        for t, amount in zip(c.times, c.amounts, strict=True):
            rows.append((c.customer, START + timedelta(days=int(t)), amount))
    return rows


def csv_rows(path):
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line in csv.reader(handle):
            if not line or line[0].strip().lower() == "customer":
                continue
            customer, day, amount = line[0], line[1], line[2]
            rows.append((customer, date.fromisoformat(day[:10]), float(amount)))
    return rows


def one_year_before(day):
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def old_population(rows, cut, customers):
    """The Population the nightly SQL aggregation gives as of `cut` (orders
    up to it), for `customers` in that order; margin at DEFAULT_MARGIN."""
    day_12m = one_year_before(cut) + timedelta(days=1)
    stats = {c: [None, None, 0, 0.0, 0.0, 0, 0.0] for c in customers}
    for customer, day, amount in rows:
        if day > cut:
            continue
        s = stats[customer]
        s[0] = day if s[0] is None or day < s[0] else s[0]
        s[1] = day if s[1] is None or day > s[1] else s[1]
        if day >= day_12m:
            s[2] += 1
            s[3] += amount
            s[4] += amount * DEFAULT_MARGIN
        s[5] += 1
        s[6] += amount
    first = [(cut - stats[c][0]).days for c in customers]
    last = [(cut - stats[c][1]).days for c in customers]
    total = [stats[c][5] for c in customers]
    intervals = [
        (f - lst) / (n - 1) if n > 1 else None
        for f, lst, n in zip(first, last, total, strict=True)
    ]
    return Population(
        list(range(len(customers))),
        first,
        last,
        [stats[c][2] for c in customers],
        [round(stats[c][3], 2) for c in customers],
        [round(stats[c][4], 2) for c in customers],
        total,
        [round(stats[c][6], 2) for c in customers],
        intervals,
    )


def holdout(rows, cut, customers):
    """Per customer: bought within CHURN_DAYS after the cut, spend within
    SPEND_DAYS after it."""
    index = {c: i for i, c in enumerate(customers)}
    bought = [False] * len(customers)
    spend = [0.0] * len(customers)
    for customer, day, amount in rows:
        i = index.get(customer)
        if i is None or day <= cut:
            continue
        if (day - cut).days <= CHURN_DAYS:
            bought[i] = True
        if (day - cut).days <= SPEND_DAYS:
            spend[i] += amount
    return bought, spend


# ---------------------------------------------------------------------------
# Backtest
# ---------------------------------------------------------------------------


def backtest(name, rows, cut, truth=None):
    columns = model_columns(rows, cut, DEFAULT_MARGIN)
    customers = columns.customers
    bought, spend = holdout(rows, cut, customers)
    churned = [not b for b in bought]
    started = time.perf_counter()
    bgnbd = fit_bgnbd(columns.frequency, columns.recency, columns.age)
    spend_fit = fit_gamma_gamma(columns.orders, columns.mean)
    fitted = time.perf_counter() - started
    settings = ModelSettings(company_margin_rate=DEFAULT_MARGIN)

    def model(params, gg):
        return score_model(
            params,
            gg,
            columns.frequency,
            columns.recency,
            columns.age,
            columns.orders,
            columns.mean,
            columns.margin,
            columns.revenue,
            settings,
        )

    new = model(bgnbd.params, spend_fit.params)
    expected_180 = [
        bgnbd_expected_purchases(bgnbd.params, x, t_x, t, CHURN_DAYS)
        for x, t_x, t in zip(
            columns.frequency, columns.recency, columns.age, strict=True
        )
    ]
    textbook = [
        bgnbd_expected_purchases(bgnbd.params, x, t_x, t, SPEND_DAYS)
        for x, t_x, t in zip(
            columns.frequency, columns.recency, columns.age, strict=True
        )
    ]
    textbook = [e * v for e, v in zip(textbook, new.expected_value, strict=True)]
    recency_days = [
        t - t_x for t, t_x in zip(columns.age, columns.recency, strict=True)
    ]

    population = old_population(rows, cut, customers)
    params = ScoringParams(company_interval_days=population_interval(population))
    old_scores, _reference = score_population(population, cut, params)
    old_churn = [s[6] for s in old_scores]
    old_clv = [s[7] for s in old_scores]
    old_f = [s[1] for s in old_scores]

    n = len(customers)
    print(f"\n## {name}: {n} customers, cut {cut}")
    last_day = max(day for _c, day, _a in rows)
    if (last_day - cut).days < SPEND_DAYS:
        print(
            f"(the holdout ends {last_day}, {(last_day - cut).days} days after the "
            f"cut: the windows below are cut short)"
        )
    one_timers = sum(1 for x in columns.frequency if x == 0)
    print(
        f"one-purchase-day customers {one_timers / n:.0%}; no purchase within "
        f"{CHURN_DAYS} days after the cut: {sum(churned) / n:.0%}; fit "
        f"{fitted:.3f} s"
    )
    p = bgnbd.params
    g = spend_fit.params
    print(
        f"fitted BG/NBD r={p.r:.3f} alpha={p.alpha:.2f} a={p.a:.3f} b={p.b:.3f}; "
        f"Gamma-Gamma p={g.p:.2f} q={g.q:.2f} v={g.v:.2f} (mean {g.mean:.2f})"
    )
    if truth:
        tp, tg = truth
        print(
            f"true   BG/NBD r={tp.r:.3f} alpha={tp.alpha:.2f} a={tp.a:.3f} "
            f"b={tp.b:.3f}; Gamma-Gamma p={tg.p:.2f} q={tg.q:.2f} v={tg.v:.2f} "
            f"(mean {tg.mean:.2f})"
        )

    print(f"\nAUC, no purchase within {CHURN_DAYS} days:\n")
    print("| score | AUC |\n|---|---:|")
    auc_rows = [
        ("new churn probability", new.churn_probability),
        ("new churn risk 0..100", new.churn_risk),
        (f"BG/NBD expected purchases ({CHURN_DAYS} d)", [-e for e in expected_180]),
        ("recency (days since last purchase)", recency_days),
        ("old churn risk (mlm_churn_risk)", old_churn),
        ("old recency score", [-s[0] for s in old_scores]),
    ]
    if truth:
        true_scores = model(*truth)
        auc_rows.append(("truth (true parameters)", true_scores.churn_probability))
    for label, values in auc_rows:
        print(f"| {label} | {roc_auc(values, churned):.3f} |")

    print(f"\nTop 20% capture of the next {SPEND_DAYS} days' spend:\n")
    print("| score | capture | Spearman |\n|---|---:|---:|")
    value_rows = [
        ("new CLV (12 months, discounted, margin)", new.clv),
        ("BG/NBD x Gamma-Gamma (12 months, revenue)", textbook),
        ("old CLV (mlm_clv)", old_clv),
        ("past spend", columns.revenue),
    ]
    if truth:
        value_rows.append(("truth: new CLV with true parameters", true_scores.clv))
    for label, values in value_rows:
        print(
            f"| {label} | {top_share_capture(values, spend, 0.2):.1%} | "
            f"{spearman(values, spend):.3f} |"
        )
    zero_clv = sum(
        1
        for v, e in zip(new.clv, new.expected_purchases, strict=True)
        if e > 0 and v == 0
    )
    old_zero = sum(1 for v in old_clv if v == 0)
    print(f"\nCLV at 0: new {zero_clv}, old {old_zero} customers")

    print("\nCalibration of the new churn probability (deciles):\n")
    print("| decile | customers | predicted | observed |\n|---:|---:|---:|---:|")
    for row in calibration_table(new.churn_probability, churned, 10):
        print(
            f"| {row.label} | {row.count} | {row.predicted:.1%} | {row.observed:.1%} |"
        )

    print(f"\nRepurchase within {CHURN_DAYS} days per churn band:\n")
    print(
        "| band | new: customers | new: bought again "
        "| old: customers | old: bought again |"
    )
    print("|---|---:|---:|---:|---:|")
    edges = [20, 40, 60, 70, 80, 90, 100]
    new_bands = {r.label: r for r in rate_per_band(new.churn_risk, bought, edges)}
    old_bands = {r.label: r for r in rate_per_band(old_churn, bought, edges)}
    for label in [
        "<20",
        "20-40",
        "40-60",
        "60-70",
        "70-80",
        "80-90",
        "90-100",
        ">=100",
    ]:
        cells = []
        for bands in (new_bands, old_bands):
            row = bands.get(label)
            cells += [str(row.count), f"{row.observed:.1%}"] if row else ["0", "-"]
        print(f"| {label} | " + " | ".join(cells) + " |")

    cuts = frequency_cuts(population.orders_12m)
    new_f = [frequency_score(c, cuts) for c in population.orders_12m]
    print("\nFrequency score (orders in 12 months): customers per level\n")
    print("| level | old quintile F | new F |\n|---:|---:|---:|")
    for level in range(1, 6):
        print(
            f"| {level} | {sum(1 for f in old_f if f == level)} | "
            f"{sum(1 for f in new_f if f == level)} |"
        )


def timing(customers, seed):
    bgnbd, gamma_gamma = SCENARIOS["retail"]
    print(f"\n## Timing at {customers} customers (retail scenario, whole days)")
    rows = simulated_rows(bgnbd, gamma_gamma, customers, seed, CUT_DAY)
    cut = START + timedelta(days=CUT_DAY - 1)
    columns = model_columns(rows, cut, DEFAULT_MARGIN)
    population = old_population(rows, cut, columns.customers)
    params = ScoringParams(company_interval_days=population_interval(population))
    print(
        f"{len(columns.customers)} customers, {len(rows)} orders, "
        f"{sum(1 for x in columns.frequency if x)} repeat buyers, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print(
        "CPU seconds of this process (time.process_time: what an idle machine "
        "would take as wall time), wall seconds in brackets:\n"
    )
    print(
        "| run | old score_population | BG/NBD fit | Gamma-Gamma fit "
        "| score_model | model total | model / old |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    clocks = (time.process_time, time.perf_counter)
    for run in range(1, 4):
        t0 = [clock() for clock in clocks]
        score_population(population, cut, params)
        t1 = [clock() for clock in clocks]
        fit = fit_bgnbd(columns.frequency, columns.recency, columns.age)
        t2 = [clock() for clock in clocks]
        spend = fit_gamma_gamma(columns.orders, columns.mean)
        t3 = [clock() for clock in clocks]
        score_model(
            fit.params,
            spend.params,
            columns.frequency,
            columns.recency,
            columns.age,
            columns.orders,
            columns.mean,
            columns.margin,
            columns.revenue,
            ModelSettings(company_margin_rate=DEFAULT_MARGIN),
        )
        t4 = [clock() for clock in clocks]

        def cell(start, end):
            return f"{end[0] - start[0]:.3f} ({end[1] - start[1]:.3f})"

        old = t1[0] - t0[0]
        model = t4[0] - t1[0]
        print(
            f"| {run} | {cell(t0, t1)} | {cell(t1, t2)} | {cell(t2, t3)} "
            f"| {cell(t3, t4)} | {cell(t1, t4)} | {model / old:.2f} |"
        )
    print(
        f"\nfit evaluations: BG/NBD {fit.evaluations}, Gamma-Gamma "
        f"{spend.evaluations}; load average now {os.getloadavg()[0]:.1f}"
    )


def main():
    args = parse_args()
    end_day = CUT_DAY + SPEND_DAYS
    cut = START + timedelta(days=CUT_DAY - 1)
    if not args.skip_synthetic:
        for k, (name, (bgnbd, gamma_gamma)) in enumerate(SCENARIOS.items()):
            rows = simulated_rows(
                bgnbd, gamma_gamma, args.customers, args.seed + k, end_day
            )
            backtest(f"synthetic '{name}'", rows, cut, truth=(bgnbd, gamma_gamma))
    if args.csv:
        backtest(f"CSV {args.csv}", csv_rows(args.csv), args.cut)
    if args.timing_customers:
        timing(args.timing_customers, args.seed)


if __name__ == "__main__":
    main()
