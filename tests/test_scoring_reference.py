"""DB-free tests of the incremental scoring helpers in loyalty_mlm.tools.scoring.

`score_with_reference` must give every customer of a population exactly what
`score_customers` gave him in the full run the reference was built from.
"""

import json
import random
from dataclasses import replace
from datetime import date, timedelta

import pytest

from loyalty_mlm.tools.scoring import (
    CustomerStats,
    ScoringParams,
    build_reference,
    company_interval,
    score_customers,
    score_with_reference,
)

TODAY = date(2025, 6, 30)


def random_population(rng, size, coarse):
    """Customers with random stats; `coarse` draws from few values (many ties)."""

    def pick(low, high):
        if coarse:
            return rng.choice([low, (low + high) // 2, high])
        return rng.randint(low, high)

    stats = []
    for pid in range(1, size + 1):
        orders_total = pick(0, 12)
        if not orders_total:
            stats.append(
                CustomerStats(pid, None, None, 0, 0.0, 0, 0.0, 0.0, 0, 0.0, None)
            )
            continue
        first = TODAY - timedelta(days=pick(0, 900))
        last = first + timedelta(days=pick(0, (TODAY - first).days))
        orders_12m = min(orders_total, pick(0, 8))
        revenue_12m = float(pick(-50, 2000)) if orders_12m else float(pick(-20, 0))
        interval = None
        if orders_total > 1:
            interval = (last - first).days / (orders_total - 1)
        stats.append(
            CustomerStats(
                partner_id=pid,
                first_order=first,
                last_order=last,
                orders_12m=orders_12m,
                revenue_12m=revenue_12m,
                orders_prev_12m=pick(0, 5),
                revenue_prev_12m=float(pick(0, 900)),
                margin_12m=round(revenue_12m * pick(-10, 60) / 100.0, 2),
                orders_total=orders_total,
                revenue_total=revenue_12m + pick(0, 3000),
                avg_interval_days=interval,
            )
        )
    return stats


PARAMS = [
    ScoringParams(),
    ScoringParams(heavy_pct=0.0, low_pct=0.0, low_threshold=100.0),
    ScoringParams(heavy_pct=100.0, low_pct=100.0),
    ScoringParams(heavy_pct=33.3, low_pct=12.5, loyalty_split_pct=0.0),
    ScoringParams(loyalty_split_pct=100.0, profit_split_pct=100.0),
    ScoringParams(loyalty_split_pct=37.5, profit_split_pct=80.0, low_threshold=-5),
]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("size", [1, 2, 3, 7, 40, 301])
@pytest.mark.parametrize("params_index", range(len(PARAMS)))
def test_reference_reproduces_full_run(seed, size, params_index):
    rng = random.Random(seed * 1000 + size)
    stats = random_population(rng, size, coarse=bool(seed % 2))
    params = replace(
        PARAMS[params_index], company_interval_days=company_interval(stats)
    )
    full = score_customers(stats, TODAY, params)
    # The reference survives a JSON round trip (it is stored in the database).
    reference = json.loads(json.dumps(build_reference(stats, TODAY, params)))
    assert score_with_reference(stats, TODAY, params, reference) == full
    # One customer at a time gives the same as the whole population at once.
    for stat in stats[:5]:
        alone = score_with_reference([stat], TODAY, params, reference)
        assert alone == {k: v for k, v in full.items() if k == stat.partner_id}


def test_reference_of_all_equal_population_is_neutral():
    stats = [
        CustomerStats(pid, TODAY, TODAY, 1, 10.0, 0, 0.0, 3.0, 1, 10.0, None)
        for pid in (1, 2, 3)
    ]
    params = ScoringParams()
    reference = build_reference(stats, TODAY, params)
    newcomer = CustomerStats(9, TODAY, TODAY, 5, 999.0, 0, 0.0, 300.0, 5, 999.0, 2.0)
    scores = score_with_reference([newcomer], TODAY, params, reference)[9]
    assert scores["mlm_rfm_code"] == "333"
    assert scores["mlm_usage_segment"] == "heavy"


def test_reference_scores_a_newcomer_against_the_old_population():
    # Revenues 100..1000: a newcomer spending 950 ranks like the 10th customer.
    stats = [
        CustomerStats(pid, TODAY, TODAY, 1, 100.0 * pid, 0, 0.0, 30.0, 1, 100.0, None)
        for pid in range(1, 11)
    ]
    params = ScoringParams()
    reference = build_reference(stats, TODAY, params)
    newcomer = CustomerStats(99, TODAY, TODAY, 1, 950.0, 0, 0.0, 30.0, 1, 950.0, None)
    scores = score_with_reference([newcomer], TODAY, params, reference)[99]
    assert scores["mlm_monetary_score"] == 5
    assert scores["mlm_usage_segment"] == "heavy"


def test_reference_ages_recency_from_its_own_day():
    stats = [
        CustomerStats(
            pid,
            TODAY,
            TODAY - timedelta(days=10 * pid),
            1,
            10.0,
            0,
            0.0,
            3.0,
            1,
            10.0,
            None,
        )
        for pid in range(1, 11)
    ]
    params = ScoringParams()
    reference = build_reference(stats, TODAY, params)
    # Scored 30 days later, customer 1 still ranks as of the reference day.
    later = TODAY + timedelta(days=30)
    scores = score_with_reference(stats[:1], later, params, reference)[1]
    assert scores["mlm_recency_score"] == 5


def test_company_interval_is_the_median_of_repeat_customers():
    def customer(pid, interval):
        return CustomerStats(pid, TODAY, TODAY, 1, 1.0, 0, 0.0, 0.0, 2, 1.0, interval)

    assert company_interval([]) is None
    assert company_interval([customer(1, None), customer(2, 0.0)]) is None
    assert company_interval([customer(1, 10.0), customer(2, 30.0)]) == 20.0
    assert company_interval([customer(p, v) for p, v in enumerate([5, 9, 40])]) == 9.0
