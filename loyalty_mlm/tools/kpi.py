"""Programme KPIs: the definitions the cockpit, the snapshots and the goals share.

Pure standard-library functions (no `odoo` import). The ORM side reads one
company's rows with a few set-based queries and hands them to these
functions; the functions say what each figure means, so the nightly
snapshot, the backfill, the cockpit and the digest can never disagree.

Conventions shared by every function here:

* **One company per call.** Inputs are already filtered on one company and
  amounts are in its currency; the functions never mix companies.
* **Local dates.** Every date is a calendar day in the company's time zone.
  The caller converts stored UTC datetimes with `local_date`, or better,
  converts a period's boundaries once with `Period.utc_bounds` and filters
  the datetime column on that range (index-friendly, no per-row conversion).
* **Periods are half-open:** `start` is the first day (included), `stop` the
  day after the last one (excluded); `last_day` is the last day included.
* **Qualifying orders** are confirmed sale orders and paid POS orders (the
  scores' and the lifecycle's definition). Refunds (POS refunds, posted
  credit notes) are not orders: they never count as an order nor make a
  customer active, but their (negative) amount lowers the revenue of the
  period they are dated in, like in the accounts. A period's net revenue can
  therefore be negative; it is reported as it is, never clamped.
* **Undefined is None, not 0.** A rate whose denominator is zero (retention
  when nobody ordered in the previous period, an average without orders) is
  None: "no data" must not read as "0%".
* **Rates are fractions** (0.25 is 25%); the user interface formats them.
  Rate functions return a `Ratio` (numerator, denominator) and the customer
  KPIs all come from `CustomerTotals`, plain counts and sums: a snapshot per
  stage / segment / tier stores those, and a pivot adds them up before
  dividing (a mean of rates is not the rate of the sums).

Input records and the SQL that produces them (per company; at 1,000,000
orders one pass over the orders of the last two years, grouped by customer):

* `CustomerPeriod`: one row per customer and period, for P, the previous
  period and the same period last year in one query: the orders joined to
  a `VALUES` list of the three windows, grouped by window and customer,
  with a `COUNT`/`SUM ... FILTER (WHERE ...)` per column (sketch in the
  class); members without any order in the windows are added from their
  cards, so they still count as members. Walk-in orders (no customer) form one
  row with customer_id None: revenue and orders, but never a customer.
* `LedgerTotal`: one row per ledger kind, credits and debits summed apart,
  over the rolling 12 months (`GROUP BY kind`).
* Outstanding points: the positive card balances at the period's end
  (`SUM(GREATEST(balance, 0))`; for a past period, each card's ledger sum up
  to that end, which `card.points == sum(ledger)` makes the same thing).
* `StageMove`: the stage-history rows (those dated in P are used).
* Per-customer CLV: the score table's column, as it is.

`Order` and `aggregate_orders` are the reference for `CustomerPeriod`: tests
build rows from orders with them, and the Odoo tests can compare the SQL's
rows with them on real orders.
"""

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .lifecycle import STAGES

# "Active" means at least one qualifying order in the ACTIVE_DAYS days that
# end with the day looked at (that day included).
ACTIVE_DAYS = 90

PERIOD_KINDS = ("week", "month", "quarter", "year", "custom")

# Ledger kinds that credit points for something the member did or received;
# a negative entry of these kinds lowers the points earned.
EARN_KINDS = (
    "earn",
    "tier_bonus",
    "campaign_bonus",
    "welcome",
    "birthday",
    "referral",
    "treatment",
)
# Ledger kinds that spend points: redeemed for a reward or given to charity.
SPEND_KINDS = ("redeem", "donation")

# Which way is good, per KPI: +1 higher is better, -1 lower is better, 0 no
# direction (a size, not a performance). The cockpit colours changes with it;
# a goal whose target equals its baseline uses it to know what "reached" is.
KPI_DIRECTION = {
    "members_total": 1,
    "members_new": 1,
    "members_active": 1,
    "active_customers": 1,
    "participation_rate": 1,
    "member_revenue_share": 1,
    "retention_rate": 1,
    "repeat_purchase_rate": 1,
    "aov_members": 1,
    "aov_non_members": 1,
    "average_clv": 1,
    "redemption_rate": 1,
    "breakage_rate": -1,
    "points_liability": 0,
    "churned": -1,
    "won_back": 1,
}
KPIS = tuple(KPI_DIRECTION)

GOAL_STATUSES = ("on_track", "at_risk", "achieved", "missed")


# ---------------------------------------------------------------------------
# Dates and periods
# ---------------------------------------------------------------------------


def _tz(tz_name: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"Unknown time zone {tz_name!r}") from error


def local_date(moment: datetime, tz_name: str) -> date:
    """The calendar day `moment` falls on in the time zone `tz_name`.

    A naive datetime is taken as UTC (Odoo stores datetimes as naive UTC);
    an aware one is converted from its own zone. An unknown zone name raises
    ValueError rather than silently using UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_tz(tz_name)).date()


def utc_start_of_day(day: date, tz_name: str) -> datetime:
    """Naive UTC datetime of the first instant of the local `day`.

    Comparing a stored UTC datetime with it (`>=` start of the first day,
    `<` start of the day after the last) selects exactly the local days,
    summer and winter time included. Local midnight with fold=0 is that
    first instant also where clocks change around midnight: a midnight that
    happens twice gives the first one, a skipped midnight gives the moment
    of the change, and a skipped day starts (and ends) where the next begins.
    """
    local = datetime.combine(day, time.min, tzinfo=_tz(tz_name))
    return local.astimezone(UTC).replace(tzinfo=None)


def shift_years(day: date, years: int) -> date:
    """The same day `years` years later (earlier when negative).

    29 February becomes 28 February in a year without it, as the birthday
    bonus does: the day stays in its month.
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


@dataclass(frozen=True, slots=True)
class Period:
    """A range of local days: `start` included, `stop` excluded.

    Build one with `week`, `month`, `quarter`, `year`, `custom` or
    `containing`; `kind` decides what "previous" and "last year" mean.
    """

    start: date
    stop: date
    kind: str = "custom"

    def __post_init__(self):
        if self.kind not in PERIOD_KINDS:
            raise ValueError(f"Unknown period kind {self.kind!r}")
        if self.stop <= self.start:
            raise ValueError("A period needs at least one day (stop after start).")

    # -- constructors -------------------------------------------------------

    @classmethod
    def week(cls, day: date) -> "Period":
        """The ISO week (Monday to Sunday) that contains `day`."""
        monday = day - timedelta(days=day.weekday())
        return cls(monday, monday + timedelta(days=7), "week")

    @classmethod
    def month(cls, year: int, month: int) -> "Period":
        if not 1 <= month <= 12:
            raise ValueError(f"Month must be 1..12, got {month!r}")
        next_year, next_month = _add_months(year, month, 1)
        return cls(date(year, month, 1), date(next_year, next_month, 1), "month")

    @classmethod
    def quarter(cls, year: int, quarter: int) -> "Period":
        if not 1 <= quarter <= 4:
            raise ValueError(f"Quarter must be 1..4, got {quarter!r}")
        first_month = 3 * (quarter - 1) + 1
        next_year, next_month = _add_months(year, first_month, 3)
        return cls(
            date(year, first_month, 1), date(next_year, next_month, 1), "quarter"
        )

    @classmethod
    def year(cls, year: int) -> "Period":
        return cls(date(year, 1, 1), date(year + 1, 1, 1), "year")

    @classmethod
    def custom(cls, first_day: date, last_day: date) -> "Period":
        """From `first_day` to `last_day`, both included (as a user picks them)."""
        if last_day < first_day:
            raise ValueError("The last day of a period cannot be before its first.")
        return cls(first_day, last_day + timedelta(days=1), "custom")

    @classmethod
    def containing(cls, day: date, kind: str) -> "Period":
        """The week, month, quarter or year that contains `day`."""
        if kind == "week":
            return cls.week(day)
        if kind == "month":
            return cls.month(day.year, day.month)
        if kind == "quarter":
            return cls.quarter(day.year, (day.month - 1) // 3 + 1)
        if kind == "year":
            return cls.year(day.year)
        raise ValueError(f"No calendar period of kind {kind!r}")

    # -- properties ---------------------------------------------------------

    @property
    def last_day(self) -> date:
        return self.stop - timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.stop - self.start).days

    def contains(self, day: date) -> bool:
        return self.start <= day < self.stop

    # -- related periods ----------------------------------------------------

    def previous(self) -> "Period":
        """The period just before: the previous week, month, quarter or year;
        for a custom period, as many days ending the day before it starts."""
        if self.kind == "week":
            return Period.week(self.start - timedelta(days=7))
        if self.kind in ("month", "quarter", "year"):
            return Period.containing(self.start - timedelta(days=1), self.kind)
        return Period(self.start - timedelta(days=self.days), self.start, "custom")

    def same_period_last_year(self) -> "Period":
        """The matching period one year earlier.

        Month, quarter, year: the same calendar unit (February 2024 gives
        February 2023, 28 days). Week: 52 weeks earlier (364 days), so
        weekdays line up (a Saturday is compared with a Saturday). Custom:
        both ends one year earlier, 29 February becoming 28 February.
        """
        if self.kind == "week":
            return Period.week(self.start - timedelta(days=364))
        if self.kind in ("month", "quarter", "year"):
            return Period.containing(shift_years(self.start, -1), self.kind)
        return Period.custom(
            shift_years(self.start, -1), shift_years(self.last_day, -1)
        )

    def trailing_year(self) -> "Period":
        """The 12 months ending with this period's last day (custom period)."""
        return Period(shift_years(self.stop, -1), self.stop, "custom")

    def trailing_days(self, days: int) -> "Period":
        """The `days` days ending with this period's last day (custom period)."""
        if days < 1:
            raise ValueError("A trailing window needs at least one day.")
        return Period(self.stop - timedelta(days=days), self.stop, "custom")

    def utc_bounds(self, tz_name: str) -> tuple[datetime, datetime]:
        """Naive UTC datetimes (start, stop) for `start <= column < stop`."""
        return (
            utc_start_of_day(self.start, tz_name),
            utc_start_of_day(self.stop, tz_name),
        )


# ---------------------------------------------------------------------------
# Input records
# ---------------------------------------------------------------------------


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def _finite_sum(values: Iterable[float], name: str) -> float:
    """Exact sum that refuses NaN and infinities: one check on the total
    instead of one per value (a NaN or an infinity always spoils the sum)."""
    try:
        total = math.fsum(values)
    except (OverflowError, ValueError) as error:  # fsum's "-inf + inf", ...
        raise ValueError(f"{name} must be finite numbers") from error
    return _finite(total, name)


@dataclass(frozen=True, slots=True)
class Order:
    """One qualifying order or refund of one company (the reference record).

    customer_id: commercial partner; None for a walk-in (anonymous) order.
    day: local date of the order (confirmation / POS order date).
    amount: signed net amount in company currency, untaxed; refunds negative.
    is_refund: a POS refund or credit note: lowers revenue, is not an order.
    """

    customer_id: int | None
    day: date
    amount: float
    is_refund: bool = False

    def __post_init__(self):
        _finite(self.amount, "amount")


class CustomerPeriod(NamedTuple):
    """One customer's activity as seen from one period P (one SQL row).

    A NamedTuple, not a dataclass: the caller builds 100,000 of them a night
    straight from the cursor (`CustomerPeriod._make(row)`), at tuple speed.
    `customer_totals` checks what it sums (finite amounts).

    member_since: day the customer became a member; None if he is not one.
    orders, revenue: qualifying orders and net revenue dated in P.
    member_orders, member_revenue: the part of those dated on or after
        member_since (bought as a member); refunds the same way.
    orders_prev: qualifying orders in the period before P (retention).
    orders_12m: qualifying orders in the 12 months ending with P's last day.
    last_order: last qualifying order in those 12 months (None if none):
        only whether it falls in the last ACTIVE_DAYS days is ever used.
    A customer_id of None is the walk-in row: revenue, never a customer.

    One set-based query gives these rows for several periods at once (sketch;
    every boundary is a local midnight turned into UTC with `utc_bounds`, so
    the datetime column is compared as stored, on its index):

        SELECT w.key, o.partner_id, m.member_since,
               COUNT(*) FILTER (WHERE NOT o.refund AND o.at >= w.start
                                AND o.at < w.stop) AS orders,
               SUM(o.amount) FILTER (WHERE o.at >= w.start
                                     AND o.at < w.stop) AS revenue,
               -- member_orders, member_revenue: the same AND o.at >= the
               -- UTC instant of member_since's local midnight
               COUNT(*) FILTER (WHERE NOT o.refund AND o.at >= w.prev_start
                                AND o.at < w.start) AS orders_prev,
               COUNT(*) FILTER (WHERE NOT o.refund
                                AND o.at >= w.year_start) AS orders_12m,
               MAX(o.at) FILTER (WHERE NOT o.refund
                                 AND o.at >= w.year_start) AS last_order
          FROM (VALUES ...) AS w(key, start, stop, prev_start, year_start)
          JOIN orders o ON o.at >= LEAST(w.prev_start, w.year_start)
                       AND o.at < w.stop
          LEFT JOIN members m ON m.partner_id = o.partner_id
         GROUP BY w.key, o.partner_id, m.member_since

    (plus the members without orders; last_order converted to a local date.)
    """

    customer_id: int | None
    member_since: date | None = None
    orders: int = 0
    revenue: float = 0.0
    member_orders: int = 0
    member_revenue: float = 0.0
    orders_prev: int = 0
    orders_12m: int = 0
    last_order: date | None = None


@dataclass(frozen=True, slots=True)
class LedgerTotal:
    """Sums of one ledger kind over a window.

    credit: total of the positive entries (>= 0); debit: total of the
    negative entries, as a positive number (>= 0).
    """

    kind: str
    credit: float = 0.0
    debit: float = 0.0

    def __post_init__(self):
        if _finite(self.credit, "credit") < 0 or _finite(self.debit, "debit") < 0:
            raise ValueError("credit and debit are both given as positive sums.")


class StageMove(NamedTuple):
    """One stage-history row: a customer moved from one stage to another.

    from_stage is None for a first assignment; day is the local date. A
    NamedTuple, like `CustomerPeriod`: the backfill reads the whole history.
    """

    customer_id: int
    day: date
    from_stage: str | None
    to_stage: str


def aggregate_orders(
    orders: Iterable[Order],
    period: Period,
    member_since: dict[int, date] | None = None,
) -> list[CustomerPeriod]:
    """Reference aggregation: the `CustomerPeriod` rows of `period`.

    This is what the set-based SQL must return: one row per customer with
    an order or refund in the windows looked at (P, the period before, the
    trailing 12 months), one per member even without orders, and one row
    (customer_id None) for the walk-in orders. Sorted by customer id, walk-ins
    last.
    """
    member_since = member_since or {}
    previous = period.previous()
    year = period.trailing_year()
    rows: dict[int | None, dict] = {}

    def row(customer_id):
        if customer_id not in rows:
            rows[customer_id] = {
                "orders": 0,
                "revenue": 0.0,
                "member_orders": 0,
                "member_revenue": 0.0,
                "orders_prev": 0,
                "orders_12m": 0,
                "last_order": None,
            }
        return rows[customer_id]

    for order in orders:
        in_p = period.contains(order.day)
        in_prev = previous.contains(order.day)
        in_year = year.contains(order.day)
        if not (in_p or in_prev or in_year):
            continue
        r = row(order.customer_id)
        since = member_since.get(order.customer_id)
        as_member = since is not None and order.day >= since
        if in_p:
            r["revenue"] += order.amount
            if as_member:
                r["member_revenue"] += order.amount
        if order.is_refund:
            continue
        if in_p:
            r["orders"] += 1
            r["member_orders"] += int(as_member)
        r["orders_prev"] += int(in_prev)
        if in_year:
            r["orders_12m"] += 1
            if r["last_order"] is None or order.day > r["last_order"]:
                r["last_order"] = order.day
    for customer_id in member_since:
        row(customer_id)
    return [
        CustomerPeriod(customer_id, member_since.get(customer_id), **values)
        for customer_id, values in sorted(
            rows.items(), key=lambda item: (item[0] is None, item[0] or 0)
        )
    ]


# ---------------------------------------------------------------------------
# KPIs
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ratio:
    """numerator / denominator, kept apart so snapshots can re-aggregate."""

    numerator: float
    denominator: float

    @property
    def value(self) -> float | None:
        """The rate; None when the denominator is 0 (undefined, not 0%)."""
        if not self.denominator:
            return None
        return self.numerator / self.denominator


@dataclass(frozen=True, slots=True)
class CustomerTotals:
    """The additive counts and sums behind the customer KPIs of one period.

    Every field is a plain count or sum over customers, so totals of parts
    (stages, segments, tiers) add up to the total of the whole: a snapshot
    stores these, and a pivot sums them before dividing.

    members_total, members_new: members at P's last day; of them, those who
        joined during P.
    members_active, active_customers: members / customers with a qualifying
        order in the ACTIVE_DAYS days ending with P's last day.
    ordered_before, retained: customers who ordered in the period before P;
        of them, those who ordered in P too.
    buyers_12m, repeat_buyers: customers with at least 1 / at least 2
        qualifying orders in the 12 months ending with P's last day.
    orders, revenue, member_orders, member_revenue: sums over all rows, the
        walk-in row included (it is revenue, never a customer).
    """

    members_total: int = 0
    members_new: int = 0
    members_active: int = 0
    active_customers: int = 0
    ordered_before: int = 0
    retained: int = 0
    buyers_12m: int = 0
    repeat_buyers: int = 0
    orders: int = 0
    revenue: float = 0.0
    member_orders: int = 0
    member_revenue: float = 0.0


def customer_totals(rows: Iterable[CustomerPeriod], period: Period) -> CustomerTotals:
    """Count and sum the rows of one period in a single pass.

    Raises ValueError when an amount is not finite (NaN or infinite) or a
    count is negative: the sums would hide it in every KPI.
    """
    last = period.last_day
    first = period.start
    # Active: last_order in [active_from, last]; a later one (there should be
    # none) is not counted either.
    active_from = period.stop - timedelta(days=ACTIVE_DAYS)
    members_total = members_new = members_active = active_customers = 0
    ordered_before = retained = buyers_12m = repeat_buyers = 0
    orders = member_orders = 0
    revenues = []
    member_revenues = []
    smallest = 0
    # Plain tuple unpacking and local names: this runs over every customer
    # of the company each night.
    for (
        customer_id,
        member_since,
        n_orders,
        revenue,
        n_member_orders,
        member_revenue,
        n_prev,
        n_12m,
        last_order,
    ) in rows:
        orders += n_orders
        member_orders += n_member_orders
        revenues.append(revenue)
        member_revenues.append(member_revenue)
        smallest = min(smallest, n_orders, n_member_orders, n_prev, n_12m)
        if customer_id is None:
            continue
        is_member = member_since is not None and member_since <= last
        is_active = last_order is not None and active_from <= last_order <= last
        if is_member:
            members_total += 1
            if member_since >= first:
                members_new += 1
            if is_active:
                members_active += 1
        if is_active:
            active_customers += 1
        if n_prev > 0:
            ordered_before += 1
            if n_orders > 0:
                retained += 1
        if n_12m > 0:
            buyers_12m += 1
            if n_12m >= 2:
                repeat_buyers += 1
    if smallest < 0:
        raise ValueError("Order counts cannot be negative.")
    return CustomerTotals(
        members_total=members_total,
        members_new=members_new,
        members_active=members_active,
        active_customers=active_customers,
        ordered_before=ordered_before,
        retained=retained,
        buyers_12m=buyers_12m,
        repeat_buyers=repeat_buyers,
        orders=orders,
        revenue=_finite_sum(revenues, "revenue"),
        member_orders=member_orders,
        member_revenue=_finite_sum(member_revenues, "member_revenue"),
    )


def participation_rate(totals: CustomerTotals) -> Ratio:
    """Active members / active customers, both at P's last day."""
    return Ratio(totals.members_active, totals.active_customers)


def member_revenue_share(totals: CustomerTotals) -> Ratio:
    """Net revenue bought as a member / all net revenue of P (walk-ins too).

    None when the total is zero or negative (refunds above sales): a share of
    a non-positive total means nothing.
    """
    return Ratio(totals.member_revenue, totals.revenue if totals.revenue > 0 else 0)


def retention_rate(totals: CustomerTotals) -> Ratio:
    """Customers who ordered in the previous period and again in P / those
    who ordered in the previous period. None when nobody ordered before."""
    return Ratio(totals.retained, totals.ordered_before)


def repeat_purchase_rate(totals: CustomerTotals) -> Ratio:
    """Customers with 2 or more orders in the 12 months ending with P / those
    with at least 1."""
    return Ratio(totals.repeat_buyers, totals.buyers_12m)


def average_order_values(totals: CustomerTotals) -> tuple[Ratio, Ratio]:
    """(members, non-members) average order value in P: net revenue / orders.

    Member orders are those placed on or after the customer's member_since;
    everything else, walk-ins included, is non-member. Refunds lower the
    revenue of the side they were made on, so a period with more refunds
    than sales has a negative average: shown as it is.
    """
    return (
        Ratio(totals.member_revenue, totals.member_orders),
        Ratio(
            totals.revenue - totals.member_revenue,
            totals.orders - totals.member_orders,
        ),
    )


def average_clv(values: Iterable[float | None]) -> float | None:
    """Mean of the customers' CLVs; customers without one (None) are left out.

    None when nobody has a CLV.
    """
    known = [v for v in values if v is not None]
    if not known:
        return None
    return _finite_sum(known, "clv") / len(known)


@dataclass(frozen=True, slots=True)
class PointFlows:
    earned: float
    spent: float
    expired: float


def point_flows(totals: Iterable[LedgerTotal]) -> PointFlows:
    """Points earned, spent and expired in the window of the totals.

    earned: credits minus debits of EARN_KINDS, minus the negative reversals
        (points taken back on a cancellation or refund).
    spent: debits minus credits of SPEND_KINDS (redeemed, donated), minus
        the positive reversals (a cancelled redemption gives them back).
    expired: debits minus credits of "expire".
    Opening balances and manual adjustments are neither: they are stock
    corrections, not programme activity. Unknown kinds are ignored.
    """
    earned = spent = expired = 0.0
    for total in totals:
        if total.kind in EARN_KINDS:
            earned += total.credit - total.debit
        elif total.kind in SPEND_KINDS:
            spent += total.debit - total.credit
        elif total.kind == "expire":
            expired += total.debit - total.credit
        elif total.kind == "reversal":
            earned -= total.debit
            spent -= total.credit
    return PointFlows(earned, spent, expired)


def redemption_rate(totals: Iterable[LedgerTotal]) -> Ratio:
    """Points spent / points earned over the window (rolling 12 months).

    None when nothing (or less than nothing) was earned.
    """
    flows = point_flows(totals)
    return Ratio(flows.spent, flows.earned if flows.earned > 0 else 0)


def breakage_rate(totals: Iterable[LedgerTotal]) -> Ratio:
    """Points expired / points earned over the same window as redemption."""
    flows = point_flows(totals)
    return Ratio(flows.expired, flows.earned if flows.earned > 0 else 0)


def points_liability(balances: Iterable[float], point_value: float) -> float:
    """Outstanding points x value of a point, in company currency.

    Only positive card balances count: a member in debt owes points, which
    does not lower what the company owes the others. `balances` may be each
    card's balance or the SQL's one `SUM(GREATEST(balance, 0))`.
    point_value: currency per point (100 points = 1.00 off gives 0.01).
    """
    if _finite(point_value, "point_value") < 0:
        raise ValueError("point_value cannot be negative.")
    balances = list(balances)
    _finite_sum(balances, "balance")
    return math.fsum(b for b in balances if b > 0) * point_value


def _moves_in(moves: Iterable[StageMove], period: Period) -> list[StageMove]:
    return [m for m in moves if period.contains(m.day)]


def churned(moves: Iterable[StageMove], period: Period) -> int:
    """Customers who moved into Winback from another stage during P (each
    counted once). A first assignment (from None, e.g. at install) is not a
    churn: the customer had lapsed before anyone looked."""
    return len(
        {
            m.customer_id
            for m in _moves_in(moves, period)
            if m.to_stage == "winback" and m.from_stage not in (None, "winback")
        }
    )


def won_back(moves: Iterable[StageMove], period: Period) -> int:
    """Customers who moved out of Winback during P (each counted once):
    an order that brings them back, or a manager's move."""
    return len(
        {
            m.customer_id
            for m in _moves_in(moves, period)
            if m.from_stage == "winback" and m.to_stage != "winback"
        }
    )


def stage_flow(
    moves: Iterable[StageMove], period: Period
) -> dict[tuple[str | None, str], int]:
    """Number of moves (from stage, to stage) during P; from None is a first
    assignment. Every move counts, also two of one customer."""
    return dict(Counter((m.from_stage, m.to_stage) for m in _moves_in(moves, period)))


def stage_distribution(stages: Iterable[str | None]) -> dict[str, int]:
    """Customers per stage, every stage present (0 when empty), in lifecycle
    order; customers without a stage (None) are not counted."""
    counts = Counter(s for s in stages if s is not None)
    unknown = set(counts) - set(STAGES)
    if unknown:
        raise ValueError(f"Unknown stage(s): {sorted(unknown)}")
    return {stage: counts[stage] for stage in STAGES}


def stages_on(moves: Iterable[StageMove], day: date) -> dict[int, str]:
    """Each customer's stage at the end of `day`, from his stage history: the
    last move on or before it (the backfill's stage distribution). Moves of
    one customer on one day count in the order given (give them by id)."""
    latest: dict[int, StageMove] = {}
    for move in moves:
        if move.day > day:
            continue
        known = latest.get(move.customer_id)
        if known is None or move.day >= known.day:
            latest[move.customer_id] = move
    return {cid: move.to_stage for cid, move in latest.items()}


def compute_kpis(
    period: Period,
    rows: Iterable[CustomerPeriod],
    ledger_12m: Iterable[LedgerTotal] = (),
    outstanding_points: Iterable[float] = (),
    point_value: float = 0.0,
    moves: Iterable[StageMove] = (),
    clvs: Iterable[float | None] = (),
) -> dict[str, float | int | None]:
    """Every KPI of KPIS for one period, as plain values (rates as fractions).

    rows: the period's `CustomerPeriod` rows; ledger_12m: ledger totals over
    P's trailing 12 months; outstanding_points: balances at P's end; moves:
    stage moves (those outside P are ignored); clvs: per-customer CLVs.
    """
    totals = customer_totals(rows, period)
    ledger_12m = list(ledger_12m)
    moves = list(moves)
    aov_members, aov_others = average_order_values(totals)
    return {
        "members_total": totals.members_total,
        "members_new": totals.members_new,
        "members_active": totals.members_active,
        "active_customers": totals.active_customers,
        "participation_rate": participation_rate(totals).value,
        "member_revenue_share": member_revenue_share(totals).value,
        "retention_rate": retention_rate(totals).value,
        "repeat_purchase_rate": repeat_purchase_rate(totals).value,
        "aov_members": aov_members.value,
        "aov_non_members": aov_others.value,
        "average_clv": average_clv(clvs),
        "redemption_rate": redemption_rate(ledger_12m).value,
        "breakage_rate": breakage_rate(ledger_12m).value,
        "points_liability": points_liability(outstanding_points, point_value),
        "churned": churned(moves, period),
        "won_back": won_back(moves, period),
    }


# ---------------------------------------------------------------------------
# Comparisons, trends and goals
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trend:
    """The last value against the one before it, and the series itself.

    change: last - previous; relative: change / |previous| (a fraction), so
    its sign always follows the change, also from a negative previous value.
    Each is None when a value is missing or the previous one is 0.
    """

    last: float | None
    previous: float | None
    change: float | None
    relative: float | None
    points: tuple[float | None, ...]


def change(
    current: float | None, previous: float | None
) -> tuple[float | None, float | None]:
    """(current - previous, relative change as a fraction), None when unknown."""
    if current is None or previous is None:
        return None, None
    delta = current - previous
    return delta, (delta / abs(previous) if previous else None)


def trend(values: Sequence[float | None]) -> Trend:
    """Sparkline data: `values` oldest first (None where no snapshot exists)."""
    points = tuple(values)
    last = points[-1] if points else None
    previous = points[-2] if len(points) >= 2 else None
    delta, relative = change(last, previous)
    return Trend(last, previous, delta, relative, points)


def compare(
    current: dict[str, float | int | None],
    previous: dict[str, float | int | None],
    last_year: dict[str, float | int | None],
) -> dict[str, dict[str, float | int | None]]:
    """Per KPI of `current`: value, previous, last_year and the changes
    (change_previous, relative_previous, change_last_year,
    relative_last_year) as `change` computes them."""
    result = {}
    for code, value in current.items():
        before, year_ago = previous.get(code), last_year.get(code)
        d_prev, r_prev = change(value, before)
        d_year, r_year = change(value, year_ago)
        result[code] = {
            "value": value,
            "previous": before,
            "last_year": year_ago,
            "change_previous": d_prev,
            "relative_previous": r_prev,
            "change_last_year": d_year,
            "relative_last_year": r_year,
        }
    return result


@dataclass(frozen=True, slots=True)
class GoalStatus:
    """status: one of GOAL_STATUSES, or None when nothing is measured yet.

    current: the value the status is judged on; progress: percent of the way
    from baseline to target (not clamped: below 0 means worse than the
    baseline, above 100 beyond the target); expected: percent the linear
    trajectory asks for on that day.
    """

    status: str | None
    current: float | None
    progress: float | None
    expected: float | None


def goal_target(baseline: float, target: float, percent: bool = False) -> float:
    """A goal's target as a KPI value.

    percent: `target` is a change in percent of the baseline ("+20%
    retention" is 20, "-10% churned" is -10), taken of |baseline| so that a
    positive percentage always aims higher, also from a negative baseline.
    A percentage of a zero baseline means nothing: ValueError.
    """
    if not math.isfinite(baseline) or not math.isfinite(target):
        raise ValueError("baseline and target must be finite numbers.")
    if not percent:
        return target
    if baseline == 0:
        raise ValueError("A target in percent needs a baseline other than 0.")
    return baseline + abs(baseline) * target / 100.0


def _progress(value: float, baseline: float, target: float, up: bool) -> float:
    if target == baseline:
        reached = value >= target if up else value <= target
        return 100.0 if reached else 0.0
    return (value - baseline) / (target - baseline) * 100.0


def goal_status(
    kpi_values_over_time: Iterable[tuple[date, float | None]],
    baseline: float,
    target: float,
    deadline: date,
    today: date,
    start: date | None = None,
    higher_is_better: bool = True,
    tolerance: float = 10.0,
) -> GoalStatus:
    """Progress and status of a goal "from baseline to target by deadline".

    kpi_values_over_time: (day, value) pairs, e.g. the snapshots (None values
    are skipped). start: the day the trajectory leaves the baseline; by
    default the first measured day. The direction is target vs baseline;
    higher_is_better only decides it when they are equal ("hold the level").

    Rule, judged on the last value measured on or before the day of
    judgement (today, or the deadline once it has passed):

    * achieved: that value has reached the target (>= going up, <= going
      down) on or before the deadline; a value after the deadline changes
      nothing any more.
    * missed: the deadline has passed and the target was not reached by it.
    * on track: before the deadline, progress is at least the linear
      trajectory's expected progress minus `tolerance` percentage points
      (expected = 100 x days since start / days from start to deadline).
    * at risk: before the deadline, behind that.
    * None: no value measured by the day of judgement (before the deadline;
      after it that is "missed").

    Before the deadline "achieved" is not final: a value that falls back
    below the target turns the goal on track or at risk again.
    """
    if not math.isfinite(baseline) or not math.isfinite(target):
        raise ValueError("baseline and target must be finite numbers.")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError("tolerance must be a finite number, 0 or more.")
    # By day only (a stable sort): of two values of one day the later given
    # wins, not the larger.
    points = sorted(
        (
            (day, _finite(value, "value"))
            for day, value in kpi_values_over_time
            if value is not None
        ),
        key=lambda point: point[0],
    )
    up = target > baseline if target != baseline else higher_is_better
    judged_on = min(today, deadline)
    measured = [(day, value) for day, value in points if day <= judged_on]
    if start is None:
        start = points[0][0] if points else judged_on
    span = max((deadline - start).days, 1)
    elapsed = min(max((judged_on - start).days, 0), span)
    expected = 100.0 * elapsed / span
    if not measured:
        return GoalStatus("missed" if today > deadline else None, None, None, expected)
    current = measured[-1][1]
    progress = _progress(current, baseline, target, up)
    reached = current >= target if up else current <= target
    if reached:
        status = "achieved"
    elif today > deadline:
        status = "missed"
    elif progress >= expected - tolerance:
        status = "on_track"
    else:
        status = "at_risk"
    return GoalStatus(status, current, progress, expected)
