"""Hold-out control groups and uplift: pure functions, no Odoo.

An action (treatment rule, campaign, targeted programme) holds out a share of
its customers as a control group; comparing what the treated and the control
customers did afterwards gives the action's *uplift*. This module decides who
is held out (a stable hash) and turns the two groups' figures into an uplift
with a 95% confidence interval, a verdict and an ROI.

* Rates (repeat purchase rate, share that left a stage): difference of two
  proportions, Newcombe's hybrid score interval (Newcombe 1998, method 10,
  built on Wilson's score intervals: sound for small samples and for 0% or
  100% rates, where the Wald interval collapses), with the pooled
  two-proportion z test.
* Means (orders, revenue, points per customer): Welch's t interval (unequal
  variances, Welch-Satterthwaite degrees of freedom); optionally a percentile
  bootstrap with a fixed seed (same answer every run).
* The Student t quantile is computed, not approximated by a table: the t CDF
  through the regularized incomplete beta function (Lentz's continued
  fraction, as in Numerical Recipes 6.4), inverted by bisection to 1e-12.
  Exact to the printed digits of the usual tables (t(0.975, 1) = 12.7062,
  t(0.975, 10) = 2.2281); large df tend to the normal quantile 1.95996.
"""

import hashlib
import math
import random
import statistics
from dataclasses import dataclass

Z_95 = 1.959963984540054  # standard normal quantile 0.975
# Below this many customers in either group, no verdict but "not yet".
MIN_GROUP = 5
VERDICTS = ("working", "no_effect", "harmful")


# ---------------------------------------------------------------------------
# Deterministic assignment
# ---------------------------------------------------------------------------


def control_bucket(model, action_id, customer_id):
    """A stable number in [0, 100) for (action, customer): the first 8 bytes
    of SHA-256 of "model:action id:customer id". Same answer on every run,
    machine and Python version (unlike hash() or random)."""
    key = f"{model}:{int(action_id)}:{int(customer_id)}".encode()
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100.0


def in_control(model, action_id, customer_id, share):
    """Whether the customer is in the action's control group of `share`
    percent (0: nobody, 100: everybody)."""
    if not share or share <= 0:
        return False
    return control_bucket(model, action_id, customer_id) < share


# ---------------------------------------------------------------------------
# Student t quantile
# ---------------------------------------------------------------------------


def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with `df` (> 0, may be fractional)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The t value with P(T <= t) = p (0 < p < 1), by bisection on t_cdf."""
    if not 0 < p < 1:
        raise ValueError("p must lie strictly between 0 and 1")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2
    for _i in range(200):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return (low + high) / 2


# ---------------------------------------------------------------------------
# Uplift of a rate, of a mean
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Uplift:
    """Treated vs control: their values, the difference (treated - control),
    the relative difference (None when the control value is 0) and its 95%
    confidence interval (None when it cannot be computed: an empty group)."""

    n_treated: int
    n_control: int
    treated: float
    control: float
    diff: float
    relative: float | None
    low: float | None
    high: float | None


def _relative(diff, control):
    return diff / control if control else None


def wilson_interval(successes, n, z=Z_95):
    """Wilson's score interval of a proportion (Newcombe's building block)."""
    if n <= 0:
        raise ValueError("an interval needs at least one observation")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_uplift(x_treated, n_treated, x_control, n_control, z=Z_95):
    """Difference of two proportions (x successes out of n) with Newcombe's
    hybrid score interval."""
    for x, n in ((x_treated, n_treated), (x_control, n_control)):
        if n < 0 or x < 0 or x > n:
            raise ValueError("successes must lie between 0 and the group size")
    p1 = x_treated / n_treated if n_treated else 0.0
    p0 = x_control / n_control if n_control else 0.0
    diff = p1 - p0
    if not n_treated or not n_control:
        return Uplift(n_treated, n_control, p1, p0, diff, None, None, None)
    l1, u1 = wilson_interval(x_treated, n_treated, z)
    l0, u0 = wilson_interval(x_control, n_control, z)
    low = diff - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return Uplift(n_treated, n_control, p1, p0, diff, _relative(diff, p0), low, high)


def two_proportion_z(x_treated, n_treated, x_control, n_control):
    """The pooled two-proportion z statistic (0 when it is undefined: an
    empty group, or both rates 0% or both 100%)."""
    if not n_treated or not n_control:
        return 0.0
    pooled = (x_treated + x_control) / (n_treated + n_control)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_treated + 1 / n_control))
    if not se:
        return 0.0
    return (x_treated / n_treated - x_control / n_control) / se


def welch_df(var_treated, n_treated, var_control, n_control):
    """Welch-Satterthwaite degrees of freedom."""
    a, b = var_treated / n_treated, var_control / n_control
    if not a and not b:
        return math.inf
    return (a + b) ** 2 / (
        (a * a / (n_treated - 1) if a else 0.0)
        + (b * b / (n_control - 1) if b else 0.0)
    )


def mean_uplift(treated, control, confidence=0.95):
    """Difference of two means with Welch's t interval. `treated`, `control`:
    one value per customer. Zero variance in both groups gives a zero-width
    interval at the difference; fewer than two customers in a group, none."""
    treated, control = list(treated), list(control)
    n1, n0 = len(treated), len(control)
    m1 = statistics.fmean(treated) if n1 else 0.0
    m0 = statistics.fmean(control) if n0 else 0.0
    diff = m1 - m0
    if n1 < 2 or n0 < 2:
        return Uplift(n1, n0, m1, m0, diff, _relative(diff, m0), None, None)
    v1, v0 = statistics.variance(treated, m1), statistics.variance(control, m0)
    se = math.sqrt(v1 / n1 + v0 / n0)
    if not se:
        return Uplift(n1, n0, m1, m0, diff, _relative(diff, m0), diff, diff)
    df = welch_df(v1, n1, v0, n0)
    q = t_quantile(1 - (1 - confidence) / 2, df)
    return Uplift(
        n1, n0, m1, m0, diff, _relative(diff, m0), diff - q * se, diff + q * se
    )


def bootstrap_mean_uplift(treated, control, iterations=2000, seed=16, confidence=0.95):
    """Difference of two means with a percentile bootstrap interval; the
    fixed `seed` makes it reproducible. For skewed figures (revenue) where
    Welch's normal approximation is doubtful on small groups."""
    treated, control = list(treated), list(control)
    n1, n0 = len(treated), len(control)
    m1 = statistics.fmean(treated) if n1 else 0.0
    m0 = statistics.fmean(control) if n0 else 0.0
    diff = m1 - m0
    if n1 < 2 or n0 < 2:
        return Uplift(n1, n0, m1, m0, diff, _relative(diff, m0), None, None)
    rng = random.Random(seed)
    diffs = sorted(
        statistics.fmean(rng.choices(treated, k=n1))
        - statistics.fmean(rng.choices(control, k=n0))
        for _i in range(iterations)
    )
    tail = (1 - confidence) / 2
    low = diffs[math.floor(tail * (iterations - 1))]
    high = diffs[math.ceil((1 - tail) * (iterations - 1))]
    return Uplift(n1, n0, m1, m0, diff, _relative(diff, m0), low, high)


# ---------------------------------------------------------------------------
# Verdict and return
# ---------------------------------------------------------------------------


def verdict(uplift, min_group=MIN_GROUP):
    """'working' when the whole interval lies above 0, 'harmful' when below;
    otherwise (or with fewer than `min_group` customers in a group)
    'no_effect': no measurable effect yet."""
    if (
        uplift.low is None
        or uplift.n_treated < min_group
        or uplift.n_control < min_group
    ):
        return "no_effect"
    if uplift.low > 0:
        return "working"
    if uplift.high < 0:
        return "harmful"
    return "no_effect"


def roi(incremental_margin, cost):
    """Return on the action's cost: (incremental margin - cost) / cost; None
    without cost (nothing spent: no ratio to show)."""
    if not cost or cost <= 0:
        return None
    return (incremental_margin - cost) / cost
