"""DB-free tests of loyalty_mlm.tools.score_metrics and the simulator."""

import math
import random

import pytest

from loyalty_mlm.tools.clv_model import (
    BgNbdParams,
    GammaGammaParams,
    bgnbd_expected_purchases,
)
from loyalty_mlm.tools.clv_simulation import simulate_customers, summarize
from loyalty_mlm.tools.score_metrics import (
    average_ranks,
    calibration_table,
    rate_per_band,
    rate_per_group,
    roc_auc,
    spearman,
    top_share_capture,
)


def brute_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_average_ranks():
    assert average_ranks([10, 20, 10, 30]) == [1.5, 3.0, 1.5, 4.0]
    assert average_ranks([]) == []


def test_auc_known_examples():
    # scikit-learn's roc_auc_score documentation example.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([1, 2, 3], [0, 1, 1]) == 1.0
    assert roc_auc([3, 2, 1], [0, 1, 1]) == 0.0
    # Ties count one half: the positive tied with the negative.
    assert roc_auc([1, 1, 2], [0, 1, 1]) == 0.75
    assert roc_auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5
    # One class only: nothing to rank.
    assert roc_auc([1, 2], [1, 1]) is None
    assert roc_auc([], []) is None
    with pytest.raises(ValueError):
        roc_auc([1], [])


def test_auc_matches_pairwise_counting_with_many_ties():
    rng = random.Random(4)
    for _ in range(20):
        n = rng.randint(2, 60)
        scores = [rng.randint(0, 5) for _ in range(n)]
        labels = [rng.random() < 0.4 for _ in range(n)]
        if any(labels) and not all(labels):
            assert roc_auc(scores, labels) == pytest.approx(brute_auc(scores, labels))


def test_top_share_capture():
    scores = [5, 4, 3, 2, 1]
    spend = [50, 0, 30, 10, 10]
    assert top_share_capture(scores, spend, 0.2) == 0.5
    assert top_share_capture(scores, spend, 0.4) == 0.5
    assert top_share_capture(scores, spend, 0.6) == 0.8
    assert top_share_capture(scores, spend, 1.0) == 1.0
    assert top_share_capture(scores, spend, 0.0) == 0.0
    # Ties at the cut count in proportion, whatever the input order.
    tied = [9, 5, 5, 5, 1]
    value = top_share_capture(tied, [10, 30, 0, 0, 60], 0.4)
    assert value == pytest.approx((10 + 30 / 3) / 100)
    assert top_share_capture([5, 5, 9, 1, 5], [0, 30, 10, 60, 0], 0.4) == value
    assert top_share_capture([1, 2], [0, 0]) is None
    assert top_share_capture([], []) is None


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Without ties: 1 - 6 sum d^2 / (n (n^2 - 1)).
    xs, ys = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    assert spearman(xs, ys) == pytest.approx(1 - 6 * 4 / (5 * 24))
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1], [2]) is None


def test_calibration_table():
    predicted = [i / 100 for i in range(100)]
    outcomes = [i % 2 == 0 for i in range(100)]
    rows = calibration_table(predicted, outcomes, 10)
    assert [row.count for row in rows] == [10] * 10
    assert rows[0].predicted == pytest.approx(0.045)
    assert rows[0].observed == 0.5
    assert (rows[-1].low, rows[-1].high) == (0.9, 0.99)
    # Tie blocks are never split between bands.
    tied = [0.1] * 15 + [0.5] * 5
    rows = calibration_table(tied, [True] * 20, 10)
    assert [row.count for row in rows] == [15, 5]
    assert calibration_table([], [], 10) == []


def test_rate_per_band_and_group():
    risk = [5, 15, 25, 45, 75, 95, 100]
    bought = [True, True, True, False, True, False, False]
    rows = rate_per_band(risk, bought, [20, 40, 70, 90])
    assert [(r.label, r.count, r.observed) for r in rows] == [
        ("<20", 2, 1.0),
        ("20-40", 1, 1.0),
        ("40-70", 1, 0.0),
        ("70-90", 1, 1.0),
        (">=90", 2, 0.0),
    ]
    with_prediction = rate_per_band(risk, bought, [50], predicted=[0.1] * 7)
    assert with_prediction[0].predicted == pytest.approx(0.1)
    assert rate_per_group(["a", "b", "a"], [True, False, False]) == {
        "a": (2, 0.5),
        "b": (1, 0.0),
    }


def test_simulator_is_seeded_and_follows_the_model():
    """Same seed, same histories; and new customers' mean number of repeat
    purchases in a year is the model's E[X(t)] (FHL05 eq. 9) within three
    standard errors."""
    bgnbd = BgNbdParams(0.8, 20.0, 1.5, 3.0)
    spend = GammaGammaParams(6.0, 4.0, 15.0)
    first = simulate_customers(bgnbd, spend, 50, 10.0, 100.0, seed=3)
    assert first == simulate_customers(bgnbd, spend, 50, 10.0, 100.0, seed=3)
    assert first != simulate_customers(bgnbd, spend, 50, 10.0, 100.0, seed=4)
    customers = simulate_customers(bgnbd, spend, 20000, 1e-9, 365.0, seed=5)
    counts = [len(c.times) - 1 for c in customers]
    mean = sum(counts) / len(counts)
    sd = math.sqrt(sum((c - mean) ** 2 for c in counts) / (len(counts) - 1))
    expected = bgnbd_expected_purchases(bgnbd, 0, 0.0, 0.0, 365.0)
    assert mean == pytest.approx(expected, abs=3 * sd / math.sqrt(len(counts)))
    # Spend: mean order value p / nu averages p v / (q - 1) = 30.
    amounts = [m for c in customers for m in c.amounts]
    assert sum(amounts) / len(amounts) == pytest.approx(30.0, rel=0.05)


def test_summarize_cuts_and_counts_days():
    bgnbd = BgNbdParams(0.8, 20.0, 1.5, 3.0)
    spend = GammaGammaParams(6.0, 4.0, 15.0)
    customers = simulate_customers(bgnbd, spend, 300, 100.0, 300.0, seed=8)
    exact = summarize(customers, 200.0)
    days = summarize(customers, 200.0, whole_days=True)
    assert exact["customer"] == days["customer"]
    for key in ("frequency", "recency", "age"):
        assert len(exact[key]) == len(exact["customer"])
    for x_exact, x_days, t_x, age in zip(
        exact["frequency"], days["frequency"], days["recency"], days["age"], strict=True
    ):
        assert x_days <= x_exact  # same-day purchases merged
        assert 0 <= t_x <= age
        assert (x_days == 0) == (t_x == 0) or x_days > 0
    for c, alive, future in zip(
        exact["customer"], exact["alive"], exact["future_orders"], strict=True
    ):
        if not alive:
            assert future == 0
        assert customers[c].times[0] < 200.0
