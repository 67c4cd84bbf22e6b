"""DB-free tests of loyalty_mlm.tools.uplift (control groups and uplift)."""

import hashlib
import math

import pytest

from loyalty_mlm.tools.uplift import (
    Uplift,
    bootstrap_mean_uplift,
    control_bucket,
    in_control,
    mean_uplift,
    rate_uplift,
    roi,
    t_cdf,
    t_quantile,
    two_proportion_z,
    verdict,
    welch_df,
    wilson_interval,
)

# ---------------------------------------------------------------------------
# Rates: Newcombe (1998), "Interval estimation for the difference between
# independent proportions", Table II, method 10 (hybrid score), 4 decimals.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "n1", "x0", "n0", "diff", "low", "high"),
    [
        pytest.param(56, 70, 48, 80, 0.2, 0.0524, 0.3339, id="newcombe-a"),
        pytest.param(9, 10, 3, 10, 0.6, 0.1705, 0.8090, id="newcombe-b"),
        pytest.param(6, 7, 2, 7, 0.5714, 0.0582, 0.8062, id="newcombe-c-tiny"),
        pytest.param(5, 56, 0, 29, 0.0893, -0.0381, 0.1926, id="newcombe-d-zero"),
        pytest.param(0, 10, 0, 20, 0.0, -0.1611, 0.2775, id="newcombe-g-both-0"),
        pytest.param(10, 10, 0, 20, 1.0, 0.6791, 1.0, id="newcombe-h-extremes"),
    ],
)
def test_rate_uplift_newcombe_table(x1, n1, x0, n0, diff, low, high):
    result = rate_uplift(x1, n1, x0, n0)
    assert round(result.diff, 4) == diff
    assert round(result.low, 4) == low
    assert round(result.high, 4) == high


def test_rate_uplift_relative_and_none_without_control_rate():
    assert rate_uplift(9, 10, 3, 10).relative == pytest.approx(2.0)
    assert rate_uplift(5, 56, 0, 29).relative is None


@pytest.mark.parametrize(
    ("n1", "n0"), [pytest.param(0, 20, id="all-control"), (20, 0), (0, 0)]
)
def test_rate_uplift_empty_group_has_no_interval(n1, n0):
    result = rate_uplift(0, n1, 0, n0)
    assert (result.low, result.high) == (None, None)
    assert verdict(result) == "no_effect"


@pytest.mark.parametrize(("x", "n"), [(-1, 5), (6, 5), (1, -1)])
def test_rate_uplift_refuses_impossible_counts(x, n):
    with pytest.raises(ValueError):
        rate_uplift(x, n, 0, 5)


def test_wilson_interval_known_value():
    # Wilson (1927) as tabulated by Newcombe (1998, part I): 81/263.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_two_proportion_z():
    # p = 104/150; se = sqrt(p(1-p)(1/70+1/80)) ; z = 0.2 / se
    assert two_proportion_z(56, 70, 48, 80) == pytest.approx(2.6502, abs=1e-4)
    assert two_proportion_z(0, 10, 0, 20) == 0.0
    assert two_proportion_z(3, 0, 0, 20) == 0.0


# ---------------------------------------------------------------------------
# Student t quantile (two-sided 95% column of the usual tables)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "quantile"),
    [
        (1, 12.7062),
        (2, 4.3027),
        (5, 2.5706),
        (10, 2.2281),
        (30, 2.0423),
        (120, 1.9799),
        (1e7, 1.9600),
    ],
)
def test_t_quantile_table(df, quantile):
    assert round(t_quantile(0.975, df), 4) == quantile


def test_t_quantile_symmetry_and_cdf_inverse():
    assert t_quantile(0.5, 7) == 0.0
    assert t_quantile(0.025, 7) == pytest.approx(-t_quantile(0.975, 7))
    assert t_cdf(t_quantile(0.9, 3.5), 3.5) == pytest.approx(0.9, abs=1e-10)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        t_cdf(1.0, 0)


# ---------------------------------------------------------------------------
# Means: Welch's interval
# ---------------------------------------------------------------------------


def test_mean_uplift_welch_by_hand():
    # means 3 and 6, variances 2.5 and 10: se = sqrt(0.5 + 2) = 1.5811,
    # df = 2.5^2 / (0.5^2/4 + 2^2/4) = 5.8824, t(0.975, 5.8824) = 2.4588.
    result = mean_uplift([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert welch_df(2.5, 5, 10, 5) == pytest.approx(5.882353, abs=1e-6)
    assert result.diff == -3.0
    assert result.relative == -0.5
    half = t_quantile(0.975, 100 / 17) * math.sqrt(2.5)
    assert result.low == pytest.approx(-3 - half)
    assert result.high == pytest.approx(-3 + half)
    assert round(result.high, 4) == 0.8877


def test_mean_uplift_equal_variances_matches_pooled_t():
    # Equal sizes and variances: Welch = Student, df = 2n - 2 = 8.
    result = mean_uplift([2, 4, 6, 8, 10], [1, 3, 5, 7, 9])
    se = math.sqrt(10 / 5 + 10 / 5)
    assert result.high - result.diff == pytest.approx(2.3060 * se, abs=1e-3)


def test_mean_uplift_zero_variance():
    result = mean_uplift([3, 3, 3], [1, 1, 1, 1])
    assert (result.diff, result.low, result.high) == (2.0, 2.0, 2.0)
    same = mean_uplift([0, 0], [0, 0])
    assert (same.low, same.high, same.relative) == (0.0, 0.0, None)


@pytest.mark.parametrize(
    ("treated", "control"),
    [pytest.param([], [1, 2, 3], id="all-control"), ([4], [1, 2]), ([1, 2], [5])],
)
def test_mean_uplift_tiny_groups_have_no_interval(treated, control):
    result = mean_uplift(treated, control)
    assert (result.low, result.high) == (None, None)


def test_bootstrap_is_reproducible_and_brackets_the_difference():
    treated = [0, 10, 20, 30, 40, 50, 60, 70]
    control = [0, 0, 5, 10, 10, 15, 20, 20]
    first = bootstrap_mean_uplift(treated, control, iterations=500)
    again = bootstrap_mean_uplift(treated, control, iterations=500)
    assert first == again
    assert first.low < first.diff < first.high
    assert first.diff == pytest.approx(35 - 10)


# ---------------------------------------------------------------------------
# Verdict, ROI
# ---------------------------------------------------------------------------


def _uplift(low, high, n1=50, n0=50):
    return Uplift(n1, n0, 0.0, 0.0, 0.0, None, low, high)


@pytest.mark.parametrize(
    ("uplift", "expected"),
    [
        pytest.param(_uplift(0.01, 0.2), "working", id="interval-above-0"),
        pytest.param(_uplift(-0.3, -0.01), "harmful", id="interval-below-0"),
        pytest.param(_uplift(-0.1, 0.2), "no_effect", id="interval-spans-0"),
        pytest.param(_uplift(0.1, 0.2, n0=4), "no_effect", id="control-too-small"),
        pytest.param(_uplift(None, None), "no_effect", id="no-interval"),
    ],
)
def test_verdict(uplift, expected):
    assert verdict(uplift) == expected


def test_roi():
    assert roi(300.0, 100.0) == 2.0
    assert roi(50.0, 100.0) == -0.5
    assert roi(50.0, 0.0) is None


# ---------------------------------------------------------------------------
# Deterministic assignment
# ---------------------------------------------------------------------------


def test_control_bucket_is_stable():
    # Pinned: a change of the hash would silently move customers between
    # groups in the middle of a measurement.
    assert control_bucket("loyalty.mlm.treatment", 1, 1) == control_bucket(
        "loyalty.mlm.treatment", 1, 1
    )
    assert 0 <= control_bucket("loyalty.mlm.treatment", 1, 1) < 100
    key = b"loyalty.mlm.treatment:7:42"
    expected = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 10000 / 100
    assert control_bucket("loyalty.mlm.treatment", 7, 42) == expected


@pytest.mark.parametrize("share", [0, 10, 25, 50])
def test_control_share_on_10000_customers(share):
    held = sum(
        in_control("loyalty.mlm.campaign", 3, pid, share) for pid in range(1, 10001)
    )
    # Binomial(10000, share): within 4 standard deviations (and exact at 0).
    sd = math.sqrt(10000 * share / 100 * (1 - share / 100))
    assert abs(held - 100 * share) <= 4 * sd


def test_control_depends_on_the_action():
    a = {pid for pid in range(1, 2001) if in_control("loyalty.program", 1, pid, 50)}
    b = {pid for pid in range(1, 2001) if in_control("loyalty.program", 2, pid, 50)}
    assert a != b
