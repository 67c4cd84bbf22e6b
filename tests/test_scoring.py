"""DB-free tests of loyalty_mlm.tools.scoring (RFM, segments, churn, CLV)."""

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest

from loyalty_mlm.tools.scoring import (
    CustomerStats,
    ScoringParams,
    churn_risk,
    clv,
    quadrants,
    quintile_scores,
    rfm_scores,
    score_customers,
    usage_segments,
)

TODAY = date(2025, 6, 30)
PARAMS = ScoringParams()


def ago(days):
    return TODAY - timedelta(days=days)


def stat(pid, **values):
    """A customer with one order 30 days ago, overridden by `values`."""
    base = {
        "partner_id": pid,
        "first_order": ago(30),
        "last_order": ago(30),
        "orders_12m": 1,
        "revenue_12m": 100.0,
        "orders_prev_12m": 0,
        "revenue_prev_12m": 0.0,
        "margin_12m": 30.0,
        "orders_total": 1,
        "revenue_total": 100.0,
        "avg_interval_days": None,
    }
    base.update(values)
    return CustomerStats(**base)


def no_order(pid):
    return stat(
        pid,
        first_order=None,
        last_order=None,
        orders_12m=0,
        revenue_12m=0.0,
        margin_12m=0.0,
        orders_total=0,
        revenue_total=0.0,
    )


def by_revenue(revenues):
    """Customers 1..n with the given 12-month revenues."""
    return [
        stat(pid, revenue_12m=value, margin_12m=value * 0.3)
        for pid, value in enumerate(revenues, start=1)
    ]


# --- quintile_scores ------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "higher_is_better", "expected"),
    [
        pytest.param({}, True, {}, id="empty"),
        pytest.param({7: 12.0}, True, {7: 3}, id="single-neutral"),
        pytest.param({7: 12.0}, False, {7: 3}, id="single-neutral-lower"),
        pytest.param({1: 5, 2: 5, 3: 5}, True, {1: 3, 2: 3, 3: 3}, id="all-equal"),
        pytest.param(
            {1: 10, 2: 20, 3: 30, 4: 40, 5: 50},
            True,
            {1: 1, 2: 2, 3: 3, 4: 4, 5: 5},
            id="five-distinct",
        ),
        pytest.param(
            {1: 10, 2: 20, 3: 30, 4: 40, 5: 50},
            False,
            {1: 5, 2: 4, 3: 3, 4: 2, 5: 1},
            id="five-distinct-lower-is-better",
        ),
        pytest.param(
            {pid: pid for pid in range(1, 11)},
            True,
            {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 5, 10: 5},
            id="ten-distinct",
        ),
        pytest.param(
            # Ranks 1 and 2 sit on the border between quintiles 1 and 2.
            {1: 1, 2: 2, 3: 2, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 10: 10},
            True,
            {1: 1, 2: 1, 3: 1, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 5, 10: 5},
            id="tie-across-border-takes-first-rank",
        ),
        pytest.param(
            # Lower is better: the two 3s share the rank of the first one seen
            # worst-first, so both get 2.
            {1: 1, 2: 2, 3: 3, 4: 3, 5: 5},
            False,
            {1: 5, 2: 4, 3: 2, 4: 2, 5: 1},
            id="tie-lower-is-better",
        ),
        pytest.param(
            # Six customers with no order in 12 months must read as the worst.
            {1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 1, 8: 2, 9: 3, 10: 4},
            True,
            {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 4, 8: 4, 9: 5, 10: 5},
            id="large-block-of-zeros-scores-1",
        ),
        pytest.param(
            {1: 0, 2: 1, 3: 1, 4: 1, 5: 1},
            True,
            {1: 1, 2: 2, 3: 2, 4: 2, 5: 2},
            id="top-tie-does-not-reach-5",
        ),
        pytest.param(
            {1: -50.0, 2: 0.0, 3: 10.0},
            True,
            {1: 1, 2: 2, 3: 4},
            id="negative-ranks-lowest",
        ),
    ],
)
def test_quintile_scores(values, higher_is_better, expected):
    assert quintile_scores(values, higher_is_better=higher_is_better) == expected


def test_quintile_scores_ignore_ids_and_input_order():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0]
    reference = quintile_scores(dict(enumerate(values)))
    by_value = {values[pid]: score for pid, score in reference.items()}
    shuffled = list(enumerate(values))
    random.Random(42).shuffle(shuffled)
    renamed = {1000 - pid: value for pid, value in shuffled}
    scores = quintile_scores(renamed)
    assert {pid: by_value[renamed[pid]] for pid in renamed} == scores


# --- rfm_scores -----------------------------------------------------------


def test_rfm_empty_population():
    assert rfm_scores([], TODAY) == {}


def test_rfm_excludes_customers_without_orders():
    assert rfm_scores([no_order(1), no_order(2)], TODAY) == {}
    assert list(rfm_scores([no_order(1), stat(2)], TODAY)) == [2]


def test_rfm_single_customer_is_neutral():
    assert rfm_scores([stat(1)], TODAY) == {1: (3, 3, 3, "333")}


def test_rfm_five_customers():
    stats = [
        stat(pid, last_order=ago(days), orders_12m=orders, revenue_12m=revenue)
        for pid, days, orders, revenue in [
            (1, 5, 10, 5000.0),
            (2, 20, 6, 100.0),
            (3, 60, 4, 2000.0),
            (4, 200, 2, 900.0),
            (5, 400, 0, 0.0),
        ]
    ]
    assert rfm_scores(stats, TODAY) == {
        1: (5, 5, 5, "555"),
        2: (4, 4, 2, "442"),
        3: (3, 3, 4, "334"),
        4: (2, 2, 3, "223"),
        5: (1, 1, 1, "111"),
    }


def test_rfm_refunds_larger_than_purchases_rank_lowest():
    stats = [
        stat(1, revenue_12m=-250.0),
        stat(2, revenue_12m=0.0),
        stat(3, revenue_12m=80.0),
    ]
    monetary = {pid: value[2] for pid, value in rfm_scores(stats, TODAY).items()}
    assert monetary == {1: 1, 2: 2, 3: 4}


def test_rfm_one_time_buyers_all_equal():
    stats = [stat(pid) for pid in range(1, 6)]
    assert rfm_scores(stats, TODAY) == dict.fromkeys(range(1, 6), (3, 3, 3, "333"))


def test_rfm_future_order_counts_as_today():
    stats = [stat(1, last_order=TODAY + timedelta(days=3)), stat(2, last_order=TODAY)]
    assert rfm_scores(stats, TODAY) == {1: (3, 3, 3, "333"), 2: (3, 3, 3, "333")}


# --- usage_segments -------------------------------------------------------


SEGMENT_CASES = [
    pytest.param([], PARAMS, {}, id="empty"),
    pytest.param([500.0], PARAMS, {1: "heavy"}, id="single-is-heavy"),
    pytest.param([0.0], PARAMS, {1: "low"}, id="single-at-threshold-is-low"),
    pytest.param([-40.0], PARAMS, {1: "low"}, id="single-refunded-is-low"),
    pytest.param(
        [100.0 * i for i in range(1, 11)],
        PARAMS,
        {1: "low", 2: "low", 3: "low", 4: "medium", 5: "medium", 6: "medium"}
        | {7: "medium", 8: "medium", 9: "heavy", 10: "heavy"},
        id="ten-distinct-top20-bottom30",
    ),
    pytest.param(
        # The 900s tie with the cutoff (second place): both are in.
        [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 900.0, 900.0, 1000.0],
        PARAMS,
        {1: "low", 2: "low", 3: "low", 4: "medium", 5: "medium", 6: "medium"}
        | {7: "medium", 8: "heavy", 9: "heavy", 10: "heavy"},
        id="tie-at-heavy-cutoff-all-in",
    ),
    pytest.param(
        # The 300s tie with the low cutoff (third place from the bottom).
        [100.0, 200.0, 300.0, 300.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0],
        PARAMS,
        {1: "low", 2: "low", 3: "low", 4: "low", 5: "medium", 6: "medium"}
        | {7: "medium", 8: "medium", 9: "heavy", 10: "heavy"},
        id="tie-at-low-cutoff-all-in",
    ),
    pytest.param(
        [100.0, 100.0, 100.0],
        PARAMS,
        {1: "heavy", 2: "heavy", 3: "heavy"},
        id="all-equal-positive-all-heavy",
    ),
    pytest.param(
        [0.0, 0.0, 0.0],
        PARAMS,
        {1: "low", 2: "low", 3: "low"},
        id="all-zero-never-heavy",
    ),
    pytest.param(
        [50.0, 900.0],
        PARAMS,
        {1: "low", 2: "heavy"},
        id="two-customers",
    ),
    pytest.param(
        [100.0 * i for i in range(1, 6)],
        ScoringParams(heavy_pct=60.0, low_pct=60.0),
        {1: "low", 2: "low", 3: "heavy", 4: "heavy", 5: "heavy"},
        id="overlap-heavy-wins",
    ),
    pytest.param(
        [100.0 * i for i in range(1, 6)],
        ScoringParams(heavy_pct=0.0, low_pct=0.0),
        {1: "medium", 2: "medium", 3: "medium", 4: "medium", 5: "medium"},
        id="percentiles-off",
    ),
    pytest.param(
        [300.0, 301.0, 1000.0, 2000.0, 5000.0],
        ScoringParams(heavy_pct=0.0, low_pct=0.0, low_threshold=300.0),
        {1: "low", 2: "medium", 3: "medium", 4: "medium", 5: "medium"},
        id="absolute-low-threshold-inclusive",
    ),
    pytest.param(
        [-900.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0],
        PARAMS,
        {1: "low", 2: "low", 3: "low", 4: "medium", 5: "medium", 6: "medium"}
        | {7: "medium", 8: "medium", 9: "heavy", 10: "heavy"},
        id="negative-revenue-is-low",
    ),
]


@pytest.mark.parametrize(("revenues", "params", "expected"), SEGMENT_CASES)
def test_usage_segments(revenues, params, expected):
    assert usage_segments(by_revenue(revenues), params) == expected


def test_usage_segments_exclude_customers_without_orders():
    stats = [*by_revenue([100.0, 200.0]), no_order(3)]
    assert usage_segments(stats, PARAMS) == {1: "low", 2: "heavy"}


def test_usage_at_least_one_heavy_with_tiny_percentage():
    stats = by_revenue([10.0 * i for i in range(1, 8)])
    segments = usage_segments(stats, ScoringParams(heavy_pct=1.0))
    assert [pid for pid, seg in segments.items() if seg == "heavy"] == [7]


# --- quadrants ------------------------------------------------------------


def quadrant_population():
    """One customer per quadrant (4 customers: the top 2 are "high")."""
    return [
        # Frequent, regular, long-standing, profitable.
        stat(
            1,
            first_order=ago(1800),
            last_order=ago(5),
            orders_12m=12,
            avg_interval_days=30.0,
            margin_12m=5000.0,
        ),
        # New, one order, but very profitable.
        stat(
            2,
            first_order=ago(29),
            last_order=ago(29),
            orders_12m=1,
            avg_interval_days=None,
            margin_12m=4000.0,
        ),
        # Loyal but small margin.
        stat(
            3,
            first_order=ago(1400),
            last_order=ago(10),
            orders_12m=10,
            avg_interval_days=35.0,
            margin_12m=100.0,
        ),
        # Rare, recent, small margin.
        stat(
            4,
            first_order=ago(500),
            last_order=ago(100),
            orders_12m=2,
            avg_interval_days=100.0,
            margin_12m=50.0,
        ),
    ]


def test_quadrants_each_quadrant():
    assert quadrants(quadrant_population(), TODAY, PARAMS) == {
        1: "true_friend",
        2: "butterfly",
        3: "barnacle",
        4: "stranger",
    }


def test_quadrants_do_not_depend_on_input_order():
    population = quadrant_population()
    expected = quadrants(population, TODAY, PARAMS)
    assert quadrants(list(reversed(population)), TODAY, PARAMS) == expected


@pytest.mark.parametrize(
    ("stats", "params", "expected"),
    [
        pytest.param([], PARAMS, {}, id="empty"),
        pytest.param([no_order(1)], PARAMS, {}, id="no-orders-excluded"),
        pytest.param([stat(1)], PARAMS, {1: "true_friend"}, id="single-profitable"),
        pytest.param(
            [stat(1, margin_12m=0.0)], PARAMS, {1: "barnacle"}, id="single-no-margin"
        ),
        pytest.param(
            [stat(1), stat(2), stat(3)],
            PARAMS,
            {1: "true_friend", 2: "true_friend", 3: "true_friend"},
            id="all-equal-share-one-quadrant",
        ),
        pytest.param(
            [stat(1, margin_12m=-10.0), stat(2, margin_12m=-5.0)],
            PARAMS,
            {1: "barnacle", 2: "barnacle"},
            id="losses-never-high-profit",
        ),
        pytest.param(
            [
                stat(1, margin_12m=10.0),
                stat(2, margin_12m=20.0),
                stat(3, margin_12m=20.0),
                stat(4, margin_12m=40.0),
            ],
            PARAMS,
            {1: "barnacle", 2: "barnacle", 3: "barnacle", 4: "true_friend"},
            id="margin-tie-same-side",
        ),
        pytest.param(
            quadrant_population(),
            ScoringParams(loyalty_split_pct=0.0, profit_split_pct=0.0),
            {1: "true_friend", 2: "true_friend", 3: "true_friend", 4: "true_friend"},
            id="split-0-everyone-high",
        ),
        pytest.param(
            quadrant_population(),
            ScoringParams(loyalty_split_pct=100.0, profit_split_pct=100.0),
            {1: "true_friend", 2: "stranger", 3: "stranger", 4: "stranger"},
            id="split-100-only-the-top",
        ),
    ],
)
def test_quadrants_edge_cases(stats, params, expected):
    assert quadrants(stats, TODAY, params) == expected


# --- churn_risk -----------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "interval", "company", "expected"),
    [
        pytest.param(0, 30.0, None, 0, id="today"),
        pytest.param(30, 30.0, None, 0, id="exactly-on-schedule"),
        pytest.param(31, 30.0, None, 2, id="one-day-late"),
        pytest.param(45, 30.0, None, 29, id="half-interval-late"),
        pytest.param(60, 30.0, None, 50, id="one-interval-late"),
        pytest.param(90, 30.0, None, 75, id="two-intervals-late"),
        pytest.param(120, 30.0, None, 88, id="three-intervals-late-half-up"),
        pytest.param(259, 30.0, None, 99, id="just-below-100"),
        pytest.param(260, 30.0, None, 100, id="reaches-100"),
        pytest.param(3000, 30.0, None, 100, id="far-overdue-capped"),
        pytest.param(120, None, 60.0, 50, id="one-time-buyer-company-interval"),
        pytest.param(180, None, None, 50, id="one-time-buyer-default-90"),
        pytest.param(90, None, None, 0, id="one-time-buyer-on-schedule"),
        pytest.param(120, 0.0, 60.0, 50, id="same-day-orders-use-company"),
        pytest.param(180, None, 0.0, 50, id="company-zero-means-default"),
        pytest.param(60, 30.0, 365.0, 50, id="own-interval-beats-company"),
        pytest.param(-5, 30.0, None, 0, id="future-order"),
    ],
)
def test_churn_risk(days, interval, company, expected):
    customer = stat(1, last_order=ago(days), avg_interval_days=interval)
    assert churn_risk(customer, TODAY, company) == expected


def test_churn_risk_none_without_orders():
    assert churn_risk(no_order(1), TODAY, 60.0) is None


@pytest.mark.parametrize("interval", [None, 1.0, 7.0, 30.0, 45.5, 365.0])
def test_churn_risk_monotonic_and_bounded(interval):
    risks = [
        churn_risk(stat(1, last_order=ago(days), avg_interval_days=interval), TODAY, 0)
        for days in range(0, 4000)
    ]
    assert all(0 <= risk <= 100 for risk in risks)
    assert risks == sorted(risks)
    assert (risks[0], risks[-1]) == (0, 100)


# --- clv ------------------------------------------------------------------


def steady(**values):
    """4 orders, 1000 revenue, 300 margin in 12 months: 300 margin a year."""
    return stat(
        1,
        **{
            "orders_12m": 4,
            "revenue_12m": 1000.0,
            "margin_12m": 300.0,
            "orders_total": 8,
            "revenue_total": 2000.0,
        }
        | values,
    )


@pytest.mark.parametrize(
    ("customer", "churn", "params", "expected"),
    [
        pytest.param(steady(), 0, PARAMS, 1500.0, id="no-churn-capped-5-years"),
        pytest.param(steady(), 10, PARAMS, 1500.0, id="r-0.9-capped"),
        pytest.param(steady(), 20, PARAMS, 1200.0, id="r-0.8-four-years"),
        pytest.param(steady(), 50, PARAMS, 300.0, id="r-0.5-one-year"),
        pytest.param(steady(), 80, PARAMS, 75.0, id="r-0.2-quarter-year"),
        pytest.param(steady(), 100, PARAMS, 0.0, id="lost-customer-worth-0"),
        pytest.param(
            steady(),
            0,
            ScoringParams(clv_horizon_cap_years=2.0),
            600.0,
            id="custom-cap",
        ),
        pytest.param(
            steady(), 0, ScoringParams(clv_horizon_cap_years=0.0), 0.0, id="cap-0"
        ),
        pytest.param(
            steady(orders_12m=0, revenue_12m=0.0, margin_12m=0.0),
            50,
            PARAMS,
            75.0,
            id="lapsed-lifetime-aov-once-a-year-default-margin",
        ),
        pytest.param(
            stat(1, revenue_12m=200.0, margin_12m=80.0),
            50,
            PARAMS,
            80.0,
            id="one-time-buyer",
        ),
        pytest.param(
            steady(revenue_12m=-500.0, margin_12m=-150.0),
            0,
            PARAMS,
            0.0,
            id="refunds-larger-than-purchases",
        ),
        pytest.param(
            steady(revenue_12m=0.0, margin_12m=0.0),
            0,
            PARAMS,
            0.0,
            id="net-zero-revenue",
        ),
        pytest.param(
            steady(margin_12m=-100.0), 0, PARAMS, 0.0, id="negative-margin-clamped"
        ),
        pytest.param(
            steady(margin_12m=5000.0), 50, PARAMS, 1000.0, id="margin-rate-capped-1"
        ),
        pytest.param(
            steady(orders_12m=0, revenue_12m=0.0, revenue_total=-300.0),
            0,
            PARAMS,
            0.0,
            id="lifetime-refunds",
        ),
        pytest.param(
            stat(1, revenue_12m=100.0, margin_12m=100.0 / 3),
            50,
            PARAMS,
            33.33,
            id="rounded-to-cents",
        ),
    ],
)
def test_clv(customer, churn, params, expected):
    assert clv(customer, churn, params) == expected


@pytest.mark.parametrize(
    ("customer", "churn"),
    [
        pytest.param(no_order(1), 10, id="no-orders"),
        pytest.param(steady(), None, id="no-churn-risk"),
    ],
)
def test_clv_none(customer, churn):
    assert clv(customer, churn, PARAMS) is None


@pytest.mark.parametrize("revenue", [-1000.0, -1.0, 0.0, 0.01, 1000.0])
@pytest.mark.parametrize("margin", [-500.0, 0.0, 250.0, 2000.0])
@pytest.mark.parametrize("orders_12m", [0, 1, 5])
@pytest.mark.parametrize("churn", [0, 1, 33, 99, 100])
def test_clv_never_negative(revenue, margin, orders_12m, churn):
    customer = steady(
        revenue_12m=revenue,
        margin_12m=margin,
        orders_12m=orders_12m,
        revenue_total=revenue,
    )
    assert clv(customer, churn, PARAMS) >= 0.0


# --- params ---------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"heavy_pct": -1.0},
        {"low_pct": 100.5},
        {"loyalty_split_pct": 101.0},
        {"profit_split_pct": -0.1},
        {"default_margin_pct": 150.0},
        {"clv_horizon_cap_years": -1.0},
    ],
)
def test_params_out_of_range(values):
    with pytest.raises(ValueError):
        ScoringParams(**values)


# --- score_customers ------------------------------------------------------


def test_score_customers_empty_company():
    assert score_customers([], TODAY, PARAMS) == {}


def test_score_customers_only_customers_without_orders():
    assert score_customers([no_order(1), no_order(2)], TODAY, PARAMS) == {}


def test_score_customers_single_one_time_buyer():
    customer = stat(9, last_order=ago(180), first_order=ago(180), margin_12m=40.0)
    assert score_customers([customer, no_order(10)], TODAY, PARAMS) == {
        9: {
            "mlm_recency_score": 3,
            "mlm_frequency_score": 3,
            "mlm_monetary_score": 3,
            "mlm_rfm_code": "333",
            "mlm_usage_segment": "heavy",
            "mlm_quadrant": "true_friend",
            "mlm_churn_risk": 50,
            "mlm_clv": 40.0,
        }
    }


def test_score_customers_uses_company_interval():
    customer = stat(1, last_order=ago(120), first_order=ago(120))
    params = replace(PARAMS, company_interval_days=60.0)
    result = score_customers([customer], TODAY, params)
    assert result[1]["mlm_churn_risk"] == 50


def test_score_customers_matches_the_parts():
    population = [*quadrant_population(), no_order(5)]
    result = score_customers(population, TODAY, PARAMS)
    rfm = rfm_scores(population, TODAY)
    assert sorted(result) == [1, 2, 3, 4]
    assert {pid: row["mlm_rfm_code"] for pid, row in result.items()} == {
        pid: value[3] for pid, value in rfm.items()
    }
    assert {pid: row["mlm_quadrant"] for pid, row in result.items()} == quadrants(
        population, TODAY, PARAMS
    )
    assert {pid: row["mlm_usage_segment"] for pid, row in result.items()} == (
        usage_segments(population, PARAMS)
    )


def test_score_customers_rejects_duplicate_ids():
    with pytest.raises(ValueError):
        score_customers([stat(1), stat(1)], TODAY, PARAMS)


def test_score_customers_large_population():
    rng = random.Random(7)
    population = []
    for pid in range(1, 20_001):
        orders = rng.randint(0, 12)
        revenue = round(rng.uniform(-50.0, 5000.0), 2) if orders else 0.0
        population.append(
            stat(
                pid,
                first_order=ago(rng.randint(0, 3000)),
                last_order=ago(rng.randint(0, 700)),
                orders_12m=orders,
                revenue_12m=revenue,
                margin_12m=revenue * 0.25,
                orders_total=orders + rng.randint(1, 20),
                avg_interval_days=rng.choice([None, rng.uniform(1.0, 400.0)]),
            )
        )
    result = score_customers(population, TODAY, PARAMS)
    assert len(result) == 20_000
    scores = {row["mlm_frequency_score"] for row in result.values()}
    assert scores == {1, 2, 3, 4, 5}
