"""Customer scores: RFM quintiles, usage segments, quadrants, churn risk, CLV.

Pure standard-library functions: the caller aggregates orders in SQL into one
`CustomerStats` per customer and writes the returned values on the partners.

Conventions shared by every function here:

* Only customers with at least one order are scored ("the population"); the
  others get no entry at all, so the caller stores empty values, not zeros
  that would read as "worst customer".
* Ranks are computed on the population with sorted lists and `bisect`, so a
  whole run is O(n log n), and they depend only on the values: equal values
  always get the same result, whatever the input order or partner ids.
"""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from itertools import repeat

USAGE_SEGMENTS = ("heavy", "medium", "low")
QUADRANTS = ("true_friend", "butterfly", "barnacle", "stranger")

# Interval assumed for one-time buyers when the company has no typical interval.
DEFAULT_INTERVAL_DAYS = 90.0

# Each usual interval a customer is overdue halves the odds he is still active:
# risk 50 at one interval late, 75 at two.
CHURN_HALF_LIFE_INTERVALS = 1.0

# Score given to every customer when the values have no spread at all (a
# single customer, or everybody equal): there is nothing to rank against.
NEUTRAL_SCORE = 3


@dataclass(frozen=True, slots=True)
class CustomerStats:
    """Per-customer aggregates, computed by the caller (SQL).

    Windows are relative to the scoring date: "12m" is the 12 months up to
    it, "prev_12m" the 12 months before those. Revenue and margin are net of refunds,
    so they can be negative.
    """

    partner_id: int
    first_order: date | None
    last_order: date | None
    orders_12m: int
    revenue_12m: float
    orders_prev_12m: int
    revenue_prev_12m: float
    margin_12m: float
    orders_total: int
    revenue_total: float
    # Mean number of days between consecutive orders; None below two orders.
    avg_interval_days: float | None


@dataclass(frozen=True, slots=True)
class ScoringParams:
    """Tunable thresholds; the defaults are the add-on's out-of-the-box rules.

    heavy_pct: top X% of the population by 12-month revenue are "heavy".
    low_pct: bottom Y% of the population by 12-month revenue are "low".
    low_threshold: a 12-month revenue at or below this is "low" whatever the
        percentiles say (and can never be "heavy").
    loyalty_split_pct, profit_split_pct: percentile from which a customer is
        "high" on the loyalty / profitability axis of the quadrants.
    default_margin_pct: margin rate used by the CLV when a customer has no
        positive 12-month revenue to derive one from (the caller also uses it
        to fill margin_12m for products without a cost).
    company_interval_days: the company's typical days between orders, used as
        the expected interval of one-time buyers; None means 90 days.
    clv_horizon_cap_years: the CLV never counts more years than this.
    """

    heavy_pct: float = 20.0
    low_pct: float = 30.0
    low_threshold: float = 0.0
    loyalty_split_pct: float = 50.0
    profit_split_pct: float = 50.0
    default_margin_pct: float = 30.0
    company_interval_days: float | None = None
    clv_horizon_cap_years: float = 5.0

    def __post_init__(self):
        for name in (
            "heavy_pct",
            "low_pct",
            "loyalty_split_pct",
            "profit_split_pct",
            "default_margin_pct",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"{name} must be between 0 and 100, got {value!r}")
        if self.clv_horizon_cap_years < 0:
            raise ValueError("clv_horizon_cap_years must not be negative")


def has_orders(stat: CustomerStats) -> bool:
    """True when the customer belongs to the scored population."""
    return stat.orders_total > 0 and stat.last_order is not None


def days_since(day: date | None, today: date) -> int | None:
    """Whole days from `day` to `today`, never negative (None stays None).

    Orders dated in the future (typing errors, time zones) count as today's
    rather than giving negative ages that would outrank real ones.
    """
    if day is None:
        return None
    return max(0, (today - day).days)


def _population(stats: Iterable[CustomerStats]) -> list[CustomerStats]:
    # `has_orders`, inlined: this runs over every customer several times.
    return [s for s in stats if s.orders_total > 0 and s.last_order is not None]


def _count_worse(
    values: dict[int, float], higher_is_better: bool
) -> tuple[dict[int, int], bool]:
    """Per id, how many customers have a strictly worse value; and the spread.

    Strictly: tied customers all get the count of their first occurrence in
    worst-to-best order, so they always land together. The flag is False when
    all values are equal (which includes a single customer).
    """
    ordered = sorted(values.values())
    n = len(ordered)
    if higher_is_better:
        lower = _first_index(ordered)
        worse = {pid: lower[v] for pid, v in values.items()}
    else:
        upto = _end_index(ordered)
        worse = {pid: n - upto[v] for pid, v in values.items()}
    has_spread = n > 0 and ordered[0] != ordered[-1]
    return worse, has_spread


def _first_index(ordered: list) -> dict:
    """Value -> index of its first occurrence in the sorted list (bisect_left),
    from the highest value down: dict lookups are much cheaper than a bisect
    per id."""
    n = len(ordered)
    distinct = _few_distinct(ordered)
    if distinct is not None:
        return {value: bisect_left(ordered, value) for value in distinct}
    return dict(zip(reversed(ordered), range(n - 1, -1, -1), strict=True))


def _end_index(ordered: list) -> dict:
    """Value -> index after its last occurrence in the sorted list (bisect_right)."""
    distinct = _few_distinct(ordered)
    if distinct is not None:
        return {value: bisect_right(ordered, value) for value in reversed(distinct)}
    return dict(zip(ordered, range(1, len(ordered) + 1), strict=True))


def _few_distinct(ordered: list) -> list | None:
    """The distinct values of the sorted list, highest first, when there are
    few of them (day counts, order counts: a few hundred among 100,000
    customers): a bisect per distinct value then beats a dict insertion per
    customer. None when most values are distinct (amounts)."""
    if len(ordered) < 64:
        return None
    # A sample first: mostly distinct values show in a few hundred of them.
    step = len(ordered) // 512 + 1
    if len(set(ordered[::step])) * 8 > len(ordered) // step:
        return None
    distinct = set(ordered)
    if len(distinct) * 8 > len(ordered):
        return None
    return sorted(distinct, reverse=True)


def _count_better(values: dict[int, float]) -> dict[int, int]:
    """Per id, how many customers have a strictly higher value."""
    ordered = sorted(values.values())
    n = len(ordered)
    upto = _end_index(ordered)
    return {pid: n - upto[v] for pid, v in values.items()}


def quintile_scores(
    values: dict[int, float], higher_is_better: bool = True
) -> dict[int, int]:
    """Score each id 1..5 by its rank in the population.

    Formula: with n customers and w = the number of customers whose value is
    strictly worse, score = 1 + floor(5 * w / n). A score s therefore means
    "strictly better than at least (s - 1) * 20% of the customers".

    Ties: equal values take the rank of their first occurrence in the
    worst-to-best sorted order, so ties never split across quintiles and the
    result does not depend on ids or input order. Ties go *down* on purpose:
    real populations have a large block of equal low values (everyone with no
    order in the last 12 months has frequency 0), and a salesperson expects
    that block to score 1, not a middling score borrowed from the customers
    above it.

    No spread (a single customer, or all values equal): everybody gets 3, the
    neutral middle score. There is nothing to rank against, and 1 or 5 would
    wrongly read as "worst" or "best".

    Empty input gives an empty dict.
    """
    if not values:
        return {}
    worse, has_spread = _count_worse(values, higher_is_better)
    if not has_spread:
        return dict.fromkeys(values, NEUTRAL_SCORE)
    n = len(values)
    return {pid: 1 + (5 * w) // n for pid, w in worse.items()}


def rfm_scores(
    stats: Iterable[CustomerStats], today: date
) -> dict[int, tuple[int, int, int, str]]:
    """Recency, frequency and monetary quintile scores, plus the "RFM" code.

    Recency: days since the last order (fewer is better). Frequency:
    orders_12m. Monetary: revenue_12m, net of refunds, so a customer whose
    refunds exceed his purchases has a negative value and simply ranks lowest.
    Each is scored by `quintile_scores`; the code concatenates the three
    digits, e.g. "545". Customers without any order get no entry.

    Returns partner_id -> (r, f, m, code).
    """
    population = _population(stats)
    recency = quintile_scores(
        {s.partner_id: days_since(s.last_order, today) for s in population},
        higher_is_better=False,
    )
    frequency = quintile_scores({s.partner_id: s.orders_12m for s in population})
    monetary = quintile_scores({s.partner_id: s.revenue_12m for s in population})
    result = {}
    for stat in population:
        pid = stat.partner_id
        r, f, m = recency[pid], frequency[pid], monetary[pid]
        result[pid] = (r, f, m, f"{r}{f}{m}")
    return result


def usage_segments(
    stats: Iterable[CustomerStats], params: ScoringParams
) -> dict[int, str]:
    """Split the population into "heavy", "medium" and "low" users.

    With n customers, by revenue_12m:

    * heavy: fewer than heavy_pct% of the customers have a strictly higher
      revenue (better * 100 < n * heavy_pct), and the revenue is above
      low_threshold. Customers tied with the cutoff value are all in, so the
      top customer is always heavy when heavy_pct > 0 (at least one heavy
      customer); when everybody spends the same, everybody is heavy.
    * low: fewer than low_pct% have a strictly lower revenue (ties with the
      cutoff all in), or the revenue is at or below low_threshold.
    * heavy wins when both apply (tiny populations); everyone else is medium.

    The threshold guard on heavy exists because a customer who spent nothing
    (or refunded everything) in 12 months is never a heavy user, even when
    most of the population did the same. Customers without orders get no entry.
    """
    population = _population(stats)
    revenue = {s.partner_id: s.revenue_12m for s in population}
    n = len(revenue)
    better = _count_better(revenue)
    worse, _spread = _count_worse(revenue, higher_is_better=True)
    segments = {}
    for pid, value in revenue.items():
        above_threshold = value > params.low_threshold
        if above_threshold and better[pid] * 100 < n * params.heavy_pct:
            segments[pid] = "heavy"
        elif not above_threshold or worse[pid] * 100 < n * params.low_pct:
            segments[pid] = "low"
        else:
            segments[pid] = "medium"
    return segments


def _lower_counts(values: dict[int, float]) -> dict[int, int]:
    """Per id, how many customers have a strictly lower value."""
    return _count_worse(values, higher_is_better=True)[0]


def _is_high(lower: int, n: int, has_spread: bool, split_pct: float) -> bool:
    """Whether the percentile rank lower / (n - 1) reaches split_pct percent.

    Without spread (one customer, or everybody equal) there is no rank: it is
    taken as 0.5, the middle.
    """
    if n <= 1 or not has_spread:
        return 50.0 >= split_pct
    return lower * 100 >= split_pct * (n - 1)


def _regularity(avg_interval_days: float | None) -> float:
    """1 / (1 + avg interval); 0 for one-time buyers.

    An average of 0 days means all orders were placed on the same day, which
    shows no rhythm either: it scores like a one-time buyer, not the best.
    """
    if avg_interval_days is None or avg_interval_days <= 0:
        return 0.0
    return 1.0 / (1.0 + avg_interval_days)


def _loyalty_rank_sums(population: list[CustomerStats], today: date) -> dict[int, int]:
    """Loyalty score per customer, as an integer sum of three rank counts.

    Each component counts the customers with a strictly lower value (ties
    share the count); dividing the sum by 3 * (n - 1) would give the mean of
    the three percentile ranks in [0, 1]. Integers keep equal scores exactly
    equal, whatever the order of summation.
    """
    frequency = _lower_counts({s.partner_id: s.orders_12m for s in population})
    regularity = _lower_counts(
        {s.partner_id: _regularity(s.avg_interval_days) for s in population}
    )
    tenure = _lower_counts(
        {
            s.partner_id: days_since(s.first_order or s.last_order, today)
            for s in population
        }
    )
    return {pid: frequency[pid] + regularity[pid] + tenure[pid] for pid in frequency}


def quadrants(
    stats: Iterable[CustomerStats], today: date, params: ScoringParams
) -> dict[int, str]:
    """Reinartz & Kumar loyalty x profitability quadrant of each customer.

    Percentile rank, used throughout: p = (customers with a strictly lower
    value) / (n - 1), in [0, 1]; tied customers share the rank of their first
    occurrence, so ties always land on the same side of a split.

    Loyalty axis: loyalty = mean of three percentile ranks,

    * frequency: orders_12m;
    * regularity: 1 / (1 + avg_interval_days), i.e. shorter usual gaps
      between orders are better; one-time buyers (no interval, or all orders
      on one day) get 0;
    * tenure: days since the first order;

    then this loyalty score is itself ranked in the population, so that the
    split is a true population share. Profitability axis: the percentile rank
    of margin_12m; a margin at or below zero is never high profitability,
    however many customers also lose money (otherwise a majority of inactive
    customers at margin 0 would all be "high").

    "High" on an axis: p * 100 >= loyalty_split_pct (resp. profit_split_pct).
    A single customer, or an axis on which all customers are equal, counts as
    p = 0.5, i.e. high with the default 50% splits.

    high loyalty + high profit = "true_friend", low + high = "butterfly",
    high loyalty + low profit = "barnacle", low + low = "stranger".
    """
    population = _population(stats)
    n = len(population)
    loyalty = _loyalty_rank_sums(population, today)
    loyalty_lower, loyalty_spread = _count_worse(loyalty, higher_is_better=True)
    margin = {s.partner_id: s.margin_12m for s in population}
    margin_lower, margin_spread = _count_worse(margin, higher_is_better=True)
    result = {}
    for pid in loyalty:
        loyal = _is_high(
            loyalty_lower[pid], n, loyalty_spread, params.loyalty_split_pct
        )
        profitable = margin[pid] > 0 and _is_high(
            margin_lower[pid], n, margin_spread, params.profit_split_pct
        )
        if loyal:
            result[pid] = "true_friend" if profitable else "barnacle"
        else:
            result[pid] = "butterfly" if profitable else "stranger"
    return result


def expected_interval(
    stat: CustomerStats, company_interval_days: float | None
) -> float:
    """Days between orders this customer is expected to keep.

    His own avg_interval_days when he has one; else (one-time buyer, or all
    orders on the same day) the company's typical interval; else 90 days.
    """
    if stat.avg_interval_days is not None and stat.avg_interval_days > 0:
        return float(stat.avg_interval_days)
    if company_interval_days is not None and company_interval_days > 0:
        return float(company_interval_days)
    return DEFAULT_INTERVAL_DAYS


def churn_risk(
    stat: CustomerStats, today: date, company_interval_days: float | None
) -> int | None:
    """Churn risk 0..100 from how late the customer is on his usual rhythm.

    Formula, with d = days since the last order and e = `expected_interval`:

        ratio = d / e
        overdue = max(0, ratio - 1)
        risk = round(100 * (1 - 0.5 ** overdue))    # = 1 - exp(-ln 2 * overdue)

    So 0 while the customer is on schedule (d <= e), 50 when he is one full
    interval late (d = 2e), 75 at two intervals late, 88 at three, and it
    tends to 100, reached from d >= about 8.64e. It never decreases as d
    grows and stays within 0..100. Halves round up. None for customers with
    no order.
    """
    if not has_orders(stat):
        return None
    return _churn_risk(
        days_since(stat.last_order, today),
        expected_interval(stat, company_interval_days),
    )


def _churn_risk(days: int, expected: float) -> int:
    """`churn_risk` of a customer `days` after his last order, expecting one
    every `expected` days."""
    # (Plain comparisons rather than min/max: this runs for every customer.)
    overdue = days / expected - 1.0
    if overdue <= 0.0:
        return 0  # on schedule: 0.5 ** 0 leaves no risk
    remaining = 0.5 ** (overdue / CHURN_HALF_LIFE_INTERVALS)
    risk = math.floor(100.0 * (1.0 - remaining) + 0.5)
    return 100 if risk > 100 else risk


def clv(stat: CustomerStats, churn: int | None, params: ScoringParams) -> float | None:
    """Customer lifetime value: expected future margin, in company currency.

    Formula:

        aov = revenue_12m / orders_12m, or revenue_total / orders_total when
              there was no order in the last 12 months
        frequency = max(1, orders_12m) orders per year (a lapsed customer
              who comes back is assumed to buy at least once a year; his
              churn risk shrinks the lifetime below instead)
        margin_rate = margin_12m / revenue_12m clamped to [0, 1], or
              default_margin_pct / 100 when revenue_12m <= 0
        retention r = 1 - churn / 100 (yearly retention probability)
        lifetime = min(clv_horizon_cap_years, r / (1 - r)) years, i.e. the
              expected number of further years retained, and the cap when
              r = 1
        clv = max(0, aov * frequency * margin_rate * lifetime), rounded to
              cents

    A customer at churn risk 100 is worth 0; one at 50 is worth one year of
    margin. Never negative (refunds larger than purchases give 0). None for
    customers with no order, or when no churn risk is given.
    """
    if not has_orders(stat) or churn is None:
        return None
    return _clv(
        stat.orders_12m,
        stat.revenue_12m,
        stat.margin_12m,
        stat.orders_total,
        stat.revenue_total,
        churn,
        params,
    )


def _clv(
    orders_12m, revenue_12m, margin_12m, orders_total, revenue_total, churn, params
):
    """`clv` from the customer's figures (orders_total > 0)."""
    # (Plain comparisons rather than min/max: this runs for every customer.)
    if churn >= 100:
        return 0.0  # no lifetime left
    if orders_12m > 0:
        aov = revenue_12m / orders_12m
        frequency = orders_12m
    else:
        aov = revenue_total / orders_total
        frequency = 1
    if revenue_12m > 0:
        margin_rate = margin_12m / revenue_12m
        if margin_rate < 0.0:
            margin_rate = 0.0
        elif margin_rate > 1.0:
            margin_rate = 1.0
    else:
        margin_rate = params.default_margin_pct / 100.0
    retention = 1.0 - (churn if churn > 0 else 0) / 100.0
    cap = params.clv_horizon_cap_years
    lifetime = cap if retention >= 1.0 else retention / (1.0 - retention)
    if lifetime > cap:
        lifetime = cap
    value = aov * frequency * margin_rate * lifetime
    return round(value, 2) if value > 0.0 else 0.0


def score_customers(
    stats: list[CustomerStats], today: date, params: ScoringParams
) -> dict[int, dict]:
    """All scores of every customer with orders, keyed by partner id.

    Each value is the dict of partner field values: mlm_recency_score,
    mlm_frequency_score, mlm_monetary_score, mlm_rfm_code, mlm_usage_segment,
    mlm_quadrant, mlm_churn_risk, mlm_clv. Customers without orders are left
    out. O(n log n) overall. A partner id appearing twice is a caller bug and
    raises ValueError (the aggregates would be silently halved otherwise).
    """
    population = _population(stats)
    ids = [s.partner_id for s in population]
    if len(set(ids)) != len(ids):
        raise ValueError("score_customers: duplicate partner_id in stats")
    rfm = rfm_scores(population, today)
    usage = usage_segments(population, params)
    quadrant = quadrants(population, today, params)
    result = {}
    for stat in population:
        pid = stat.partner_id
        r, f, m, code = rfm[pid]
        churn = churn_risk(stat, today, params.company_interval_days)
        result[pid] = {
            "mlm_recency_score": r,
            "mlm_frequency_score": f,
            "mlm_monetary_score": m,
            "mlm_rfm_code": code,
            "mlm_usage_segment": usage[pid],
            "mlm_quadrant": quadrant[pid],
            "mlm_churn_risk": churn,
            "mlm_clv": clv(stat, churn, params),
        }
    return result


# ---------------------------------------------------------------------------
# Company interval and scoring against a stored reference (incremental runs)
# ---------------------------------------------------------------------------
#
# A full run scores the whole population at once. An incremental run only has
# the few customers whose orders changed; it scores them against the
# population of the last full run, summarised by `build_reference` into a
# small JSON-able dict of cut points. `score_with_reference` then gives every
# customer of that population exactly the scores `score_customers` gave him
# (same stats, same day): the cut points reproduce each rank test.
#
# Time-relative values (days since the last and the first order) are measured
# as of the reference day, so the population does not need to be aged; the
# 12-month windows, churn risk and CLV use the day of the incremental run.


def company_interval(stats: Iterable[CustomerStats]) -> float | None:
    """The company's typical days between orders: the median avg_interval_days
    of its repeat customers (an interval above 0); None without any.

    Used as the expected interval of one-time buyers (see `expected_interval`).
    """
    return _median_interval(s.avg_interval_days for s in _population(stats))


def _median_interval(intervals: Iterable[float | None]) -> float | None:
    """Median of the intervals above 0 (repeat customers); None without any."""
    intervals = sorted(i for i in intervals if i is not None and i > 0)
    if not intervals:
        return None
    middle = len(intervals) // 2
    if len(intervals) % 2:
        return float(intervals[middle])
    return (intervals[middle - 1] + intervals[middle]) / 2.0


def _quintile_cuts(values: list[float], higher_is_better: bool) -> dict:
    """Cut values reproducing `quintile_scores` for any value.

    Score >= s  <=>  5 * w >= (s - 1) * n  <=>  w >= k_s = ceil((s - 1) n / 5),
    w being the number of strictly worse customers; w >= k is "strictly better
    than the k-th worst value", so one cut value per score 2..5.
    """
    return _quintile_cuts_sorted(sorted(values), higher_is_better)


def _quintile_cuts_sorted(ordered: list, higher_is_better: bool) -> dict:
    n = len(ordered)
    if not n or ordered[0] == ordered[-1]:
        return {"spread": False, "cuts": []}
    ks = [-((-(s - 1) * n) // 5) for s in range(2, 6)]
    if higher_is_better:
        cuts = [ordered[k - 1] for k in ks]
    else:
        cuts = [ordered[n - k] for k in ks]
    return {"spread": True, "cuts": cuts}


def _quintile_from_cuts(value: float, ref: dict, higher_is_better: bool) -> int:
    if not ref["spread"]:
        return NEUTRAL_SCORE
    if higher_is_better:
        return 1 + sum(1 for cut in ref["cuts"] if value > cut)
    return 1 + sum(1 for cut in ref["cuts"] if value < cut)


def _largest_below(n: int, pct: float) -> int:
    """Largest b in -1..n-1 with b * 100 < n * pct (the rank tests' bound)."""
    b = min(n - 1, max(-1, math.ceil(n * pct / 100.0) - 1))
    while b + 1 <= n - 1 and (b + 1) * 100 < n * pct:
        b += 1
    while b >= 0 and not b * 100 < n * pct:
        b -= 1
    return b


def _segment_cuts(values: list[float], params: ScoringParams) -> dict:
    """Cut values reproducing the percentile tests of `usage_segments`.

    heavy: better * 100 < n * heavy_pct  <=>  better <= B  <=>  v >= the
    (n - B)-th value; low: worse * 100 < n * low_pct  <=>  worse <= L  <=>
    v <= the (L + 1)-th value. None: the test never passes.
    """
    return _segment_cuts_sorted(sorted(values), params)


def _segment_cuts_sorted(ordered: list, params: ScoringParams) -> dict:
    n = len(ordered)
    heavy_b = _largest_below(n, params.heavy_pct)
    low_l = _largest_below(n, params.low_pct)
    return {
        "heavy_cut": ordered[n - 1 - heavy_b] if heavy_b >= 0 else None,
        "low_cut": ordered[low_l] if low_l >= 0 else None,
    }


def _high_cut(values: list[float], split_pct: float) -> dict:
    """Reproduce `_is_high` on the percentile rank for any value.

    Without spread the answer is the same for everybody ("const"). Otherwise
    high <=> lower * 100 >= split * (n - 1) <=> lower >= K <=> v > the K-th
    smallest value; K = 0 means everybody ("cut" None).
    """
    return _high_cut_sorted(sorted(values), split_pct)


def _high_cut_sorted(ordered: list, split_pct: float) -> dict:
    n = len(ordered)
    if n <= 1 or ordered[0] == ordered[-1]:
        return {"const": 50.0 >= split_pct, "cut": None}
    k = max(0, math.ceil(split_pct * (n - 1) / 100.0) - 1)
    while not k * 100 >= split_pct * (n - 1):
        k += 1
    while k > 0 and (k - 1) * 100 >= split_pct * (n - 1):
        k -= 1
    return {"const": None, "cut": ordered[k - 1] if k > 0 else None}


def _is_high_from_cut(value: float, ref: dict) -> bool:
    if ref["const"] is not None:
        return ref["const"]
    return ref["cut"] is None or value > ref["cut"]


def _lower_table(values: list[float]) -> dict:
    """Sorted distinct values and, for each, how many values are strictly lower."""
    return _lower_table_sorted(sorted(values))


def _lower_table_sorted(ordered: list, lower: dict | None = None) -> dict:
    """`_lower_table` of a sorted list; `lower`: its `_first_index`, if known."""
    if lower is None:
        lower = _first_index(ordered)
    # _first_index holds the distinct values from the highest down.
    distinct = list(lower)
    distinct.reverse()
    return {
        "values": distinct,
        "lower": [lower[value] for value in distinct],
        "n": len(ordered),
    }


def _lower_from_table(value: float, table: dict) -> int:
    """How many population values are strictly lower than `value`."""
    index = bisect_left(table["values"], value)
    return table["lower"][index] if index < len(table["values"]) else table["n"]


def _loyalty_components(stat: CustomerStats, today: date) -> tuple[int, float, int]:
    return (
        stat.orders_12m,
        _regularity(stat.avg_interval_days),
        days_since(stat.first_order or stat.last_order, today),
    )


def build_reference(
    stats: Iterable[CustomerStats], today: date, params: ScoringParams
) -> dict:
    """Summary of a full run's population, JSON-able, for `score_with_reference`.

    Holds the cut points of every rank test (RFM quintiles, segment
    percentiles, the two quadrant axes), the distributions of the three
    loyalty components (distinct values and lower counts: small, they are
    integers but for regularity), the company interval and the day. Its size
    grows with the number of distinct values, not of customers, except for
    regularity (at most one value per distinct average interval).
    """
    population = _population(stats)
    n = len(population)
    loyalty = _loyalty_rank_sums(population, today)
    components = [_loyalty_components(s, today) for s in population]
    return {
        "date": today.isoformat(),
        "n": n,
        "company_interval_days": params.company_interval_days,
        "recency": _quintile_cuts(
            [days_since(s.last_order, today) for s in population], False
        ),
        "frequency": _quintile_cuts([s.orders_12m for s in population], True),
        "monetary": _quintile_cuts([s.revenue_12m for s in population], True),
        "segments": _segment_cuts([s.revenue_12m for s in population], params),
        "loyalty_frequency": _lower_table([c[0] for c in components]),
        "loyalty_regularity": _lower_table([c[1] for c in components]),
        "loyalty_tenure": _lower_table([c[2] for c in components]),
        "loyalty": _high_cut(list(loyalty.values()), params.loyalty_split_pct),
        "margin": _high_cut(
            [s.margin_12m for s in population], params.profit_split_pct
        ),
    }


def score_with_reference(
    stats: Iterable[CustomerStats], today: date, params: ScoringParams, reference: dict
) -> dict[int, dict]:
    """Scores of a few customers against a full run's `build_reference`.

    Same keys and values as `score_customers`; for a customer of the reference
    population with unchanged stats, scored on the reference day, exactly the
    same values. Customers without orders are left out. `params` gives the
    low threshold and the CLV settings; the percentile cut points and the
    company interval come from the reference. O(k log n) for k customers.
    """
    ref_day = date.fromisoformat(reference["date"])
    interval = reference["company_interval_days"]
    result = {}
    for stat in _population(stats):
        days = days_since(stat.last_order, ref_day)
        r = _quintile_from_cuts(days, reference["recency"], False)
        f = _quintile_from_cuts(stat.orders_12m, reference["frequency"], True)
        m = _quintile_from_cuts(stat.revenue_12m, reference["monetary"], True)
        revenue = stat.revenue_12m
        above_threshold = revenue > params.low_threshold
        heavy_cut = reference["segments"]["heavy_cut"]
        low_cut = reference["segments"]["low_cut"]
        if above_threshold and heavy_cut is not None and revenue >= heavy_cut:
            segment = "heavy"
        elif not above_threshold or (low_cut is not None and revenue <= low_cut):
            segment = "low"
        else:
            segment = "medium"
        frequency, regularity, tenure = _loyalty_components(stat, ref_day)
        loyalty = (
            _lower_from_table(frequency, reference["loyalty_frequency"])
            + _lower_from_table(regularity, reference["loyalty_regularity"])
            + _lower_from_table(tenure, reference["loyalty_tenure"])
        )
        loyal = _is_high_from_cut(loyalty, reference["loyalty"])
        profitable = stat.margin_12m > 0 and _is_high_from_cut(
            stat.margin_12m, reference["margin"]
        )
        if loyal:
            quadrant = "true_friend" if profitable else "barnacle"
        else:
            quadrant = "butterfly" if profitable else "stranger"
        churn = churn_risk(stat, today, interval)
        result[stat.partner_id] = {
            "mlm_recency_score": r,
            "mlm_frequency_score": f,
            "mlm_monetary_score": m,
            "mlm_rfm_code": f"{r}{f}{m}",
            "mlm_usage_segment": segment,
            "mlm_quadrant": quadrant,
            "mlm_churn_risk": churn,
            "mlm_clv": clv(stat, churn, params),
        }
    return result


# ---------------------------------------------------------------------------
# The whole population at once, in columns (the nightly full run)
# ---------------------------------------------------------------------------
#
# `score_population` gives exactly what `score_customers` and `build_reference`
# give for the same customers (tests/test_scoring_population.py compares them
# on random populations full of ties), in one pass: each value is sorted once
# and serves both the scores and the cut points, ranks are looked up per
# distinct value, and no per-customer object is built. At 100,000 customers
# this is what keeps the scoring a fraction of the SQL aggregation.

# The order of the values in a score tuple (`score_population`), i.e. the
# keys of a `score_customers` entry.
SCORE_KEYS = (
    "mlm_recency_score",
    "mlm_frequency_score",
    "mlm_monetary_score",
    "mlm_rfm_code",
    "mlm_usage_segment",
    "mlm_quadrant",
    "mlm_churn_risk",
    "mlm_clv",
)


@dataclass(frozen=True, slots=True)
class Population:
    """The scored customers as columns: item i of every list is customer i.

    Every customer has at least one order (orders_total > 0). Days are whole
    days from the first / last order to the scoring date, as they are: an
    order dated after it gives a negative number (`days_since` clamps them).
    The other columns mean what the `CustomerStats` fields of the same name
    mean.
    """

    partner_ids: list[int]
    first_order_days: list[int]
    last_order_days: list[int]
    orders_12m: list[int]
    revenue_12m: list[float]
    margin_12m: list[float]
    orders_total: list[int]
    revenue_total: list[float]
    avg_interval_days: list[float | None]


def population_from_stats(stats: Iterable[CustomerStats], today: date) -> Population:
    """The customers of `stats` with orders, as a `Population` scored on `today`."""
    population = _population(stats)
    return Population(
        partner_ids=[s.partner_id for s in population],
        first_order_days=[
            (today - (s.first_order or s.last_order)).days for s in population
        ],
        last_order_days=[(today - s.last_order).days for s in population],
        orders_12m=[s.orders_12m for s in population],
        revenue_12m=[s.revenue_12m for s in population],
        margin_12m=[s.margin_12m for s in population],
        orders_total=[s.orders_total for s in population],
        revenue_total=[s.revenue_total for s in population],
        avg_interval_days=[s.avg_interval_days for s in population],
    )


def population_interval(population: Population) -> float | None:
    """`company_interval` of a `Population`."""
    return _median_interval(population.avg_interval_days)


def _higher_counts(ordered: list) -> dict:
    """For each distinct value of the sorted list, how many are strictly higher."""
    n = len(ordered)
    return {value: n - end for value, end in _end_index(ordered).items()}


def _quintile_of(worse: dict, n: int) -> dict:
    """`quintile_scores` per distinct value (see there), from the counts of
    strictly worse values."""
    if len(worse) == 1:
        return dict.fromkeys(worse, NEUTRAL_SCORE)
    return {value: 1 + (5 * w) // n for value, w in worse.items()}


# "543" for (5, 4, 3), looked up rather than formatted for every customer.
RFM_CODES = {
    (r, f, m): f"{r}{f}{m}"
    for r in range(1, 6)
    for f in range(1, 6)
    for m in range(1, 6)
}


def _quintiles_from_cuts(values: list, ref: dict) -> list[int]:
    """`_quintile_from_cuts` (higher is better) of every value: 1 plus the
    number of cuts the value is above."""
    if not ref["spread"]:
        return [NEUTRAL_SCORE] * len(values)
    c2, c3, c4, c5 = ref["cuts"]
    return [1 + (v > c2) + (v > c3) + (v > c4) + (v > c5) for v in values]


def _segments_from_cuts(revenue: list, ref: dict, params: ScoringParams) -> list:
    """The usage segment of every 12-month revenue, from the run's cut
    points (see score_with_reference)."""
    low_threshold = params.low_threshold
    heavy_cut, low_cut = ref["heavy_cut"], ref["low_cut"]
    return [
        "heavy"
        if r12 > low_threshold and heavy_cut is not None and r12 >= heavy_cut
        else "low"
        if r12 <= low_threshold or (low_cut is not None and r12 <= low_cut)
        else "medium"
        for r12 in revenue
    ]


def _high_from_cut(values: list, ref: dict) -> list[bool]:
    """`_is_high_from_cut` of every value."""
    if ref["const"] is not None:
        return [ref["const"]] * len(values)
    cut = ref["cut"]
    if cut is None:
        return [True] * len(values)
    return [v > cut for v in values]


def score_population(
    population: Population,
    today: date,
    params: ScoringParams,
    churn_and_clv: bool = True,
) -> tuple[list[tuple], dict]:
    """Scores of every customer of `population`, and the run's reference.

    Returns (scores, reference): scores[i] is the tuple of customer i's values
    in `SCORE_KEYS` order; see `score_population_columns`.
    """
    columns, reference = score_population_columns(
        population, today, params, churn_and_clv
    )
    n = len(population.partner_ids)
    columns = [repeat(None, n) if column is None else column for column in columns]
    return list(zip(*columns, strict=True)), reference


def score_population_columns(
    population: Population,
    today: date,
    params: ScoringParams,
    churn_and_clv: bool = True,
) -> tuple[list[list | None], dict]:
    """Scores of every customer of `population` as columns, and the run's
    reference.

    Returns (columns, reference): one list per key of `SCORE_KEYS`, item i
    being customer i's value, i.e. the values `score_customers` gives him
    (with churn_and_clv=False, the churn risk and CLV columns are None: the
    nightly job takes them from the churn and CLV model, clv_model.py). The
    nightly job keeps them as columns and makes tuples for one batch of
    customers at a time (a tuple per customer is most of the memory);
    reference is what `build_reference` gives for the same population. The
    percentile tests of the segments and quadrants use the reference's cut
    points, which reproduce them exactly (see `score_with_reference`). A
    partner id appearing twice, or a customer without orders, is a caller bug
    and raises ValueError.
    """
    ids = population.partner_ids
    n = len(ids)
    if len(set(ids)) != n:
        raise ValueError("score_population: duplicate partner_id")
    if any(total <= 0 for total in population.orders_total):
        raise ValueError("score_population: customer without orders")
    if not n:
        return [[] for _key in SCORE_KEYS], build_reference([], today, params)
    frequency = population.orders_12m
    revenue = population.revenue_12m
    margin = population.margin_12m
    # Each column is sorted, read for its cut points and rank counts, and
    # let go before the next one is sorted: at a million customers a sorted
    # copy takes tens of MB.
    # RFM (quintile_scores): fewer days since the last order is better.
    recency = [days if days > 0 else 0 for days in population.last_order_days]
    ordered = sorted(recency)
    r_of = _quintile_of(_higher_counts(ordered), n)
    recency_cuts = _quintile_cuts_sorted(ordered, False)
    ordered = sorted(frequency)
    f_lower = _first_index(ordered)
    f_of = _quintile_of(f_lower, n)
    frequency_cuts = _quintile_cuts_sorted(ordered, True)
    loyalty_frequency = _lower_table_sorted(ordered, f_lower)
    ordered = sorted(revenue)
    monetary_cuts = _quintile_cuts_sorted(ordered, True)
    segment_cuts = _segment_cuts_sorted(ordered, params)
    ordered = sorted(margin)
    margin_cut = _high_cut_sorted(ordered, params.profit_split_pct)
    # Loyalty (quadrants): the sum of three rank counts.
    regularity = [_regularity(v) for v in population.avg_interval_days]
    ordered = sorted(regularity)
    reg_lower = _first_index(ordered)
    loyalty_regularity = _lower_table_sorted(ordered, reg_lower)
    tenure = [days if days > 0 else 0 for days in population.first_order_days]
    ordered = sorted(tenure)
    ten_lower = _first_index(ordered)
    loyalty_tenure = _lower_table_sorted(ordered, ten_lower)
    ordered = None
    loyalty = [
        f_lower[f] + reg_lower[g] + ten_lower[t]
        for f, g, t in zip(frequency, regularity, tenure, strict=True)
    ]
    del regularity, tenure
    reference = {
        "date": today.isoformat(),
        "n": n,
        "company_interval_days": params.company_interval_days,
        "recency": recency_cuts,
        "frequency": frequency_cuts,
        "monetary": monetary_cuts,
        "segments": segment_cuts,
        "loyalty_frequency": loyalty_frequency,
        "loyalty_regularity": loyalty_regularity,
        "loyalty_tenure": loyalty_tenure,
        "loyalty": _high_cut_sorted(sorted(loyalty), params.loyalty_split_pct),
        "margin": margin_cut,
    }

    # Each score is a column, built in one comprehension; the customers'
    # tuples are zipped from them at the end (much cheaper than one loop
    # appending a tuple per customer).
    recency_scores = [r_of[days] for days in recency]
    frequency_scores = [f_of[o12] for o12 in frequency]
    monetary_scores = _quintiles_from_cuts(revenue, reference["monetary"])
    codes = [
        RFM_CODES[key]
        for key in zip(recency_scores, frequency_scores, monetary_scores, strict=True)
    ]
    # Segments and quadrants from the cut points, as score_with_reference
    # tests them (a value against one or two cuts per customer).
    segments = _segments_from_cuts(revenue, reference["segments"], params)
    loyal = _high_from_cut(loyalty, reference["loyalty"])
    profitable = _high_from_cut(margin, reference["margin"])
    quadrant_of = {
        (True, True): "true_friend",
        (True, False): "barnacle",
        (False, True): "butterfly",
        (False, False): "stranger",
    }
    quadrant_list = [
        quadrant_of[is_loyal, m12 > 0 and is_profitable]
        for is_loyal, m12, is_profitable in zip(loyal, margin, profitable, strict=True)
    ]
    if churn_and_clv:
        # Churn risk and CLV (churn_risk, clv), per customer.
        company_days = params.company_interval_days
        default_expected = (
            float(company_days)
            if company_days is not None and company_days > 0
            else DEFAULT_INTERVAL_DAYS
        )
        churn = [
            _churn_risk(
                days,
                float(interval)
                if interval is not None and interval > 0
                else default_expected,
            )
            for days, interval in zip(
                recency, population.avg_interval_days, strict=True
            )
        ]
        clv = [
            _clv(o12, r12, m12, total, rtotal, risk, params)
            for o12, r12, m12, total, rtotal, risk in zip(
                frequency,
                revenue,
                margin,
                population.orders_total,
                population.revenue_total,
                churn,
                strict=True,
            )
        ]
    else:
        churn = clv = None
    columns = [
        recency_scores,
        frequency_scores,
        monetary_scores,
        codes,
        segments,
        quadrant_list,
        churn,
        clv,
    ]
    return columns, reference
