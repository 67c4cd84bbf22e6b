"""Customer-base model behind churn risk and CLV: BG/NBD and Gamma-Gamma.

Pure standard-library functions (no `odoo` import), fitted per company on the
nightly aggregation. Time is measured in days throughout.

References:

* [FHL05] P. S. Fader, B. G. S. Hardie, K. L. Lee, "Counting your customers
  the easy way: an alternative to the Pareto/NBD model", Marketing Science
  24(2), 2005 (BG/NBD), and the companion note "Computing P(alive) using the
  BG/NBD model" (Fader, Hardie, Lee 2008).
* [FHL05b] P. S. Fader, B. G. S. Hardie, K. L. Lee, "RFM and CLV: using
  iso-value curves for customer base analysis", Journal of Marketing
  Research 42(4), 2005 (Gamma-Gamma spend model); and B. G. S. Hardie's note
  "The Gamma-Gamma model of monetary value" (2013), whose likelihood is used.

Per customer the model needs, as of the scoring day:

* x: repeat purchases, i.e. purchase *days* minus one (several orders on one
  day are one purchase occasion: BG/NBD counts transactions in continuous
  time, and same-day orders would otherwise look like an infinitely fast
  buyer);
* t_x: days from the first to the last purchase (0 for x = 0);
* T: days from the first purchase to the scoring day (T >= t_x);

and for the spend model the number of orders and their mean amount.

BG/NBD assumptions (FHL05, section 3): while alive a customer buys as a
Poisson process of rate lambda ~ Gamma(r, alpha); after each *repeat*
purchase he drops out for good with probability p ~ Beta(a, b); lambda and p
independent. A customer therefore never dies without buying first: a
customer with no repeat purchase is alive for sure (P(alive | x = 0) = 1).

Fitting: maximum likelihood, BFGS with analytic gradients on the log of the
parameters (deterministic). Customers without a repeat purchase enter
exactly, grouped by T (their likelihood depends on T alone: a few hundred
distinct days). Repeat buyers enter whole up to `FIT_SAMPLE` of them; above
that, as a systematic sample: sorted by (x, T, t_x), the middle of each of
FIT_SAMPLE equal strides, each standing for n / FIT_SAMPLE of them. So the
fit costs about the same at 100,000 customers as at 10,000, and stays
deterministic: the sample depends only on the values, never on ids or input
order. The price is a sampling error of the parameters of the order of
their estimation error on a population of ~10,000 customers (measured in
tests/test_clv_model.py); ranking and calibration barely move.
"""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Repeat buyers (resp. spenders) above which the fits run on a systematic
# sample of this size (see above): the fits' cost is capped by it.
FIT_SAMPLE = 4000

# Days in a month, for monthly horizons and discounting (365.25 / 12).
MONTH_DAYS = 30.4375


# ---------------------------------------------------------------------------
# Special functions
# ---------------------------------------------------------------------------


def hyp2f1(a: float, b: float, c: float, z: float, max_terms: int = 200000) -> float:
    """Gauss hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1.

    Plain power series, sum of (a)_n (b)_n / ((c)_n n!) z^n, stopped when
    the rest, bounded by a geometric series of the largest ratio later
    terms can have (see `_series_tail`), is below 1e-15 of the sum. Raises
    ArithmeticError when that does not happen within `max_terms` terms (z
    very close to 1 with slowly decaying terms) instead of returning a wrong
    value. c must not be 0 or a negative integer.
    """
    if not 0.0 <= z < 1.0:
        raise ValueError(f"hyp2f1: z must be in [0, 1), got {z!r}")
    if c <= 0 and c == int(c):
        raise ValueError("hyp2f1: c must not be 0 or a negative integer")
    return 1.0 + _series_tail(a, b, c, z, a * b / c, max_terms)


def _series_tail(a, b, c, z, first, max_terms):
    """sum_{n>=1} t_n, t_1 = first * z, t_{n+1} = t_n (a+n)(b+n) / ((c+n)(n+1)) z:
    the terms after the first of a 2F1(a, b; c; z) series scaled so that its
    n = 1 term is first * z (first = a b / c for 2F1 itself)."""
    if z == 0.0:
        return 0.0
    term = first * z
    total = term
    # From here on a + m, b + m and c + m are positive for every later m.
    positive = max(-a, -b, -c)
    for n in range(1, max_terms):
        if term == 0.0:
            return total
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
        total += term
        # The ratio of every later term to the one before,
        # (a + m)/(c + m) (b + m)/(m + 1) z for m > n, is at most
        # `ratio`: each factor is below 1, or (a > c, b > 1) decreases
        # towards 1 as m grows. The tail is then below
        # |term| ratio / (1 - ratio). (Tested every 4th term: the test
        # costs more than a term. The earlier bound waited for n to pass
        # |a| + |b|, hundreds of terms for BG/NBD fits with a large b.)
        if not n & 3 and n > positive:
            ratio = z
            if a > c:
                ratio *= (a + n) / (c + n)
            if b > 1.0:
                ratio *= (b + n) / (n + 1)
            if ratio < 1.0 and abs(term) * ratio <= 1e-15 * abs(total) * (1.0 - ratio):
                return total
    raise ArithmeticError(
        f"2F1 series did not converge in {max_terms} terms "
        f"(a={a!r}, b={b!r}, c={c!r}, z={z!r})"
    )


def digamma(x: float) -> float:
    """psi(x) for x > 0 (recurrence to x >= 10, then the asymptotic series)."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    # ln x - 1/(2x) - sum B_2k / (2k x^2k), to k = 5: error below 1e-14.
    series = 1 / 12 - inv2 * (
        1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))
    )
    return result + math.log(x) - 0.5 * inv - inv2 * series


# ---------------------------------------------------------------------------
# Deterministic optimizer
# ---------------------------------------------------------------------------


def bfgs(
    func: Callable[[list[float]], tuple[float, list[float]]],
    start: Sequence[float],
    gtol: float = 1e-7,
    ftol: float = 1e-13,
    max_iter: int = 200,
    max_step: float = 2.0,
    inverse_hessian: list[list[float]] | None = None,
) -> tuple[list[float], float, int, list[list[float]]]:
    """Minimise `func` (returning value and gradient) from `start`.

    BFGS with a backtracking (Armijo) line search; steps longer than
    `max_step` in any coordinate are shortened (the fits work on log
    parameters: one step never multiplies a parameter by more than e^2).
    Stops when every gradient component is within `gtol`, when an
    iteration gains less than `ftol` (relative: the value's rounding noise),
    when the line search cannot decrease the value any more, or after
    `max_iter` iterations. A value of nan or inf counts as "too far" and
    shortens the step. Returns (point, value, evaluations, inverse Hessian
    estimate), the last one to warm-start a refinement. Deterministic.
    """
    n = len(start)
    point = list(start)
    value, grad = func(point)
    evals = 1
    if not math.isfinite(value):
        raise ArithmeticError("bfgs: the objective is not finite at the start")
    hessian = (
        [list(row) for row in inverse_hessian]
        if inverse_hessian
        else [[float(i == j) for j in range(n)] for i in range(n)]
    )
    fresh = inverse_hessian is None
    for _iteration in range(max_iter):
        if max(abs(g) for g in grad) <= gtol:
            break
        direction = [
            -sum(h * g for h, g in zip(row, grad, strict=True)) for row in hessian
        ]
        slope = sum(g * d for g, d in zip(grad, direction, strict=True))
        if slope >= 0:  # lost positive definiteness: restart along -gradient
            hessian = [[float(i == j) for j in range(n)] for i in range(n)]
            fresh = True
            direction = [-g for g in grad]
            slope = -sum(g * g for g in grad)
        longest = max(abs(d) for d in direction)
        step = min(1.0, max_step / longest) if longest > 0 else 1.0
        while True:
            candidate = [p + step * d for p, d in zip(point, direction, strict=True)]
            new_value, new_grad = func(candidate)
            evals += 1
            if math.isfinite(new_value) and new_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-9:
                return point, value, evals, hessian
        s = [c - p for c, p in zip(candidate, point, strict=True)]
        y = [ng - g for ng, g in zip(new_grad, grad, strict=True)]
        sy = sum(a * b for a, b in zip(s, y, strict=True))
        if sy > 1e-16:
            if fresh:
                # Scale the initial inverse Hessian to the curvature seen.
                scale = sy / sum(b * b for b in y)
                hessian = [[h * scale for h in row] for row in hessian]
                fresh = False
            hy = [sum(h * b for h, b in zip(row, y, strict=True)) for row in hessian]
            yhy = sum(a * b for a, b in zip(y, hy, strict=True))
            rho = 1.0 / sy
            factor = (1.0 + yhy * rho) * rho
            hessian = [
                [
                    hessian[i][j]
                    + factor * s[i] * s[j]
                    - rho * (hy[i] * s[j] + s[i] * hy[j])
                    for j in range(n)
                ]
                for i in range(n)
            ]
        converged = value - new_value <= ftol * (1.0 + abs(value))
        point, value, grad = candidate, new_value, new_grad
        if converged:
            break
    return point, value, evals, hessian


def _systematic_sample(count: int, size: int) -> list[int]:
    """`size` indices spread evenly over range(count): the middle of each of
    `size` equal strides. All indices when count <= size."""
    if count <= size:
        return list(range(count))
    return [int((k + 0.5) * count / size) for k in range(size)]


# ---------------------------------------------------------------------------
# BG/NBD
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """BG/NBD parameters, time in days: lambda ~ Gamma(shape r, rate alpha),
    p ~ Beta(a, b). All strictly positive."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self):
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"BG/NBD {name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class BgNbdFit:
    """A fitted BG/NBD: parameters, mean log-likelihood per customer (of the
    fitted data, sample-estimated above FIT_SAMPLE repeat buyers), number of
    customers, likelihood evaluations, and whether the data allowed a fit at
    all (False: no repeat buyer or no customer; `params` are then a neutral
    fallback, see `fit_bgnbd`)."""

    params: BgNbdParams
    loglik: float
    customers: int
    evaluations: int
    fitted: bool


def _check_customer(x, t_x, age):
    if x < 0 or t_x < 0 or age < t_x or (x == 0 and t_x != 0):
        raise ValueError(
            f"BG/NBD needs x >= 0, 0 <= t_x <= T and t_x = 0 when x = 0; "
            f"got x={x!r}, t_x={t_x!r}, T={age!r}"
        )


def _check_columns(frequency, recency, age):
    """`_check_customer` for whole columns (one pass, a call only on error)."""
    if not len(frequency) == len(recency) == len(age):
        raise ValueError("frequency, recency and age must have the same length")
    for x, t_x, t in zip(frequency, recency, age, strict=True):
        if x < 0 or t_x < 0 or t < t_x or (x == 0 and t_x != 0):
            _check_customer(x, t_x, t)


def bgnbd_loglik(params: BgNbdParams, x: int, t_x: float, age: float) -> float:
    """Log-likelihood of one customer's (x, t_x, T) under BG/NBD (FHL05 eq. 6):

    ln L = ln G(r+x) - ln G(r) + r ln alpha
           + ln B(a, b+x) - ln B(a, b)
           - (r+x) ln(alpha+T)
           + ln(1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
    """
    _check_customer(x, t_x, age)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    value = (
        math.lgamma(r + x)
        - math.lgamma(r)
        + r * math.log(alpha)
        + math.lgamma(a + b)
        + math.lgamma(b + x)
        - math.lgamma(b)
        - math.lgamma(a + b + x)
        - (r + x) * math.log(alpha + age)
    )
    if x > 0:
        value += _log1p_exp(
            math.log(a / (b + x - 1))
            + (r + x) * (math.log(alpha + age) - math.log(alpha + t_x))
        )
    return value


def _log1p_exp(y: float) -> float:
    """ln(1 + e^y) without overflow."""
    return y + math.log1p(math.exp(-y)) if y > 0 else math.log1p(math.exp(y))


def _sorted_pairs(pairs):
    """`pairs` of (T, t_x) sorted. Whole days (the nightly job's) are packed
    into one integer per pair, which sorts several times faster than tuples;
    either way the order depends only on the values."""
    if all(type(t) is int and type(t_x) is int and t_x >= 0 for t, t_x in pairs):
        base = max(t for t, _tx in pairs) + 1
        return [divmod(k, base) for k in sorted(t * base + t_x for t, t_x in pairs)]
    return sorted(pairs)


class _BgNbdData:
    """The customers of a BG/NBD fit as weighted points (see the module doc).

    Customers without a repeat purchase are grouped exactly by T (their
    likelihood depends on T only). Repeat buyers, sorted by (x, T, t_x), are
    taken whole up to `sample_size`, else as a systematic sample of that
    size, each standing for n / sample_size of them. Identical points are
    merged. The log-likelihood is the weighted sum over the points.
    """

    def __init__(self, frequency, recency, age, sample_size):
        if not len(frequency) == len(recency) == len(age):
            raise ValueError("frequency, recency and age must have the same length")
        self.n = len(frequency)
        one_timers = {}
        by_x = {}  # x -> [(T, t_x), ...]
        for x, t_x, t in zip(frequency, recency, age, strict=True):
            if x < 0 or t_x < 0 or t < t_x or (x == 0 and t_x != 0):
                _check_customer(x, t_x, t)
            if x:
                group = by_x.get(x)
                if group is None:
                    by_x[x] = [(t, t_x)]
                else:
                    group.append((t, t_x))
            else:
                one_timers[t] = one_timers.get(t, 0) + 1
        self._repeater_list = [
            (x, t, t_x) for x in sorted(by_x) for t, t_x in _sorted_pairs(by_x[x])
        ]
        self.repeaters = len(self._repeater_list)
        total_x = sum(x * len(group) for x, group in by_x.items())
        total_age = sum(t for _x, t, _tx in self._repeater_list)
        total_age += sum(t * c for t, c in one_timers.items())
        self.mean_x = total_x / self.n if self.n else 0.0
        self.mean_age = total_age / self.n if self.n else 0.0
        self.one_timers = sorted(one_timers.items())
        self.use_sample(sample_size)

    def use_sample(self, sample_size):
        """(Re)build the weighted points with `sample_size` repeat buyers."""
        repeaters = self._repeater_list
        weight = len(repeaters) / sample_size if len(repeaters) > sample_size else 1.0
        grouped = {}
        for index in _systematic_sample(len(repeaters), sample_size):
            key = repeaters[index]
            grouped[key] = grouped.get(key, 0.0) + weight
        points = [((0, t, 0), float(c)) for t, c in self.one_timers]
        points += sorted(grouped.items())
        days = sorted({k[1] for k, _w in points} | {k[2] for k, _w in points})
        index = {d: i for i, d in enumerate(days)}
        self.days = days
        by_x = {}
        for (x, _t, _tx), w in points:
            by_x[x] = by_x.get(x, 0.0) + w
        self.by_x = sorted(by_x.items())
        self.weight = math.fsum(w for _k, w in points)
        self.p_x = [k[0] for k, _w in points]
        self.p_age = [index[k[1]] for k, _w in points]
        self.p_tx = [index[k[2]] for k, _w in points]
        self.p_w = [w for _k, w in points]

    def loglik_grad(self, r, alpha, a, b):
        """Weighted log-likelihood and its gradient in (r, alpha, a, b)."""
        lgamma, log, exp, log1p = math.lgamma, math.log, math.exp, math.log1p
        n = self.weight
        value = n * (r * log(alpha) - lgamma(r) + lgamma(a + b) - lgamma(b))
        d_r = n * (log(alpha) - digamma(r))
        d_alpha = n * r / alpha
        d_a = n * digamma(a + b)
        d_b = n * (digamma(a + b) - digamma(b))
        shift = {}
        for x, w in self.by_x:
            value += w * (lgamma(r + x) + lgamma(b + x) - lgamma(a + b + x))
            d_r += w * digamma(r + x)
            d_ab = digamma(a + b + x)
            d_a -= w * d_ab
            d_b += w * (digamma(b + x) - d_ab)
            if x:
                shift[x] = log(a / (b + x - 1))
        logs = [log(alpha + d) for d in self.days]
        invs = [1.0 / (alpha + d) for d in self.days]
        s_sigma = s_sigma_b = 0.0
        for x, it, ix, w in zip(self.p_x, self.p_age, self.p_tx, self.p_w, strict=True):
            log_t = logs[it]
            rx = r + x
            value -= w * rx * log_t
            d_r -= w * log_t
            d_alpha -= w * rx * invs[it]
            if x:
                gap = log_t - logs[ix]
                y = shift[x] + rx * gap
                if y > 0:
                    e = exp(-y)
                    value += w * (y + log1p(e))
                    ws = w / (1.0 + e)
                else:
                    e = exp(y)
                    value += w * log1p(e)
                    ws = w * e / (1.0 + e)
                d_r += ws * gap
                d_alpha += ws * rx * (invs[it] - invs[ix])
                s_sigma += ws
                s_sigma_b += ws / (b + x - 1)
        d_a += s_sigma / a
        d_b -= s_sigma_b
        return value, [d_r, d_alpha, d_a, d_b]


# Parameters are kept within e^-BOUND..e^BOUND (days, or currency for v).
_BOUND = 12.0

# Smallest alpha a fit returns, in days. Below it the expectation series of
# a customer whose first order is today (z = 1 - alpha/(alpha + horizon))
# would need hundreds of thousands of terms; half a day still allows a
# mean purchase rate r / alpha of several a day.
ALPHA_MIN = 0.5

# Standard deviation, in log units, of the weak prior around the start point
# (`_with_prior`).
PRIOR_SD = 3.0


def _with_prior(value, grad, params, theta, center):
    """Log-likelihood and gradient in (log) parameters, plus a weak normal
    prior on the log parameters around `center` (sd PRIOR_SD: a factor of
    20 either way is one sd).

    It weighs as much as a single customer: nothing next to the data of a
    real population (parameters move by well under 0.1% at 10,000
    customers), but it keeps a population of a handful of customers, whose
    likelihood can grow without bound along a ridge, at finite and ordinary
    parameters rather than at the bounds. The gradient returned is with
    respect to the log parameters.
    """
    inv_var = 1.0 / (PRIOR_SD * PRIOR_SD)
    value -= (
        0.5
        * inv_var
        * math.fsum((t - c) ** 2 for t, c in zip(theta, center, strict=True))
    )
    grad = [
        g * p - inv_var * (t - c)
        for g, p, t, c in zip(grad, params, theta, center, strict=True)
    ]
    return value, grad


def fit_bgnbd(
    frequency: Sequence[int],
    recency: Sequence[float],
    age: Sequence[float],
    sample_size: int = FIT_SAMPLE,
) -> BgNbdFit:
    """Maximum-likelihood BG/NBD fit on customers' (x, t_x, T) columns.

    BFGS on (ln r, ln alpha, ln a, ln b) with the analytic gradient, started
    from r = 1, alpha = mean T / mean x (the Poisson rate if nobody dropped
    out), a = 1, b = 3; first on an eighth of the repeat-buyer sample, then
    refined on the whole sample from there (same optimum, a fraction of the
    work). A weak prior around the start point (`_with_prior`, as much
    weight as one customer) and bounds (e^-12..e^12, alpha >= ALPHA_MIN)
    keep tiny or degenerate populations at finite, ordinary parameters;
    strictly this is a posterior mode, indistinguishable from the maximum
    likelihood for any real population.

    Without any repeat buyer the dropout part is not identified: the result
    then has fitted=False and params with r = 1, alpha = the customers' mean
    age (so the NBD part still ranks old one-time buyers as more likely
    gone), a = 1, b = 1; without any customer, alpha = 1.
    """
    data = _BgNbdData(frequency, recency, age, max(8, sample_size // 8))
    if not data.n or not data.repeaters:
        params = BgNbdParams(1.0, max(data.mean_age, 1.0), 1.0, 1.0)
        loglik = data.loglik_grad(*_astuple(params))[0] / data.n if data.n else 0.0
        return BgNbdFit(params, loglik, data.n, 0, False)

    def objective(theta):
        if any(abs(v) > _BOUND for v in theta) or theta[1] < log_alpha_min:
            return math.inf, [0.0] * 4
        params = [math.exp(v) for v in theta]
        value, grad = data.loglik_grad(*params)
        value, grad = _with_prior(value, grad, params, theta, start)
        scale = -1.0 / data.weight
        return value * scale, [g * scale for g in grad]

    log_alpha_min = math.log(ALPHA_MIN)
    start_alpha = max(data.mean_age / data.mean_x, 2 * ALPHA_MIN)
    start = [0.0, math.log(start_alpha), 0.0, math.log(3.0)]
    theta, _value, evals, hessian = bfgs(objective, start, gtol=1e-5)
    if data.repeaters > sample_size // 8:
        data.use_sample(sample_size)
    theta, _value, more, _h = bfgs(objective, theta, inverse_hessian=hessian)
    evals += more
    params = BgNbdParams(*(math.exp(v) for v in theta))
    loglik = data.loglik_grad(*_astuple(params))[0] / data.weight
    return BgNbdFit(params, loglik, data.n, evals, True)


def _astuple(params):
    return params.r, params.alpha, params.a, params.b


def bgnbd_p_alive(params: BgNbdParams, x: int, t_x: float, age: float) -> float:
    """P(alive at T | x, t_x, T) (FHL 2008 note, eq. 2):

        1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))

    1 for customers without a repeat purchase (BG/NBD: no dropout without a
    purchase). Decreases as the last purchase gets older (t_x down, T fixed).
    """
    _check_customer(x, t_x, age)
    if x == 0:
        return 1.0
    y = math.log(params.a / (params.b + x - 1)) + (params.r + x) * math.log(
        (params.alpha + age) / (params.alpha + t_x)
    )
    return 1.0 / (1.0 + math.exp(y)) if y < 700 else 0.0


def bgnbd_prob_no_purchase(
    params: BgNbdParams, x: int, t_x: float, age: float, horizon: float
) -> float:
    """P(no purchase in (T, T + h] | x, t_x, T): the churn probability.

    Derivation under the BG/NBD assumptions (FHL05, section 3): a customer
    dead at T buys nothing. One alive at T has, given his history, lambda ~
    Gamma(r + x, alpha + T) (the posterior: the likelihood of being alive is
    lambda^x e^(-lambda T)); while alive he buys at rate lambda, and he can
    only drop out *right after a purchase*, so "no purchase in h" is exactly
    "no Poisson event in h", of probability e^(-lambda h) whatever p. Hence

        P(none in h) = 1 - P(alive) + P(alive) * E[e^(-lambda h)]
                     = 1 - P(alive) * (1 - ((alpha+T)/(alpha+T+h))^(r+x))

    with P(alive) from `bgnbd_p_alive`. It grows with h and, for a fixed x
    and T, as the last purchase gets older; for one-time buyers (P(alive) =
    1) it is ((alpha+T)/(alpha+T+h))^r, growing with the age of the order:
    the longer a customer has not come back, the less likely he comes back.
    """
    if horizon < 0:
        raise ValueError("horizon must not be negative")
    p_alive = bgnbd_p_alive(params, x, t_x, age)
    base = params.alpha + age
    stay = math.exp(-(params.r + x) * math.log1p(horizon / base))
    return 1.0 - p_alive * (1.0 - stay)


def _alive_expected(params: BgNbdParams, x: int, age: float, t: float) -> float:
    """E[purchases in (T, T + t] | alive at T, x, T] (depends on x, T only).

    From FHL05 eq. 10 divided by P(alive):

        C/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; C; z)]

    with C = a+b+x-1 and z = t/(alpha+T+t). Euler's transformation
    2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) turns it into

        C/(a-1) * [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; C; z)]

    whose series terms decay like n^(a-r-x-1) z^n instead of n^(r+x-a):
    fast for frequent buyers. Every term but the first holds the factor
    (a - 1), divided out analytically, so a = 1 (and a < 1, where the
    closed form's 1/(a-1) looks singular but the expectation is finite) is
    computed as accurately as any other a.
    """
    if t <= 0:
        return 0.0
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    c = a + b + x - 1.0
    base = alpha + age
    z = t / (base + t)
    log_rest = -math.log1p(t / base)  # ln(1 - z)
    # 1 - (1-z)^(a-1) (1 + (a-1) S)  =  -expm1((a-1) L) - (a-1) (1-z)^(a-1) S,
    # S = sum_{n>=1} (a+b-1-r)_n (a)_(n-1) / ((C)_n n!) z^n.
    u = a - 1.0
    head = -log_rest if abs(u) < 1e-12 else -math.expm1(u * log_rest) / u
    # S is the 2F1(A, a-1; C; z) series without its first term, divided by
    # (a - 1): t_1 = A/C z, ratio (A+n)(a-1+n) / ((C+n)(n+1)) z.
    big_a = a + b - 1.0 - r
    s = _series_tail(big_a, u, c, z, big_a / c, 200000)
    return c * (head - math.exp(u * log_rest) * s)


def bgnbd_expected_purchases(
    params: BgNbdParams, x: int, t_x: float, age: float, horizon: float
) -> float:
    """E[purchases in (T, T + h] | x, t_x, T] (FHL05 eq. 10):
    P(alive) times the expectation of a customer alive at T
    (`_alive_expected`, with its 2F1)."""
    if horizon < 0:
        raise ValueError("horizon must not be negative")
    p_alive = bgnbd_p_alive(params, x, t_x, age)
    return p_alive * _alive_expected(params, x, age, horizon)


def bgnbd_discounted_purchases(
    params: BgNbdParams,
    x: int,
    t_x: float,
    age: float,
    months: int,
    monthly_rate: float,
) -> float:
    """Expected purchases over `months` months, each month's discounted:

        sum_{m=1..M} (E[Y(m)] - E[Y(m-1)]) / (1 + d)^m

    E[Y(m)] = `bgnbd_expected_purchases` over m months (MONTH_DAYS each), d
    the monthly discount rate; purchases of month m are discounted as if at
    its end (the convention of Fader & Hardie's CLV examples and lifetimes).
    """
    p_alive = bgnbd_p_alive(params, x, t_x, age)
    return p_alive * _alive_discounted(params, x, age, months, monthly_rate)


def _alive_discounted(params, x, age, months, monthly_rate):
    if months < 0 or monthly_rate <= -1.0:
        raise ValueError("months must be >= 0 and the discount rate > -1")
    total = 0.0
    previous = 0.0
    factor = 1.0 / (1.0 + monthly_rate)
    discount = 1.0
    for m in range(1, months + 1):
        current = _alive_expected(params, x, age, m * MONTH_DAYS)
        discount *= factor
        total += (current - previous) * discount
        previous = current
    return total


# ---------------------------------------------------------------------------
# Gamma-Gamma spend model
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: order values ~ Gamma(p, nu) around a customer
    mean p/nu, nu ~ Gamma(q, v) across customers. q > 1 so that the
    population's mean order value, p v / (q - 1), exists."""

    p: float
    q: float
    v: float

    def __post_init__(self):
        if not (self.p > 0 and self.v > 0 and self.q > 1):
            raise ValueError(
                f"Gamma-Gamma needs p > 0, q > 1, v > 0; got {self.p!r}, "
                f"{self.q!r}, {self.v!r}"
            )
        if not all(math.isfinite(v) for v in (self.p, self.q, self.v)):
            raise ValueError("Gamma-Gamma parameters must be finite")

    @property
    def mean(self) -> float:
        """The population's expected order value, p v / (q - 1)."""
        return self.p * self.v / (self.q - 1.0)


@dataclass(frozen=True, slots=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma: parameters, mean log-likelihood per spender,
    spenders used, evaluations; fitted=False when there were no spenders
    (params are then a fallback, see `fit_gamma_gamma`)."""

    params: GammaGammaParams
    loglik: float
    customers: int
    evaluations: int
    fitted: bool


def gamma_gamma_loglik(params: GammaGammaParams, orders: int, mean: float) -> float:
    """Log-likelihood of one customer's mean order value over `orders`
    orders (Hardie 2013, eq. 4):

        ln G(px+q) - ln G(px) - ln G(q) + q ln v + (px-1) ln m + px ln x
        - (px+q) ln(x m + v)
    """
    if orders < 1 or mean <= 0:
        raise ValueError("Gamma-Gamma needs at least one order and a mean > 0")
    p, q, v = params.p, params.q, params.v
    px = p * orders
    return (
        math.lgamma(px + q)
        - math.lgamma(px)
        - math.lgamma(q)
        + q * math.log(v)
        + (px - 1) * math.log(mean)
        + px * math.log(orders)
        - (px + q) * math.log(orders * mean + v)
    )


def fit_gamma_gamma(
    orders: Sequence[int], means: Sequence[float], sample_size: int = FIT_SAMPLE
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit on (orders, mean order value).

    Only customers with at least one order and a positive mean take part
    (the model is for positive amounts; a customer whose refunds cancel his
    purchases says nothing about order values). Every order counts, the
    first one included: the nightly aggregation has no per-order values
    beyond the totals, and a loyalty program's first order is an ordinary
    one. Above `sample_size` spenders the fit runs on a systematic sample
    sorted by (orders, mean), each sampled customer standing for count /
    sample_size of them.

    BFGS on (ln p, ln(q - 1), ln v) with the analytic gradient, started at
    p = 2, q = 3 and v matching the observed mean order value, with the
    same weak prior around that start as `fit_bgnbd`; first on an eighth of
    the sample, then refined on all of it. Without spenders:
    fitted=False, params (1, 2, 1).
    """
    by_orders = {}
    for n, m in zip(orders, means, strict=True):
        if n >= 1 and m > 0:
            group = by_orders.get(n)
            if group is None:
                by_orders[n] = [m]
            else:
                group.append(m)
    # Sorted by (orders, mean): a float sort per order count, cheaper than
    # sorting (orders, mean) tuples; sampled rows are looked up by offset.
    groups = [(n, sorted(by_orders[n])) for n in sorted(by_orders)]
    offsets = []
    count = 0
    for _n, group in groups:
        offsets.append(count)
        count += len(group)
    if not count:
        return GammaGammaFit(GammaGammaParams(1.0, 2.0, 1.0), 0.0, 0, 0, False)
    mean_value = math.fsum(n * math.fsum(group) for n, group in groups) / sum(
        n * len(group) for n, group in groups
    )
    state = {}

    def use_sample(size):
        weight = count / size if count > size else 1.0
        grouped = {}
        for index in _systematic_sample(count, size):
            g = bisect_right(offsets, index) - 1
            n, group = groups[g]
            key = (n, group[index - offsets[g]])
            grouped[key] = grouped.get(key, 0.0) + weight
        items = sorted(grouped.items())
        by_x = {}
        for (n, _m), w in items:
            by_x[n] = by_x.get(n, 0.0) + w
        state["by_x"] = sorted(by_x.items())
        state["weight"] = math.fsum(w for _k, w in items)
        # Constant parts: sum w n (ln m + ln n) and sum w ln m.
        state["const_p"] = math.fsum(
            w * n * (math.log(m) + math.log(n)) for (n, m), w in items
        )
        state["const"] = math.fsum(w * math.log(m) for (n, m), w in items)
        state["x"] = [n for (n, _m), _w in items]
        state["spend"] = [n * m for (n, m), _w in items]
        state["w"] = [w for _k, w in items]

    def loglik_grad(p, q, v):
        lgamma, log = math.lgamma, math.log
        total = state["weight"]
        value = total * (q * log(v) - lgamma(q)) + p * state["const_p"] - state["const"]
        d_p = state["const_p"]
        d_q = total * (log(v) - digamma(q))
        d_v = total * q / v
        for n, w in state["by_x"]:
            value += w * (lgamma(p * n + q) - lgamma(p * n))
            psi = digamma(p * n + q)
            d_p += w * n * (psi - digamma(p * n))
            d_q += w * psi
        for n, s, w in zip(state["x"], state["spend"], state["w"], strict=True):
            log_s = log(s + v)
            k = p * n + q
            value -= w * k * log_s
            d_p -= w * n * log_s
            d_q -= w * log_s
            d_v -= w * k / (s + v)
        return value, [d_p, d_q, d_v]

    def objective(theta):
        if any(abs(t) > _BOUND for t in theta):
            return math.inf, [0.0] * 3
        p, q1, v = (math.exp(t) for t in theta)
        value, grad = loglik_grad(p, 1.0 + q1, v)
        value, grad = _with_prior(value, grad, (p, q1, v), theta, start)
        scale = -1.0 / state["weight"]
        return value * scale, [g * scale for g in grad]

    # p v / (q - 1) = mean  with p = 2, q = 3  =>  v = mean.
    start = [math.log(2.0), math.log(2.0), math.log(mean_value)]
    use_sample(max(8, sample_size // 8))
    theta, _value, evals, hessian = bfgs(objective, start, gtol=1e-5)
    use_sample(sample_size)
    theta, _value, more, _h = bfgs(objective, theta, inverse_hessian=hessian)
    p, q1, v = (math.exp(t) for t in theta)
    params = GammaGammaParams(p, 1.0 + q1, v)
    loglik = loglik_grad(p, 1.0 + q1, v)[0] / state["weight"]
    return GammaGammaFit(params, loglik, count, evals + more, True)


def gamma_gamma_expected_value(
    params: GammaGammaParams, orders: int, mean: float
) -> float:
    """E[mean order value | orders, observed mean] (FHL05b eq. 5):

        (q - 1)/(p x + q - 1) * p v/(q - 1)  +  p x/(p x + q - 1) * m

    a weighted mean of the population mean p v/(q-1) and the customer's own
    mean m, whose weight grows with his number of orders x: the shrinkage.
    Customers without a positive mean (no orders, zero amounts, refunds
    above purchases) get the population mean. Always > 0.
    """
    if orders < 1 or mean <= 0:
        return params.mean
    px = params.p * orders
    return params.p * (params.v + orders * mean) / (px + params.q - 1.0)


def shrunk_margin_rate(
    margin: float, revenue: float, company_rate: float, prior_revenue: float
) -> float:
    """A customer's margin rate shrunk toward the company's, in [0, 1]:

        (margin + company_rate * w) / (revenue + w),  w = prior_revenue

    i.e. the company rate counts as `prior_revenue` of pseudo-sales (the
    nightly job passes the company's mean order value: one pseudo-order).
    A customer with no revenue gets the company rate; one whose own margins
    are zero still gets a positive rate, so the CLV of a customer expected to
    buy again is never 0 because of a few zero-cost products.
    """
    if prior_revenue <= 0:
        raise ValueError("prior_revenue must be positive")
    if not 0.0 <= company_rate <= 1.0:
        raise ValueError("company_rate must be within 0..1")
    revenue = max(revenue, 0.0)
    margin = min(max(margin, 0.0), revenue)
    return (margin + company_rate * prior_revenue) / (revenue + prior_revenue)


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------


def churn_percent(probability: float) -> int:
    """A probability shown as 0..100, rounded half up; 100 only from 0.995."""
    if not 0.0 <= probability <= 1.0 + 1e-12:
        raise ValueError(f"probability out of range: {probability!r}")
    return min(100, math.floor(100.0 * probability + 0.5))


def apply_log_odds_offset(probability: float, offset: float) -> float:
    """The hook for what a loyalty system knows and BG/NBD does not (points
    balance, redemptions, tier, referrals): a model of those features fitted
    on the company's own backtest with BG/NBD's log-odds as offset
    (`fit_log_odds_offset`) adds its log-odds `offset` (`log_odds_offset`)
    to the churn probability. 0 changes nothing. Kept separate so that the
    BG/NBD probability stays the calibrated baseline."""
    if offset == 0.0 or probability in (0.0, 1.0):
        return probability
    log_odds = math.log(probability / (1.0 - probability)) + offset
    return 1.0 / (1.0 + math.exp(-log_odds)) if log_odds > -700 else 0.0


@dataclass(frozen=True, slots=True)
class OffsetModel:
    """Loyalty features on top of the BG/NBD churn probability:

        logit P(churn) = logit(base) + intercept + sum_j coef_j z_j,
        z_j = (feature_j - mean_j) / scale_j

    (`fit_log_odds_offset`; `log_odds_offset` gives the added term)."""

    intercept: float
    coefficients: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]


def log_odds_offset(model: OffsetModel, features: Sequence[float]) -> float:
    """The log-odds `model` adds for one customer's `features`, for
    `apply_log_odds_offset`."""
    return model.intercept + math.fsum(
        c * (f - m) / s
        for c, f, m, s in zip(
            model.coefficients, features, model.means, model.scales, strict=True
        )
    )


def fit_log_odds_offset(
    base: Sequence[float],
    features: Sequence[Sequence[float]],
    outcomes: Sequence[bool],
    l2: float = 1.0,
    max_iter: int = 50,
) -> OffsetModel:
    """Logistic regression of `outcomes` (churned in the horizon) on
    standardised `features` (one row per customer) with the BG/NBD
    log-odds logit(base) as offset: what the features add beyond the model.

    Newton's method on the penalised log-likelihood (ridge `l2` on the
    coefficients, not on the intercept); deterministic. Meant for the
    monthly backtest (orders and loyalty facts as of N days ago, outcomes
    since): only worth applying when it improves the ranking of customers it
    was not fitted on (tests/test_clv_model.py shows the check, on simulated
    data with informative and with pure-noise features). Constant features
    get coefficient 0.
    """
    n = len(base)
    if n != len(features) or n != len(outcomes):
        raise ValueError("base, features and outcomes must have the same length")
    k = len(features[0]) if n else 0
    means, scales = [], []
    for j in range(k):
        column = [row[j] for row in features]
        mean = math.fsum(column) / n
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in column) / n)
        means.append(mean)
        scales.append(sd if sd > 0 else 1.0)
    rows = [
        [1.0] + [(row[j] - means[j]) / scales[j] for j in range(k)] for row in features
    ]
    offsets = []
    for p in base:
        p = min(max(p, 1e-9), 1.0 - 1e-9)
        offsets.append(math.log(p / (1.0 - p)))
    beta = [0.0] * (k + 1)
    for _iteration in range(max_iter):
        grad = [0.0] * (k + 1)
        hess = [[0.0] * (k + 1) for _ in range(k + 1)]
        for row, offset, y in zip(rows, offsets, outcomes, strict=True):
            eta = offset + sum(b * v for b, v in zip(beta, row, strict=True))
            p = 1.0 / (1.0 + math.exp(-eta)) if eta > -700 else 0.0
            weight = p * (1.0 - p)
            residual = (1.0 if y else 0.0) - p
            for i, vi in enumerate(row):
                grad[i] += residual * vi
                hess_row = hess[i]
                for j in range(i + 1):
                    hess_row[j] += weight * vi * row[j]
        for i in range(1, k + 1):
            grad[i] -= l2 * beta[i]
            hess[i][i] += l2
        for i in range(k + 1):
            for j in range(i + 1, k + 1):
                hess[i][j] = hess[j][i]
        step = _solve(hess, grad)
        beta = [b + d for b, d in zip(beta, step, strict=True)]
        if max(abs(d) for d in step) < 1e-10:
            break
    return OffsetModel(beta[0], tuple(beta[1:]), tuple(means), tuple(scales))


def _solve(matrix, vector):
    """x with matrix x = vector (Gaussian elimination, partial pivoting);
    a singular direction gets 0."""
    n = len(vector)
    a = [[*row, v] for row, v in zip(matrix, vector, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-12:
            continue
        for r in range(n):
            if r != col and a[r][col]:
                factor = a[r][col] / a[col][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
    return [a[i][n] / a[i][i] if abs(a[i][i]) >= 1e-12 else 0.0 for i in range(n)]


def clv_value(
    discounted_purchases: float, expected_value: float, margin_rate: float
) -> float:
    """CLV = discounted expected purchases x expected order value x margin
    rate, rounded to cents; positive whenever the three factors are (a
    customer expected to buy is never worth exactly 0: values under half a
    cent show as 0.01)."""
    value = discounted_purchases * expected_value * margin_rate
    if value <= 0.0:
        return 0.0
    return max(round(value, 2), 0.01)


# Relative change of a stored CLV below which it is left as it is.
CLV_TOLERANCE = 0.01


def clv_moved(
    stored: float | None, computed: float | None, tolerance: float = CLV_TOLERANCE
) -> bool:
    """Whether a stored CLV must be rewritten with the `computed` one.

    A customer's CLV moves by a few cents every day he does not buy (one day
    older, a little less likely alive), so rewriting every changed cent
    rewrote every customer every night. It is rewritten when it moved by
    more than `tolerance` of the stored value (and by a cent at least), or
    when one of the two is empty or zero: a stored CLV is never further from
    the model's value than that (it is a 12-month forecast; its own error is
    far larger), and it is exact on the day it is written. Values are in
    cents, so below 1.00 any cent counts."""
    if stored is None or computed is None or not stored or not computed:
        return stored != computed
    change = abs(computed - stored)
    return change >= 0.005 and change > tolerance * abs(stored)


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Horizons of the model scores.

    churn_horizon_days: churn risk = P(no purchase within this many days).
    clv_months: CLV horizon in months.
    monthly_discount_rate: CLV discount rate per month (0.01 = 1%).
    company_margin_rate: margin rate toward which customers' rates shrink.
    """

    churn_horizon_days: float = 180.0
    clv_months: int = 12
    monthly_discount_rate: float = 0.01
    company_margin_rate: float = 0.30

    def __post_init__(self):
        if self.churn_horizon_days <= 0:
            raise ValueError("churn_horizon_days must be positive")
        if self.clv_months < 1:
            raise ValueError("clv_months must be at least 1")
        if not 0.0 <= self.monthly_discount_rate < 1.0:
            raise ValueError("monthly_discount_rate must be within 0..1")
        if not 0.0 <= self.company_margin_rate <= 1.0:
            raise ValueError("company_margin_rate must be within 0..1")


@dataclass(frozen=True, slots=True)
class ModelScores:
    """Per customer (item i = customer i of the input columns): P(alive),
    churn probability (0..1) and its 0..100 display, discounted expected
    purchases over the CLV horizon, expected order value, CLV."""

    p_alive: list[float]
    churn_probability: list[float]
    churn_risk: list[int]
    expected_purchases: list[float]
    expected_value: list[float]
    clv: list[float]


def model_tables(
    bgnbd: BgNbdParams,
    frequency: Sequence[int],
    age: Sequence[float],
    settings: ModelSettings,
) -> tuple[dict, dict]:
    """The per-(x, T) tables of `score_model` for these customers: the
    discounted expected purchases of a live customer
    (`alive_discounted_table`) and P(some purchase within the churn horizon
    | alive)."""
    r, alpha = bgnbd.r, bgnbd.alpha
    horizon = settings.churn_horizon_days
    log1p = math.log1p
    alive = alive_discounted_table(bgnbd, zip(frequency, age, strict=True), settings)
    active = {
        key: -math.expm1(-(r + key[0]) * log1p(horizon / (alpha + key[1])))
        for key in alive
    }
    return alive, active


def score_model(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency: Sequence[int],
    recency: Sequence[float],
    age: Sequence[float],
    orders: Sequence[int],
    mean_values: Sequence[float],
    margins: Sequence[float],
    revenues: Sequence[float],
    settings: ModelSettings,
    tables: tuple[dict, dict] | None = None,
) -> ModelScores:
    """Churn risk and CLV of a whole population, in columns.

    Per customer i: (x, t_x, T) = frequency[i], recency[i], age[i]; the
    spend model uses orders[i] and mean_values[i]; margins[i] / revenues[i]
    give his own margin rate, shrunk toward settings.company_margin_rate
    with the Gamma-Gamma population mean as prior revenue
    (`shrunk_margin_rate`). Values are those of `bgnbd_p_alive`,
    `bgnbd_prob_no_purchase`, `churn_percent`, `bgnbd_discounted_purchases`,
    `gamma_gamma_expected_value` and `clv_value`, computed inline: this runs
    for every customer. The discounted expectation of a live customer
    depends on (x, T) only and comes from `alive_discounted_table`.
    `tables`: `model_tables` of these customers or more (a caller scoring
    a population a slice at a time computes them once).
    """
    _check_columns(frequency, recency, age)
    prior = gamma_gamma.mean
    company_rate = settings.company_margin_rate
    r, alpha, a, b = bgnbd.r, bgnbd.alpha, bgnbd.a, bgnbd.b
    gg_p, gg_q1, gg_v = gamma_gamma.p, gamma_gamma.q - 1.0, gamma_gamma.v
    # One pass per quantity, as comprehensions over the columns: much
    # cheaper than one loop appending to six lists.
    alive, active = tables or model_tables(bgnbd, frequency, age, settings)
    # P(alive) = q / (q + a/(b+x-1)), q = ((alpha+t_x)/(alpha+T))^(r+x) in
    # (0, 1]: no overflow for long-gone customers (q underflows to 0).
    odds = {x: a / (b + x - 1) for x in set(frequency) if x}
    p_alive = [
        (q := ((alpha + t_x) / (alpha + t)) ** (r + x)) / (q + odds[x]) if x else 1.0
        for x, t_x, t in zip(frequency, recency, age, strict=True)
    ]
    probability = [
        1.0 - p * active[x, t] for p, x, t in zip(p_alive, frequency, age, strict=True)
    ]
    expected = [
        p * alive[x, t] for p, x, t in zip(p_alive, frequency, age, strict=True)
    ]
    value = [
        gg_p * (gg_v + n * m) / (gg_p * n + gg_q1) if n >= 1 and m > 0 else prior
        for n, m in zip(orders, mean_values, strict=True)
    ]
    # shrunk_margin_rate: margin clamped to [0, revenue]; no revenue gives
    # the company rate.
    prior_margin = company_rate * prior
    margin_rate = [
        (((m if m < rev else rev) if m > 0.0 else 0.0) + prior_margin) / (rev + prior)
        if rev > 0.0
        else company_rate
        for m, rev in zip(margins, revenues, strict=True)
    ]
    clv = [
        (round(c, 2) or 0.01) if (c := e * v * m) > 0.0 else 0.0
        for e, v, m in zip(expected, value, margin_rate, strict=True)
    ]
    # churn_percent: 0 <= p <= 1, so int() is floor and 100 the maximum.
    risk = [int(100.0 * p + 0.5) for p in probability]
    return ModelScores(p_alive, probability, risk, expected, value, clv)


def churn_rise(
    params: BgNbdParams,
    frequency: Sequence[int],
    recency: Sequence[float],
    probability: Sequence[float],
    horizon: float,
) -> list[int]:
    """Per customer, the points (0..100) by which his churn probability
    `probability[i]` rose above his own pattern: the churn probability he
    had right after his last purchase (`bgnbd_prob_no_purchase` at T = t_x),

        baseline = 1 - P0 (1 - ((alpha + t_x) / (alpha + t_x + h))^(r + x)),
        P0 = 1 / (1 + a / (b + x - 1)) (1 for x = 0),

    P0 being P(alive) just after a purchase (BG/NBD drops customers out
    right after a purchase).

    A frequent buyer seen recently has a low baseline and a low probability:
    rise near 0, however short his usual gaps. The same buyer silent for
    several of his usual gaps rises fast; a slow buyer with a high baseline
    only rises once he is overdue by his own standards. The Retention stage
    can require it on top of the probability (*At-Risk Churn Rise*, off by
    default: on the backtests it kept customers likely to leave in Growth).
    Never negative (the probability only grows while no purchase comes;
    rounding aside)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    # P0 per repeat count; 1 - P(some purchase in h | alive at t_x) is
    # ((alpha + t_x) / (alpha + t_x + h))^(r + x): this runs for every
    # customer, so in one comprehension, with a power rather than
    # expm1(log1p()) (the result is rounded to whole points).
    alive = {x: 1.0 / (1.0 + a / (b + x - 1.0)) if x else 1.0 for x in set(frequency)}
    return [
        rise if (rise := int(100.0 * (p - 1.0 + alive[x] * (1.0 - q)) + 0.5)) > 0 else 0
        for x, t_x, p in zip(frequency, recency, probability, strict=True)
        for q in (((alpha + t_x) / (alpha + t_x + horizon)) ** (r + x),)
    ]


# Spacing of the interpolation nodes of `alive_discounted_table` (in g and in
# ln(alpha + T)), and the distinct ages of one repeat count above which the
# tables are used.
TABLE_STEP = 0.05
TABLE_FROM = 8


def alive_discounted_table(
    params: BgNbdParams, pairs, settings: ModelSettings
) -> dict[tuple[int, float], float]:
    """{(x, T): discounted expected purchases of a customer alive at T}
    (`bgnbd_discounted_purchases` / P(alive)) for the distinct (x, T) pairs.

    That expectation is F_x(w) = E[purchases within w (alpha + T) days], a
    function of w alone for each x (z = w / (1 + w) in `_alive_expected`).
    For a repeat count with more than TABLE_FROM distinct ages, F_x is
    computed exactly at points evenly spaced in g = ln(1 + w), TABLE_STEP
    apart
    (where it is very smooth: its singularities lie at least pi off the real
    axis) and interpolated by cubic Lagrange polynomials; the discounted
    monthly sum built from it is in turn tabulated at points TABLE_STEP apart
    evenly spaced in ln(alpha + T) and interpolated the same way. Relative
    error below 1e-6 (tests/test_clv_model.py), for a few dozen series per
    repeat count instead of one per customer and month. Rarer repeat counts
    are computed exactly.
    """
    months = settings.clv_months
    rate = settings.monthly_discount_rate
    ages_by_x = {}
    for x, t in pairs:
        ages = ages_by_x.get(x)
        if ages is None:
            ages_by_x[x] = {t}
        else:
            ages.add(t)
    alpha = params.alpha
    factor = 1.0 / (1.0 + rate)
    discounts = [factor ** (m + 1) for m in range(months)]
    # Weights of F at the end of each month: sum_m d^m (F_m - F_(m-1)) =
    # sum_m (d^m - d^(m+1)) F_m + d^M F_M.
    weights = [d - factor * d for d in discounts[:-1]] + discounts[-1:]
    month_weights = [(m * MONTH_DAYS, w) for m, w in enumerate(weights, 1)]
    log1p = math.log1p
    horizon = months * MONTH_DAYS
    table = {}
    for x, ages in ages_by_x.items():
        low, high = min(ages), max(ages)
        g_max = math.log1p(horizon / (alpha + low))
        count = max(8, math.ceil(g_max / TABLE_STEP) + 1)
        if len(ages) * months <= count or len(ages) <= TABLE_FROM:
            # Fewer series than a table of F_x would need: exact.
            for t in ages:
                table[x, t] = _alive_discounted(params, x, t, months, rate)
            continue
        step = g_max / (count - 1)
        nodes = [
            _alive_expected(params, x, 0.0, alpha * math.expm1(i * step))
            for i in range(count)
        ]

        def discounted(base, nodes=nodes, step=step):
            # _interpolate, inlined: this runs a dozen times per age.
            total = 0.0
            last = len(nodes) - 3
            for month_days, w in month_weights:
                position = log1p(month_days / base) / step
                j = int(position)
                if j < 1:
                    j = 1
                elif j > last:
                    j = last
                u = position - j
                um, u1, u2 = u - 1.0, u + 1.0, u - 2.0
                total += w * (
                    u * um * (u1 * nodes[j + 2] - u2 * nodes[j - 1]) / 6.0
                    + u1 * u2 * (um * nodes[j] - u * nodes[j + 1]) / 2.0
                )
            return total

        # With many ages, the discounted sum is itself tabulated in
        # u = ln(alpha + T), the same way: one interpolation per age.
        u_low = math.log(alpha + low)
        u_range = math.log(alpha + high) - u_low
        u_count = max(8, math.ceil(u_range / TABLE_STEP) + 1)
        if len(ages) <= u_count:
            for t in ages:
                table[x, t] = discounted(alpha + t)
            continue
        u_step = u_range / (u_count - 1)
        sums = [discounted(math.exp(u_low + i * u_step)) for i in range(u_count)]
        for t in ages:
            table[x, t] = _interpolate(sums, u_step, math.log(alpha + t) - u_low)
    return table


def _interpolate(nodes, step, g):
    """Cubic Lagrange interpolation of the values `nodes` (at 0, step, ...)
    at g, through the four nodes around it."""
    position = g / step
    j = int(position)
    last = len(nodes) - 3
    if j < 1:
        j = 1
    elif j > last:
        j = last
    u = position - j  # g in node units, relative to node j (in [-1, 2])
    f0, f1, f2, f3 = nodes[j - 1], nodes[j], nodes[j + 1], nodes[j + 2]
    return (
        -u * (u - 1) * (u - 2) / 6 * f0
        + (u + 1) * (u - 1) * (u - 2) / 2 * f1
        - (u + 1) * u * (u - 2) / 2 * f2
        + (u + 1) * u * (u - 1) / 6 * f3
    )


# ---------------------------------------------------------------------------
# Model inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelColumns:
    """The model's inputs per customer, as columns (item i = customer i).

    frequency: repeat purchase days (x); recency: days from the first to the
    last purchase day (t_x); age: days from the first purchase day to the
    scoring day (T); orders, revenue, margin: every order up to the scoring
    day (revenue net, so it can be <= 0); mean: revenue / orders.
    """

    customers: list
    frequency: list[int]
    recency: list[int]
    age: list[int]
    orders: list[int]
    revenue: list[float]
    margin: list[float]
    mean: list[float]


def model_columns(transactions, today, margin_rate: float = 0.0) -> ModelColumns:
    """`ModelColumns` from (customer, date, amount[, margin]) rows, as of
    `today` (rows dated after it are ignored).

    Several orders on one day are one purchase occasion for x and t_x (see
    the module doc) but each counts in orders and revenue; zero amounts are
    orders like any other. Rows without a margin get amount * margin_rate.
    Customers come out sorted (by id), so the result depends only on the
    rows, not on their order.
    """
    per_customer = {}
    for row in transactions:
        customer, day, amount = row[0], row[1], row[2]
        if day > today:
            continue
        margin = row[3] if len(row) > 3 else amount * margin_rate
        entry = per_customer.get(customer)
        if entry is None:
            per_customer[customer] = [{day}, 1, amount, margin]
        else:
            entry[0].add(day)
            entry[1] += 1
            entry[2] += amount
            entry[3] += margin
    columns = ModelColumns([], [], [], [], [], [], [], [])
    for customer in sorted(per_customer):
        days, count, revenue, margin = per_customer[customer]
        first, last = min(days), max(days)
        columns.customers.append(customer)
        columns.frequency.append(len(days) - 1)
        columns.recency.append((last - first).days)
        columns.age.append((today - first).days)
        columns.orders.append(count)
        columns.revenue.append(revenue)
        columns.margin.append(margin)
        columns.mean.append(revenue / count)
    return columns


# ---------------------------------------------------------------------------
# Frequency score for populations dominated by one-order customers
# ---------------------------------------------------------------------------


def frequency_cuts(order_counts: Sequence[int]) -> list[int | None]:
    """Cut values of `frequency_score`: the lowest order count of levels
    3, 4 and 5 among the repeat buyers (None: level not reached).

    Level 1 is "at most one order" (one-order customers no longer flatten
    the scale, however many they are); levels 2 to 5 split the repeat
    buyers (at least two orders) at their quartiles. Level L >= 3 starts at
    the smallest order count c such that at least (L - 2) quarters of the
    repeat buyers have fewer than c orders, so equal counts always share a
    level, whatever the input order. When one count holds more than a
    quarter of them (typically "two orders"), that rule would skip levels;
    the cut then moves to the next distinct count instead, so no level
    stays empty while distinct counts remain. Five levels therefore appear
    as soon as the repeat buyers have four distinct counts; with fewer, the
    top levels stay empty (None) rather than splitting equal customers.
    """
    repeaters = sorted(c for c in order_counts if c >= 2)
    n = len(repeaters)
    # Distinct counts and how many repeat buyers have fewer orders.
    distinct = []
    below = []
    for index, value in enumerate(repeaters):
        if not index or repeaters[index - 1] != value:
            distinct.append(value)
            below.append(index)
    cuts = []
    position = 0  # index in `distinct` where the previous level starts
    for level in (3, 4, 5):
        needed = -(-(level - 2) * n // 4)  # ceil((level - 2) n / 4)
        target = bisect_left(below, needed)
        position = max(target, position + 1)
        cuts.append(distinct[position] if position < len(distinct) else None)
    return cuts


def frequency_score(order_count: int, cuts: Sequence[int | None]) -> int:
    """1..5 from `frequency_cuts`: 1 for at most one order, else 2 plus the
    number of reached cuts."""
    if order_count < 2:
        return 1
    return 2 + sum(1 for cut in cuts if cut is not None and order_count >= cut)
