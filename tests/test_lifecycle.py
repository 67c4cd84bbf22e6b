"""DB-free tests of loyalty_mlm.tools.lifecycle (the six stage rules)."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from loyalty_mlm.tools.lifecycle import (
    REASON_LABELS,
    STAGES,
    StageInput,
    StageParams,
    decide_stage,
    describe_rules,
    order_drop_exceeds,
)

TODAY = date(2025, 6, 30)
PARAMS = StageParams()


def ago(days):
    return TODAY - timedelta(days=days)


# A settled, healthy customer that no rule but growth matches; each case
# changes only what it tests.
GROWTH = StageInput(
    first_order=ago(400),
    last_order=ago(10),
    orders_total=10,
    orders_12m=5,
    orders_prev_12m=5,
    churn_risk=10,
    usage_segment="medium",
    quadrant="barnacle",
    referrals=0,
)

# Recent first order, few orders: onboarding.
NEW = replace(
    GROWTH,
    first_order=ago(30),
    last_order=ago(5),
    orders_total=2,
    orders_12m=2,
    orders_prev_12m=0,
)


@pytest.mark.parametrize(
    ("inp", "params", "expected"),
    [
        pytest.param(GROWTH, PARAMS, ("growth", "active"), id="baseline-growth"),
        # acquisition
        pytest.param(
            replace(GROWTH, orders_total=0, first_order=None, last_order=None),
            PARAMS,
            ("acquisition", "no_order"),
            id="no-order",
        ),
        pytest.param(
            replace(GROWTH, orders_total=0),
            PARAMS,
            ("acquisition", "no_order"),
            id="zero-orders-with-stale-dates",
        ),
        pytest.param(
            replace(GROWTH, first_order=None),
            PARAMS,
            ("acquisition", "no_order"),
            id="no-first-order-date",
        ),
        # winback: strictly more than lapse_days
        pytest.param(
            replace(GROWTH, last_order=ago(180)),
            PARAMS,
            ("growth", "active"),
            id="lapse-180-days-not-yet",
        ),
        pytest.param(
            replace(GROWTH, last_order=ago(181)),
            PARAMS,
            ("winback", "lapsed"),
            id="lapse-181-days",
        ),
        pytest.param(
            replace(GROWTH, last_order=ago(30)),
            replace(PARAMS, lapse_days=30),
            ("growth", "active"),
            id="custom-lapse-at-boundary",
        ),
        pytest.param(
            replace(GROWTH, last_order=ago(31)),
            replace(PARAMS, lapse_days=30),
            ("winback", "lapsed"),
            id="custom-lapse-past-boundary",
        ),
        pytest.param(
            replace(GROWTH, last_order=None, first_order=ago(181)),
            PARAMS,
            ("winback", "lapsed"),
            id="missing-last-order-uses-first",
        ),
        pytest.param(
            replace(GROWTH, last_order=TODAY + timedelta(days=2)),
            PARAMS,
            ("growth", "active"),
            id="future-order-counts-as-today",
        ),
        # onboarding: first order <= onboarding_days and orders < max
        pytest.param(NEW, PARAMS, ("onboarding", "new_customer"), id="new"),
        pytest.param(
            replace(NEW, first_order=ago(90)),
            PARAMS,
            ("onboarding", "new_customer"),
            id="onboarding-90-days-in",
        ),
        pytest.param(
            replace(NEW, first_order=ago(91)),
            PARAMS,
            ("growth", "active"),
            id="onboarding-91-days-out",
        ),
        pytest.param(
            replace(NEW, orders_total=3, orders_12m=3),
            PARAMS,
            ("growth", "active"),
            id="onboarding-3-orders-out",
        ),
        pytest.param(
            replace(NEW, orders_total=1, orders_12m=1),
            PARAMS,
            ("onboarding", "new_customer"),
            id="onboarding-one-time-buyer",
        ),
        pytest.param(
            replace(NEW, orders_total=3, orders_12m=3),
            replace(PARAMS, onboarding_max_orders=4),
            ("onboarding", "new_customer"),
            id="custom-onboarding-max-orders",
        ),
        # retention: churn risk
        pytest.param(
            replace(GROWTH, churn_risk=69),
            PARAMS,
            ("growth", "active"),
            id="churn-69",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=70),
            PARAMS,
            ("retention", "churn_risk"),
            id="churn-70",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=100),
            PARAMS,
            ("retention", "churn_risk"),
            id="churn-100",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=None),
            PARAMS,
            ("growth", "active"),
            id="churn-unknown",
        ),
        # retention: the churn rise (the churn model) is not required by
        # default; with at_risk_rise, the risk must also have risen since the
        # last order.
        pytest.param(
            replace(GROWTH, churn_risk=70, churn_rise=0),
            PARAMS,
            ("retention", "churn_risk"),
            id="churn-70-no-rise-needed",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=95, churn_rise=9),
            replace(PARAMS, at_risk_rise=10),
            ("growth", "active"),
            id="high-churn-not-risen",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=70, churn_rise=10),
            replace(PARAMS, at_risk_rise=10),
            ("retention", "churn_risk"),
            id="churn-70-risen-10",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=69, churn_rise=60),
            replace(PARAMS, at_risk_rise=10),
            ("growth", "active"),
            id="risen-but-churn-69",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=70, churn_rise=5),
            replace(PARAMS, at_risk_rise=5),
            ("retention", "churn_risk"),
            id="custom-rise",
        ),
        # retention: order drop, strictly more than drop_pct
        pytest.param(
            replace(GROWTH, orders_prev_12m=10, orders_12m=5),
            PARAMS,
            ("growth", "active"),
            id="drop-exactly-50",
        ),
        pytest.param(
            replace(GROWTH, orders_prev_12m=10, orders_12m=4),
            PARAMS,
            ("retention", "order_drop"),
            id="drop-60",
        ),
        pytest.param(
            replace(GROWTH, orders_prev_12m=2, orders_12m=1),
            PARAMS,
            ("growth", "active"),
            id="drop-2-to-1-exactly-50",
        ),
        pytest.param(
            replace(GROWTH, orders_prev_12m=3, orders_12m=1),
            PARAMS,
            ("retention", "order_drop"),
            id="drop-3-to-1",
        ),
        pytest.param(
            replace(GROWTH, orders_prev_12m=4, orders_12m=0),
            PARAMS,
            ("retention", "order_drop"),
            id="drop-to-zero",
        ),
        pytest.param(
            replace(GROWTH, orders_prev_12m=0, orders_12m=0),
            PARAMS,
            ("growth", "active"),
            id="no-previous-orders-no-drop",
        ),
        pytest.param(
            replace(GROWTH, orders_prev_12m=5, orders_12m=9),
            PARAMS,
            ("growth", "active"),
            id="orders-up",
        ),
        # ambassadorship
        pytest.param(
            replace(GROWTH, referrals=1),
            PARAMS,
            ("ambassadorship", "referrals"),
            id="one-referral",
        ),
        pytest.param(
            replace(GROWTH, referrals=1),
            replace(PARAMS, ambassador_referrals=2),
            ("growth", "active"),
            id="one-referral-of-two-needed",
        ),
        pytest.param(
            replace(GROWTH, referrals=2),
            replace(PARAMS, ambassador_referrals=2),
            ("ambassadorship", "referrals"),
            id="two-referrals-of-two-needed",
        ),
        pytest.param(
            GROWTH,
            replace(PARAMS, ambassador_referrals=0),
            ("growth", "active"),
            id="referral-route-disabled",
        ),
        pytest.param(
            replace(GROWTH, usage_segment="heavy", quadrant="true_friend"),
            PARAMS,
            ("ambassadorship", "heavy_true_friend"),
            id="heavy-true-friend",
        ),
        pytest.param(
            replace(GROWTH, usage_segment="heavy", quadrant="barnacle"),
            PARAMS,
            ("growth", "active"),
            id="heavy-barnacle",
        ),
        pytest.param(
            replace(GROWTH, usage_segment="medium", quadrant="true_friend"),
            PARAMS,
            ("growth", "active"),
            id="medium-true-friend",
        ),
        pytest.param(
            replace(GROWTH, usage_segment=None, quadrant=None),
            PARAMS,
            ("growth", "active"),
            id="unscored",
        ),
    ],
)
def test_rule_boundaries(inp, params, expected):
    assert decide_stage(inp, TODAY, params) == expected


@pytest.mark.parametrize(
    ("inp", "params", "expected"),
    [
        pytest.param(
            replace(GROWTH, orders_total=0, referrals=3, churn_risk=None),
            PARAMS,
            ("acquisition", "no_order"),
            id="acquisition-beats-referrals",
        ),
        pytest.param(
            replace(NEW, first_order=ago(200), last_order=ago(200), orders_total=1),
            replace(PARAMS, onboarding_days=365),
            ("winback", "lapsed"),
            id="winback-beats-onboarding",
        ),
        pytest.param(
            replace(GROWTH, last_order=ago(181), churn_risk=100, orders_12m=0),
            PARAMS,
            ("winback", "lapsed"),
            id="winback-beats-retention",
        ),
        pytest.param(
            replace(
                GROWTH,
                last_order=ago(181),
                referrals=5,
                usage_segment="heavy",
                quadrant="true_friend",
            ),
            PARAMS,
            ("winback", "lapsed"),
            id="winback-beats-ambassadorship",
        ),
        pytest.param(
            replace(NEW, churn_risk=90),
            PARAMS,
            ("onboarding", "new_customer"),
            id="onboarding-beats-churn",
        ),
        pytest.param(
            replace(NEW, referrals=2),
            PARAMS,
            ("onboarding", "new_customer"),
            id="onboarding-beats-referrals",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=80, referrals=3),
            PARAMS,
            ("retention", "churn_risk"),
            id="retention-beats-referrals",
        ),
        pytest.param(
            replace(
                GROWTH,
                orders_prev_12m=10,
                orders_12m=2,
                usage_segment="heavy",
                quadrant="true_friend",
            ),
            PARAMS,
            ("retention", "order_drop"),
            id="order-drop-beats-heavy-true-friend",
        ),
        pytest.param(
            replace(GROWTH, churn_risk=75, orders_prev_12m=10, orders_12m=1),
            PARAMS,
            ("retention", "churn_risk"),
            id="churn-reason-before-drop-reason",
        ),
        pytest.param(
            replace(GROWTH, referrals=1, usage_segment="heavy", quadrant="true_friend"),
            PARAMS,
            ("ambassadorship", "referrals"),
            id="referrals-reason-before-heavy",
        ),
    ],
)
def test_precedence(inp, params, expected):
    assert decide_stage(inp, TODAY, params) == expected


def test_default_params():
    assert decide_stage(NEW, TODAY) == ("onboarding", "new_customer")
    assert PARAMS == StageParams(
        lapse_days=180,
        onboarding_days=90,
        onboarding_max_orders=3,
        at_risk_churn=70,
        at_risk_rise=0,
        drop_pct=50.0,
        ambassador_referrals=1,
    )


@pytest.mark.parametrize(
    ("orders_12m", "orders_prev_12m", "drop_pct", "expected"),
    [
        (5, 10, 50.0, False),
        (4, 10, 50.0, True),
        (0, 0, 50.0, False),
        (3, 0, 50.0, False),
        (0, 1, 99.0, True),
        (0, 1, 100.0, False),
        (7, 10, 30.0, False),
        (6, 10, 30.0, True),
        (10, 10, 0.0, False),
        (9, 10, 0.0, True),
    ],
)
def test_order_drop_exceeds(orders_12m, orders_prev_12m, drop_pct, expected):
    assert order_drop_exceeds(orders_12m, orders_prev_12m, drop_pct) == expected


def test_stage_codes():
    assert STAGES == (
        "acquisition",
        "onboarding",
        "growth",
        "ambassadorship",
        "retention",
        "winback",
    )


def test_reason_labels_cover_every_reason():
    assert set(REASON_LABELS) == {
        "no_order",
        "lapsed",
        "new_customer",
        "churn_risk",
        "order_drop",
        "referrals",
        "heavy_true_friend",
        "active",
    }
    assert all(label.endswith(".") for label in REASON_LABELS.values())


def test_describe_rules_defaults():
    assert describe_rules(PARAMS) == {
        "acquisition": "No qualifying order yet.",
        "winback": "Last order more than 180 days ago.",
        "onboarding": (
            "First order at most 90 days ago and fewer than 3 orders in total."
        ),
        "retention": (
            "Churn risk of 70 or more, or orders in the last 12 months down by "
            "more than 50% on the 12 months before."
        ),
        "ambassadorship": (
            "At least 1 referral(s), or heavy user who is a true friend (loyal "
            "and profitable)."
        ),
        "growth": "Any other customer who ordered in the last 180 days.",
    }


def test_describe_rules_fill_in_thresholds():
    params = StageParams(
        lapse_days=365,
        onboarding_days=60,
        onboarding_max_orders=2,
        at_risk_churn=80,
        at_risk_rise=30,
        drop_pct=33.5,
        ambassador_referrals=0,
    )
    rules = describe_rules(params)
    assert set(rules) == set(STAGES)
    assert rules["winback"] == "Last order more than 365 days ago."
    assert rules["onboarding"] == (
        "First order at most 60 days ago and fewer than 2 orders in total."
    )
    assert rules["retention"] == (
        "Churn risk of 80 or more, risen 30 points or more since the last order, "
        "or orders in the last 12 months down by more than 33.5% on the 12 "
        "months before."
    )
    assert rules["ambassadorship"] == (
        "Heavy user who is a true friend (loyal and profitable)."
    )
