"""DB-free tests of loyalty_mlm.tools.clv_model (BG/NBD, Gamma-Gamma, scores).

Simulated populations come from loyalty_mlm.tools.clv_simulation with known
parameters, in days: BG/NBD r = 0.25, alpha = 30 (about 3 purchases a year
while alive), a = 0.8, b = 2.5; Gamma-Gamma p = 6, q = 4, v = 15 (mean order
value 30).
"""

import math
import random
from datetime import date, timedelta
from functools import cache

import pytest

from loyalty_mlm.tools.clv_model import (
    MONTH_DAYS,
    BgNbdParams,
    GammaGammaParams,
    ModelSettings,
    _alive_discounted,
    _alive_expected,
    _BgNbdData,
    alive_discounted_table,
    apply_log_odds_offset,
    bfgs,
    bgnbd_discounted_purchases,
    bgnbd_expected_purchases,
    bgnbd_loglik,
    bgnbd_p_alive,
    bgnbd_prob_no_purchase,
    churn_percent,
    churn_rise,
    clv_moved,
    clv_value,
    digamma,
    fit_bgnbd,
    fit_gamma_gamma,
    fit_log_odds_offset,
    frequency_cuts,
    frequency_score,
    gamma_gamma_expected_value,
    gamma_gamma_loglik,
    hyp2f1,
    log_odds_offset,
    model_columns,
    score_model,
    shrunk_margin_rate,
)
from loyalty_mlm.tools.clv_simulation import simulate_customers, summarize
from loyalty_mlm.tools.score_metrics import calibration_table, roc_auc

TRUE_BGNBD = BgNbdParams(0.25, 30.0, 0.8, 2.5)
TRUE_GG = GammaGammaParams(6.0, 4.0, 15.0)
# Fader, Hardie & Lee (2005)'s CDNOW estimates (time unit: weeks).
CDNOW = BgNbdParams(0.243, 4.414, 0.793, 2.426)
SETTINGS = ModelSettings()


@cache
def simulated(customers=10000, seed=0):
    """Calibration summary at day 545 of customers acquired over one year,
    followed up for 180 days after the cut."""
    population = simulate_customers(
        TRUE_BGNBD, TRUE_GG, customers, 365.0, 545.0 + 180.0, seed
    )
    return summarize(population, 545.0)


# ---------------------------------------------------------------------------
# Special functions and optimizer
# ---------------------------------------------------------------------------


def test_hyp2f1_known_closed_forms():
    for z in (0.0, 0.1, 0.5, 0.9):
        log_form = -math.log1p(-z) / z if z else 1.0
        assert hyp2f1(1, 1, 2, z) == pytest.approx(log_form, rel=1e-13)
        assert hyp2f1(0.7, 2.3, 2.3, z) == pytest.approx((1 - z) ** -0.7, rel=1e-13)


def test_hyp2f1_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError):
        hyp2f1(1, 1, 2, 1.0)
    with pytest.raises(ValueError):
        hyp2f1(1, 1, -2, 0.5)
    # Convergence guard: slowly decaying terms at z near 1.
    with pytest.raises(ArithmeticError):
        hyp2f1(1, 1, 1.5, 0.999999, max_terms=1000)


def test_digamma():
    assert digamma(1.0) == pytest.approx(-0.5772156649015329, abs=1e-13)
    assert digamma(0.5) == pytest.approx(-1.9635100260214235, abs=1e-13)
    for x in (0.01, 0.3, 2.5, 40.0):
        assert digamma(x + 1) - digamma(x) == pytest.approx(1 / x, rel=1e-12)


def test_bfgs_minimises_a_quadratic_and_rosenbrock():
    def quadratic(p):
        return (p[0] - 1) ** 2 + 10 * (p[1] + 2) ** 2, [2 * (p[0] - 1), 20 * (p[1] + 2)]

    point, value, _evals, _h = bfgs(quadratic, [5.0, 5.0])
    assert point == pytest.approx([1.0, -2.0], abs=1e-6)
    assert value == pytest.approx(0.0, abs=1e-10)

    def rosenbrock(p):
        x, y = p
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2, [
            -2 * (1 - x) - 400 * x * (y - x * x),
            200 * (y - x * x),
        ]

    point, _value, _evals, _h = bfgs(rosenbrock, [-1.2, 1.0], max_iter=500)
    assert point == pytest.approx([1.0, 1.0], abs=1e-4)


# ---------------------------------------------------------------------------
# BG/NBD formulas
# ---------------------------------------------------------------------------


def test_expected_purchases_matches_the_paper():
    """FHL05, section 5: with the CDNOW estimates, a customer with x = 2,
    t_x = 30.43, T = 38.86 weeks is expected to buy 1.226 times in the next
    39 weeks."""
    value = bgnbd_expected_purchases(CDNOW, 2, 30.43, 38.86, 39.0)
    assert round(value, 3) == 1.226


def test_alive_expectation_matches_the_closed_form_and_a_equal_one():
    """The Euler-transformed series gives the closed form of FHL05 eq. 10
    (computed with hyp2f1) for a > 1, and is continuous through a = 1,
    where the closed form's 1/(a - 1) is only an apparent singularity."""
    r, alpha, a, b = 0.5, 10.0, 2.5, 3.0
    params = BgNbdParams(r, alpha, a, b)
    for x, age, t in ((0, 0.0, 30.0), (3, 20.0, 50.0), (12, 100.0, 365.0)):
        z = t / (alpha + age + t)
        closed = (
            (a + b + x - 1)
            / (a - 1)
            * (
                1
                - ((alpha + age) / (alpha + age + t)) ** (r + x)
                * hyp2f1(r + x, b + x, a + b + x - 1, z)
            )
        )
        assert _alive_expected(params, x, age, t) == pytest.approx(closed, rel=1e-11)
    at_one = _alive_expected(BgNbdParams(r, alpha, 1.0, b), 3, 20.0, 50.0)
    for a_near in (1.0 - 1e-7, 1.0 + 1e-7):
        near = _alive_expected(BgNbdParams(r, alpha, a_near, b), 3, 20.0, 50.0)
        assert near == pytest.approx(at_one, rel=1e-6)


def test_new_customer_expectation_is_the_unconditional_one():
    """x = 0, T = 0: the posterior is the prior, so the conditional
    expectation equals FHL05 eq. 9, E[X(t)]."""
    r, alpha, a, b = CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b
    t = 52.0
    unconditional = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    )
    assert bgnbd_expected_purchases(CDNOW, 0, 0.0, 0.0, t) == pytest.approx(
        unconditional, rel=1e-10
    )


def test_p_alive():
    # No repeat purchase: alive for sure (no dropout without a purchase).
    assert bgnbd_p_alive(TRUE_BGNBD, 0, 0, 400) == 1.0
    # Bought last today: the closed form with T = t_x.
    a, b, x = TRUE_BGNBD.a, TRUE_BGNBD.b, 4
    assert bgnbd_p_alive(TRUE_BGNBD, x, 200, 200) == pytest.approx(
        1 / (1 + a / (b + x - 1))
    )
    # Decreases as the last purchase gets older.
    values = [bgnbd_p_alive(TRUE_BGNBD, 5, t_x, 400) for t_x in (400, 300, 100, 10)]
    assert values == sorted(values, reverse=True)
    assert values[-1] < 0.01
    with pytest.raises(ValueError):
        bgnbd_p_alive(TRUE_BGNBD, 2, 50, 40)  # t_x > T
    with pytest.raises(ValueError):
        bgnbd_p_alive(TRUE_BGNBD, 0, 5, 40)  # t_x > 0 without repeat


def test_prob_no_purchase_formula_and_monotonicity():
    params = TRUE_BGNBD
    r, alpha = params.r, params.alpha
    # One-time buyer: ((alpha+T)/(alpha+T+h))^r, growing with T.
    one_time = [bgnbd_prob_no_purchase(params, 0, 0, t, 180) for t in (0, 30, 200)]
    assert one_time[0] == pytest.approx((alpha / (alpha + 180)) ** r)
    assert one_time == sorted(one_time)
    # Repeat buyer: 1 - P(alive) (1 - stay).
    p_alive = bgnbd_p_alive(params, 3, 100, 300)
    stay = ((alpha + 300) / (alpha + 480)) ** (r + 3)
    assert bgnbd_prob_no_purchase(params, 3, 100, 300, 180) == pytest.approx(
        1 - p_alive * (1 - stay)
    )
    # Grows with the horizon and with the age of the last purchase.
    by_h = [bgnbd_prob_no_purchase(params, 3, 100, 300, h) for h in (0, 30, 180, 720)]
    assert by_h[0] == 1.0  # nothing can happen in an empty window
    assert by_h[1:] == sorted(by_h[1:], reverse=True)
    by_tx = [bgnbd_prob_no_purchase(params, 6, t_x, 300, 180) for t_x in (300, 200, 50)]
    assert by_tx == sorted(by_tx)
    # Frequent recent buyers do not saturate: low risk, ranked by frequency.
    frequent = [bgnbd_prob_no_purchase(params, x, 299, 300, 180) for x in (5, 20, 60)]
    assert frequent == sorted(frequent, reverse=True)
    assert frequent[-1] < 0.3


def test_prob_no_purchase_is_what_a_simulation_of_the_posterior_gives():
    """Monte Carlo of the BG/NBD story for one history (x, t_x, T): draw
    (lambda, p) from the prior, keep draws weighted by the likelihood of the
    history, check "no purchase in h" by simulation."""
    rng = random.Random(7)
    params = BgNbdParams(1.5, 40.0, 1.2, 2.0)
    x, t_x, age, h = 3, 60.0, 150.0, 90.0
    num = den = 0.0
    for _ in range(60000):
        lam = rng.gammavariate(params.r, 1 / params.alpha)
        p = rng.betavariate(params.a, params.b)
        base = lam**x * math.exp(-lam * age) * (1 - p) ** x
        dead = lam**x * math.exp(-lam * t_x) * p * (1 - p) ** (x - 1)
        weight = base + dead
        # Alive at T with probability base / weight; then no purchase in h
        # with probability e^(-lambda h).
        none = dead / weight + base / weight * math.exp(-lam * h)
        num += weight * none
        den += weight
    expected = bgnbd_prob_no_purchase(params, x, t_x, age, h)
    assert num / den == pytest.approx(expected, abs=0.01)


def test_discounted_purchases():
    params = TRUE_BGNBD
    plain = bgnbd_discounted_purchases(params, 3, 200, 300, 12, 0.0)
    assert plain == pytest.approx(
        bgnbd_expected_purchases(params, 3, 200, 300, 12 * MONTH_DAYS), rel=1e-12
    )
    discounted = bgnbd_discounted_purchases(params, 3, 200, 300, 12, 0.01)
    assert plain / 1.01**12 < discounted < plain / 1.01


def test_loglik_and_gradient():
    """The grouped likelihood of the fit is the sum of bgnbd_loglik, and its
    analytic gradient matches finite differences."""
    data = simulated(2000, seed=3)
    freq, rec, age = data["frequency"], data["recency"], data["age"]
    grouped = _BgNbdData(freq, rec, age, 10**9)
    point = (0.3, 25.0, 0.9, 2.0)
    params = BgNbdParams(*point)
    total = math.fsum(
        bgnbd_loglik(params, x, t_x, t)
        for x, t_x, t in zip(freq, rec, age, strict=True)
    )
    value, grad = grouped.loglik_grad(*point)
    assert value == pytest.approx(total, rel=1e-11)
    for i in range(4):
        eps = point[i] * 1e-6
        up = list(point)
        up[i] += eps
        down = list(point)
        down[i] -= eps
        numeric = (grouped.loglik_grad(*up)[0] - grouped.loglik_grad(*down)[0]) / (
            2 * eps
        )
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-4)


# ---------------------------------------------------------------------------
# BG/NBD fit
# ---------------------------------------------------------------------------


def test_fit_recovers_the_parameters():
    """10,000 simulated customers. Over 8 seeds the full-data estimates
    were unbiased with standard deviations r 1.7%, alpha 4%, a 6.6%, b 10%
    of the true values; the tolerances are about 3 of those."""
    data = simulated()
    fit = fit_bgnbd(data["frequency"], data["recency"], data["age"], 10**9)
    assert fit.fitted
    assert fit.customers == 10000
    assert fit.params.r == pytest.approx(TRUE_BGNBD.r, rel=0.06)
    assert fit.params.alpha == pytest.approx(TRUE_BGNBD.alpha, rel=0.13)
    assert fit.params.a == pytest.approx(TRUE_BGNBD.a, rel=0.2)
    assert fit.params.b == pytest.approx(TRUE_BGNBD.b, rel=0.3)
    # The optimum: the true parameters are no more likely.
    grouped = _BgNbdData(data["frequency"], data["recency"], data["age"], 10**9)
    best = grouped.loglik_grad(*_tuple(fit.params))
    assert best[0] >= grouped.loglik_grad(*_tuple(TRUE_BGNBD))[0]
    assert max(abs(g) for g in best[1]) < 1e-2 * fit.customers


def _tuple(params):
    return params.r, params.alpha, params.a, params.b


def test_sampled_fit_is_close_and_order_independent():
    """Above sample_size repeat buyers the per-customer terms run on a
    systematic sample: with 3,000 of the ~4,700 repeat buyers the estimate
    moves by less than one standard deviation of the full-data estimate
    (see test_fit_recovers_the_parameters), and shuffling the customers
    changes nothing."""
    data = simulated()
    full = fit_bgnbd(data["frequency"], data["recency"], data["age"], 10**9).params
    sampled = fit_bgnbd(data["frequency"], data["recency"], data["age"], 3000)
    assert sampled.params.r == pytest.approx(full.r, rel=0.017)
    assert sampled.params.alpha == pytest.approx(full.alpha, rel=0.04)
    assert sampled.params.a == pytest.approx(full.a, rel=0.066)
    assert sampled.params.b == pytest.approx(full.b, rel=0.1)
    rows = list(zip(data["frequency"], data["recency"], data["age"], strict=True))
    random.Random(5).shuffle(rows)
    shuffled = fit_bgnbd(*zip(*rows, strict=True), 3000)
    assert shuffled.params == sampled.params


def test_fit_in_whole_days_with_same_day_orders():
    """The nightly job's input: whole days, same-day orders merged."""
    population = simulate_customers(TRUE_BGNBD, TRUE_GG, 5000, 365.0, 725.0, 11)
    data = summarize(population, 545.0, whole_days=True)
    assert all(type(v) is int for v in data["age"])
    fit = fit_bgnbd(data["frequency"], data["recency"], data["age"])
    assert fit.params.r == pytest.approx(TRUE_BGNBD.r, rel=0.1)
    assert fit.params.alpha == pytest.approx(TRUE_BGNBD.alpha, rel=0.2)


def test_fit_edge_cases():
    empty = fit_bgnbd([], [], [])
    assert (empty.fitted, empty.customers) == (False, 0)
    assert empty.params == BgNbdParams(1.0, 1.0, 1.0, 1.0)
    # All one-time buyers: no dropout information; the NBD part still ranks
    # older one-time buyers as more likely gone.
    one_time = fit_bgnbd([0, 0, 0], [0, 0, 0], [10, 100, 400])
    assert not one_time.fitted
    assert one_time.params == BgNbdParams(1.0, 170.0, 1.0, 1.0)
    risks = [bgnbd_prob_no_purchase(one_time.params, 0, 0, t, 180) for t in (10, 400)]
    assert risks[0] < risks[1]
    # A single repeat buyer: the weak prior keeps ordinary parameters (the
    # likelihood alone runs to the bounds).
    single = fit_bgnbd([1], [10], [20]).params
    assert all(0.05 < value < 100 for value in _tuple(single))
    # A single repeat buyer, or customers who all bought twice the same day
    # pattern: a finite, usable fit.
    for columns in (([1], [10], [20]), ([1, 1, 1], [0, 0, 0], [5, 5, 5])):
        fit = fit_bgnbd(*columns)
        assert fit.fitted
        for value in _tuple(fit.params):
            assert math.isfinite(value)
            assert value > 0
        p = bgnbd_prob_no_purchase(fit.params, 1, 0, 5, 180)
        assert 0.0 <= p <= 1.0
    with pytest.raises(ValueError):
        fit_bgnbd([1], [5], [3])


# ---------------------------------------------------------------------------
# Gamma-Gamma
# ---------------------------------------------------------------------------


def test_gamma_gamma_fit_recovers_the_parameters():
    """Over 8 seeds of 10,000 customers: sd p 5%, q 3%, v 7.5%, population
    mean 1%; tolerances about 3 of those."""
    data = simulated()
    fit = fit_gamma_gamma(data["orders"], data["mean"], 10**9)
    assert fit.fitted
    assert fit.params.p == pytest.approx(TRUE_GG.p, rel=0.16)
    assert fit.params.q == pytest.approx(TRUE_GG.q, rel=0.1)
    assert fit.params.v == pytest.approx(TRUE_GG.v, rel=0.23)
    assert fit.params.mean == pytest.approx(TRUE_GG.mean, rel=0.03)
    total = math.fsum(
        gamma_gamma_loglik(fit.params, n, m)
        for n, m in zip(data["orders"], data["mean"], strict=True)
    )
    assert fit.loglik * fit.customers == pytest.approx(total, rel=1e-10)
    sampled = fit_gamma_gamma(data["orders"], data["mean"], 3000)
    assert sampled.params.mean == pytest.approx(fit.params.mean, rel=0.01)


def test_gamma_gamma_edge_cases():
    # Zero amounts and refunds are left out of the fit.
    fit = fit_gamma_gamma([1, 2, 3, 1], [0.0, -5.0, 0.0, 0.0])
    assert not fit.fitted
    assert fit.params == GammaGammaParams(1.0, 2.0, 1.0)
    assert fit_gamma_gamma([], []).customers == 0
    # One spender, or everybody spending the same: finite parameters whose
    # mean is the observed one.
    for orders, means in (([3], [20.0]), ([1, 2, 5], [20.0, 20.0, 20.0])):
        fit = fit_gamma_gamma(orders, means)
        assert fit.fitted
        assert math.isfinite(fit.params.mean)
        assert fit.params.mean == pytest.approx(20.0, rel=0.05)


def test_gamma_gamma_expected_value_shrinks():
    params = TRUE_GG  # population mean 30
    assert params.mean == 30.0
    # Between the customer's mean and the population's, closer to his own
    # the more orders he has.
    values = [gamma_gamma_expected_value(params, n, 100.0) for n in (1, 3, 10, 100)]
    assert all(30.0 < v < 100.0 for v in values)
    assert values == sorted(values)
    p, q, v = params.p, params.q, params.v
    assert values[1] == pytest.approx(p * (v + 3 * 100.0) / (p * 3 + q - 1))
    # No information: the population mean.
    assert gamma_gamma_expected_value(params, 0, 50.0) == 30.0
    assert gamma_gamma_expected_value(params, 2, 0.0) == 30.0
    assert gamma_gamma_expected_value(params, 2, -10.0) == 30.0
    with pytest.raises(ValueError):
        GammaGammaParams(1.0, 1.0, 1.0)  # q = 1: no population mean


def test_shrunk_margin_rate():
    assert shrunk_margin_rate(0.0, 0.0, 0.3, 30.0) == pytest.approx(0.3)
    # Zero own margin: still positive.
    assert shrunk_margin_rate(0.0, 90.0, 0.3, 30.0) == pytest.approx(9 / 120)
    # Own rate 50% over 270 of sales: mostly his own.
    assert shrunk_margin_rate(135.0, 270.0, 0.3, 30.0) == pytest.approx(144 / 300)
    # Negative figures are clamped (refunds, losses).
    assert shrunk_margin_rate(-50.0, -20.0, 0.3, 30.0) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        shrunk_margin_rate(1.0, 1.0, 1.5, 30.0)


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------


def test_churn_percent_and_offset_hook():
    assert [churn_percent(p) for p in (0.0, 0.004, 0.005, 0.5, 0.994, 1.0)] == [
        0,
        0,
        1,
        50,
        99,
        100,
    ]
    with pytest.raises(ValueError):
        churn_percent(1.5)
    assert apply_log_odds_offset(0.3, 0.0) == 0.3
    assert apply_log_odds_offset(0.5, math.log(3)) == pytest.approx(0.75)
    assert apply_log_odds_offset(1.0, -2.0) == 1.0


def test_clv_value_is_never_zero_when_a_purchase_is_expected():
    assert clv_value(0.5, 40.0, 0.25) == 5.0
    assert clv_value(1e-6, 1.0, 0.1) == 0.01
    assert clv_value(0.0, 40.0, 0.25) == 0.0


def test_clv_is_rewritten_only_when_it_moved_beyond_the_tolerance():
    # 1% of the stored value, and at least a cent.
    assert not clv_moved(259.07, 259.07)
    assert not clv_moved(259.07, 257.00)
    assert clv_moved(259.07, 256.40)
    assert clv_moved(259.07, 261.70)
    assert not clv_moved(0.5, 0.504)
    assert clv_moved(0.5, 0.51)
    assert clv_moved(0.01, 0.02)
    # Empty or zero on either side: any change.
    assert clv_moved(None, 10.0)
    assert clv_moved(10.0, None)
    assert clv_moved(0.0, 0.01)
    assert clv_moved(0.01, 0.0)
    assert not clv_moved(None, None)
    assert not clv_moved(0.0, 0.0)
    assert not clv_moved(100.0, 102.0, tolerance=0.05)


def test_score_model_matches_the_single_customer_functions():
    data = simulated(3000, seed=2)
    revenue = [n * m for n, m in zip(data["orders"], data["mean"], strict=True)]
    margin = [0.4 * r for r in revenue]
    settings = ModelSettings(churn_horizon_days=120, monthly_discount_rate=0.02)
    scores = score_model(
        TRUE_BGNBD,
        TRUE_GG,
        data["frequency"],
        data["recency"],
        data["age"],
        data["orders"],
        data["mean"],
        margin,
        revenue,
        settings,
    )
    for i in range(0, 3000, 37):
        x, t_x, t = data["frequency"][i], data["recency"][i], data["age"][i]
        prob = bgnbd_prob_no_purchase(TRUE_BGNBD, x, t_x, t, 120)
        assert scores.p_alive[i] == pytest.approx(bgnbd_p_alive(TRUE_BGNBD, x, t_x, t))
        assert scores.churn_probability[i] == pytest.approx(prob, rel=1e-12)
        assert scores.churn_risk[i] == churn_percent(prob)
        expected = bgnbd_discounted_purchases(TRUE_BGNBD, x, t_x, t, 12, 0.02)
        assert scores.expected_purchases[i] == pytest.approx(expected, rel=1e-6)
        value = gamma_gamma_expected_value(TRUE_GG, data["orders"][i], data["mean"][i])
        assert scores.expected_value[i] == pytest.approx(value, rel=1e-12)
        rate = shrunk_margin_rate(margin[i], revenue[i], 0.3, TRUE_GG.mean)
        assert scores.clv[i] == pytest.approx(
            clv_value(expected, value, rate), abs=0.011
        )
        assert scores.clv[i] > 0


def test_alive_table_interpolation_is_exact_enough():
    pairs = [(x, t) for x in (0, 1, 4, 30) for t in range(0, 900, 7)]
    table = alive_discounted_table(TRUE_BGNBD, pairs, SETTINGS)
    for x, t in pairs[::3]:
        exact = _alive_discounted(TRUE_BGNBD, x, t, 12, 0.01)
        assert table[x, t] == pytest.approx(exact, rel=1e-6)
    # Few distinct ages: computed exactly.
    few = alive_discounted_table(TRUE_BGNBD, [(2, 10), (2, 400)], SETTINGS)
    assert few[2, 400] == _alive_discounted(TRUE_BGNBD, 2, 400, 12, 0.01)


def test_churn_probability_is_calibrated_on_simulated_data():
    """Predicted P(no purchase in the 180 days after the cut) against what
    the simulated customers did: overall within 1.5 points, per decile
    within 4 (binomial noise of 1,000 customers is about 1.5 points), with
    the true parameters and with the fitted ones."""
    data = simulated()
    observed = [n == 0 for n in data["future_orders"]]
    fit = fit_bgnbd(data["frequency"], data["recency"], data["age"]).params
    for params in (TRUE_BGNBD, fit):
        predicted = [
            bgnbd_prob_no_purchase(params, x, t_x, t, 180.0)
            for x, t_x, t in zip(
                data["frequency"], data["recency"], data["age"], strict=True
            )
        ]
        mean_predicted = sum(predicted) / len(predicted)
        assert mean_predicted == pytest.approx(sum(observed) / len(observed), abs=0.015)
        for row in calibration_table(predicted, observed, 10):
            assert row.predicted == pytest.approx(row.observed, abs=0.04), row


# ---------------------------------------------------------------------------
# Inputs from transactions, frequency score
# ---------------------------------------------------------------------------


def test_model_columns_from_transactions():
    day = date(2025, 1, 1)
    rows = [
        ("b", day, 10.0),
        ("a", day + timedelta(days=5), 0.0),  # zero amount: an order
        ("a", day + timedelta(days=5), 20.0),  # same day: one occasion
        ("a", day + timedelta(days=9), 40.0, 8.0),
        ("a", day + timedelta(days=40), 99.0),  # after the cut
    ]
    columns = model_columns(rows, day + timedelta(days=20), margin_rate=0.5)
    assert columns.customers == ["a", "b"]
    assert columns.frequency == [1, 0]
    assert columns.recency == [4, 0]
    assert columns.age == [15, 20]
    assert columns.orders == [3, 1]
    assert columns.revenue == [60.0, 10.0]
    assert columns.margin == [18.0, 5.0]
    assert columns.mean == [20.0, 10.0]
    assert model_columns([], day) == model_columns([], day + timedelta(days=1))


def test_frequency_levels_on_a_one_order_population():
    counts = [1] * 59 + [2] * 16 + [3] * 9 + [4] * 6 + [5] * 4 + [7] * 3 + [12] * 3
    assert frequency_cuts(counts) == [3, 4, 5]
    cuts = frequency_cuts(counts)
    scores = [frequency_score(c, cuts) for c in counts]
    assert sorted(set(scores)) == [1, 2, 3, 4, 5]
    assert frequency_score(0, cuts) == 1
    assert frequency_score(2, cuts) == 2
    assert frequency_score(100, cuts) == 5
    shuffled = list(counts)
    random.Random(1).shuffle(shuffled)
    assert frequency_cuts(shuffled) == cuts
    # "Two orders" holds three quarters of the repeat buyers: the next
    # levels start at the next distinct counts instead of being skipped.
    skewed = [1] * 50 + [2] * 30 + [3] * 5 + [4] * 3 + [6] * 2
    cuts = frequency_cuts(skewed)
    assert cuts == [3, 4, 6]
    assert [frequency_score(c, cuts) for c in (1, 2, 3, 4, 5, 6, 9)] == [
        1,
        2,
        3,
        4,
        4,
        5,
        5,
    ]
    assert frequency_cuts([1, 2, 2, 2, 3]) == [3, None, None]
    # Nobody came back: a single level.
    assert frequency_cuts([1, 1, 0]) == [None, None, None]
    assert frequency_score(1, [None, None, None]) == 1
    # Repeat buyers all equal: level 2 only (ties never split).
    assert frequency_cuts([1, 2, 2, 2]) == [None, None, None]
    assert frequency_score(2, [None, None, None]) == 2
    assert frequency_cuts([]) == [None, None, None]


def test_loyalty_features_hook_helps_only_when_informative():
    """A loyalty fact BG/NBD cannot see (here: app visits a year, noisy but
    growing with the customer's latent purchase rate, as engagement with a
    loyalty program would) improves the ranking of customers the offset
    model was not fitted on; pure-noise facts get coefficients near 0 and
    leave the ranking as it was: the check the monthly backtest makes before
    using the hook."""
    population = simulate_customers(TRUE_BGNBD, TRUE_GG, 8000, 365.0, 725.0, 21)
    data = summarize(population, 545.0)
    rng = random.Random(9)
    base = [
        bgnbd_prob_no_purchase(TRUE_BGNBD, x, t_x, t, 180.0)
        for x, t_x, t in zip(
            data["frequency"], data["recency"], data["age"], strict=True
        )
    ]
    churned = [n == 0 for n in data["future_orders"]]
    visits = [
        math.log1p(rng.lognormvariate(math.log(population[c].rate * 365 + 0.1), 1.0))
        for c in data["customer"]
    ]
    noise = [[rng.gauss(0, 1), rng.gauss(5, 2)] for _ in base]
    train = list(range(0, len(base), 2))
    test = list(range(1, len(base), 2))

    def evaluate(rows):
        model = fit_log_odds_offset(
            [base[i] for i in train],
            [rows[i] for i in train],
            [churned[i] for i in train],
        )
        combined = [
            apply_log_odds_offset(base[i], log_odds_offset(model, rows[i]))
            for i in test
        ]
        return model, roc_auc(combined, [churned[i] for i in test])

    base_auc = roc_auc([base[i] for i in test], [churned[i] for i in test])
    informative, auc = evaluate([[v, *n] for v, n in zip(visits, noise, strict=True)])
    assert informative.coefficients[0] < -0.1  # more visits: less churn
    assert auc > base_auc + 0.01
    useless, auc = evaluate(noise)
    assert all(abs(c) < 0.1 for c in useless.coefficients)
    assert abs(auc - base_auc) < 0.005


# ---------------------------------------------------------------------------
# Churn rise (the Retention stage's input)
# ---------------------------------------------------------------------------


def test_churn_rise_is_zero_right_after_the_last_purchase():
    """Right after his last purchase (T = t_x) a customer sits exactly at his
    own pattern, whatever his frequency: rise 0."""
    params = BgNbdParams(0.5, 40.0, 0.8, 2.5)
    keys = [(0, 0, 0), (1, 30, 30), (12, 300, 300), (40, 365, 365)]
    probability = [bgnbd_prob_no_purchase(params, x, tx, t, 180.0) for x, tx, t in keys]
    rise = churn_rise(
        params, [k[0] for k in keys], [k[1] for k in keys], probability, 180.0
    )
    assert rise == [0, 0, 0, 0]


def test_churn_rise_grows_with_silence_faster_for_frequent_buyers():
    """The same silence of 120 days: a frequent buyer (weekly, 40 repeat
    days) rises far more than an occasional one; a one-order customer rises
    a little (he is alive for sure under BG/NBD, but his rate estimate
    falls)."""
    params = BgNbdParams(0.5, 40.0, 0.8, 2.5)
    keys = [(40, 280, 400), (2, 280, 400), (0, 0, 120)]
    probability = [bgnbd_prob_no_purchase(params, x, tx, t, 180.0) for x, tx, t in keys]
    frequent, occasional, once = churn_rise(
        params, [k[0] for k in keys], [k[1] for k in keys], probability, 180.0
    )
    assert frequent > 60
    assert frequent > occasional > 0
    # One-order customer: ((40+120)/(40+300))^0.5 - (40/220)^0.5 = 0.26.
    assert once == 26
