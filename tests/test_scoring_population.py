"""DB-free tests of the columnar full-run scoring in loyalty_mlm.tools.scoring.

`score_population` must give every customer exactly what `score_customers`
gives him, and the reference `build_reference` gives, for any population:
random ones with many ties, negative revenues and margins, orders dated after
the scoring day, one-time buyers and same-day repeat buyers.
"""

import json
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from loyalty_mlm.tools.scoring import (
    SCORE_KEYS,
    CustomerStats,
    Population,
    ScoringParams,
    build_reference,
    company_interval,
    population_from_stats,
    population_interval,
    score_customers,
    score_population,
    score_with_reference,
)

from .test_scoring_reference import PARAMS, TODAY, random_population


def as_dicts(population, scores):
    return {
        pid: dict(zip(SCORE_KEYS, values, strict=True))
        for pid, values in zip(population.partner_ids, scores, strict=True)
    }


def with_future_orders(rng, stats):
    """Some customers' orders moved after the scoring day (typing errors)."""
    moved = []
    for stat in stats:
        if stat.last_order and rng.random() < 0.2:
            shift = timedelta(days=rng.randint(1, 40))
            first = stat.first_order + shift if rng.random() < 0.5 else stat.first_order
            stat = replace(stat, first_order=first, last_order=stat.last_order + shift)
            if stat.orders_total > 1:
                days = (stat.last_order - stat.first_order).days
                stat = replace(stat, avg_interval_days=days / (stat.orders_total - 1))
        moved.append(stat)
    return moved


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("size", [1, 2, 3, 7, 40, 301, 1000])
@pytest.mark.parametrize("params_index", range(len(PARAMS)))
def test_population_scores_equal_per_customer_scores(seed, size, params_index):
    rng = random.Random(seed * 7919 + size)
    stats = random_population(rng, size, coarse=bool(seed % 2))
    if seed % 3 == 0:
        stats = with_future_orders(rng, stats)
    rng.shuffle(stats)
    population = population_from_stats(stats, TODAY)
    assert population_interval(population) == company_interval(stats)
    params = replace(
        PARAMS[params_index], company_interval_days=company_interval(stats)
    )
    scores, reference = score_population(population, TODAY, params)
    assert as_dicts(population, scores) == score_customers(stats, TODAY, params)
    assert reference == build_reference(stats, TODAY, params)
    # The reference goes through JSON into the database and still works.
    stored = json.loads(json.dumps(reference))
    assert score_with_reference(stats, TODAY, params, stored) == as_dicts(
        population, scores
    )


def test_population_of_nobody():
    population = population_from_stats([], TODAY)
    scores, reference = score_population(population, TODAY, ScoringParams())
    assert scores == []
    assert reference == build_reference([], TODAY, ScoringParams())
    assert population_interval(population) is None


def test_customers_without_orders_stay_out():
    stats = [
        CustomerStats(1, None, None, 0, 0.0, 0, 0.0, 0.0, 0, 0.0, None),
        CustomerStats(2, TODAY, TODAY, 1, 10.0, 0, 0.0, 3.0, 1, 10.0, None),
    ]
    population = population_from_stats(stats, TODAY)
    assert population.partner_ids == [2]
    (values,), _reference = score_population(population, TODAY, ScoringParams())
    # Alone: neutral RFM, heavy (he spent something), churn 0 (ordered today).
    assert values == (3, 3, 3, "333", "heavy", "true_friend", 0, 15.0)


def column_population(**columns):
    base = {
        "partner_ids": [1, 2],
        "first_order_days": [10, 20],
        "last_order_days": [10, 20],
        "orders_12m": [1, 1],
        "revenue_12m": [10.0, 20.0],
        "margin_12m": [3.0, 6.0],
        "orders_total": [1, 1],
        "revenue_total": [10.0, 20.0],
        "avg_interval_days": [None, None],
    }
    base.update(columns)
    return Population(**base)


def test_duplicate_customer_is_a_caller_bug():
    with pytest.raises(ValueError, match="duplicate"):
        score_population(column_population(partner_ids=[1, 1]), TODAY, PARAMS[0])


def test_customer_without_orders_is_a_caller_bug():
    with pytest.raises(ValueError, match="without orders"):
        score_population(column_population(orders_total=[1, 0]), TODAY, PARAMS[0])
