"""DB-free tests of loyalty_mlm.tools.kpi (the programme cockpit's KPIs)."""

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from loyalty_mlm.tools.kpi import (
    KPI_DIRECTION,
    KPIS,
    CustomerPeriod,
    CustomerTotals,
    LedgerTotal,
    Order,
    Period,
    StageMove,
    aggregate_orders,
    average_clv,
    compare,
    compute_kpis,
    customer_totals,
    goal_status,
    goal_target,
    local_date,
    point_flows,
    points_liability,
    retention_rate,
    shift_years,
    stage_distribution,
    stage_flow,
    stages_on,
    trend,
    utc_start_of_day,
)
from loyalty_mlm.tools.lifecycle import STAGES

D = date
MARCH = Period.month(2025, 3)  # previous: February; active: 1 Jan .. 31 Mar

# ---------------------------------------------------------------------------
# Periods
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "start", "stop", "last_day", "days"),
    [
        pytest.param(
            Period.month(2024, 2), D(2024, 2, 1), D(2024, 3, 1), D(2024, 2, 29), 29,
            id="feb-leap-year",
        ),
        pytest.param(
            Period.month(2025, 2), D(2025, 2, 1), D(2025, 3, 1), D(2025, 2, 28), 28,
            id="feb-common-year",
        ),
        pytest.param(
            Period.month(2024, 12), D(2024, 12, 1), D(2025, 1, 1), D(2024, 12, 31), 31,
            id="december-year-change",
        ),
        pytest.param(
            Period.quarter(2024, 4), D(2024, 10, 1), D(2025, 1, 1), D(2024, 12, 31), 92,
            id="q4",
        ),
        pytest.param(
            Period.quarter(2024, 1), D(2024, 1, 1), D(2024, 4, 1), D(2024, 3, 31), 91,
            id="q1-leap-year",
        ),
        pytest.param(
            Period.week(D(2025, 1, 1)), D(2024, 12, 30), D(2025, 1, 6),
            D(2025, 1, 5), 7, id="week-across-new-year",
        ),
        pytest.param(
            Period.week(D(2024, 12, 30)), D(2024, 12, 30), D(2025, 1, 6), D(2025, 1, 5),
            7, id="week-from-its-monday",
        ),
        pytest.param(
            Period.week(D(2025, 1, 5)), D(2024, 12, 30), D(2025, 1, 6),
            D(2025, 1, 5), 7, id="week-from-its-sunday",
        ),
        pytest.param(
            Period.year(2024), D(2024, 1, 1), D(2025, 1, 1), D(2024, 12, 31), 366,
            id="leap-year",
        ),
        pytest.param(
            Period.custom(D(2025, 3, 5), D(2025, 3, 5)), D(2025, 3, 5), D(2025, 3, 6),
            D(2025, 3, 5), 1, id="custom-one-day",
        ),
        pytest.param(
            Period.containing(D(2025, 8, 15), "quarter"), D(2025, 7, 1),
            D(2025, 10, 1), D(2025, 9, 30), 92, id="containing-quarter",
        ),
    ],
)  # fmt: skip
def test_period_bounds(period, start, stop, last_day, days):
    assert (period.start, period.stop, period.last_day, period.days) == (
        start,
        stop,
        last_day,
        days,
    )
    # start included, stop excluded, nothing outside
    assert period.contains(start)
    assert period.contains(last_day)
    assert not period.contains(stop)
    assert not period.contains(start - timedelta(days=1))


@pytest.mark.parametrize(
    ("period", "previous", "last_year"),
    [
        pytest.param(
            Period.month(2025, 1), Period.month(2024, 12), Period.month(2024, 1),
            id="january-crosses-year",
        ),
        pytest.param(
            Period.month(2024, 3), Period.month(2024, 2), Period.month(2023, 3),
            id="march-after-leap-february",
        ),
        pytest.param(
            Period.month(2024, 2), Period.month(2024, 1), Period.month(2023, 2),
            id="leap-february-vs-28-days",
        ),
        pytest.param(
            Period.quarter(2025, 1), Period.quarter(2024, 4), Period.quarter(2024, 1),
            id="quarter",
        ),
        pytest.param(
            Period.year(2025), Period.year(2024), Period.year(2024), id="year"
        ),
        pytest.param(
            Period.week(D(2025, 1, 1)), Period.week(D(2024, 12, 23)),
            Period.week(D(2024, 1, 1)), id="week-52-weeks-back",
        ),
        pytest.param(
            Period.custom(D(2025, 3, 11), D(2025, 3, 20)),
            Period.custom(D(2025, 3, 1), D(2025, 3, 10)),
            Period.custom(D(2024, 3, 11), D(2024, 3, 20)),
            id="custom-same-length-before",
        ),
        pytest.param(
            Period.custom(D(2024, 2, 29), D(2024, 2, 29)),
            Period.custom(D(2024, 2, 28), D(2024, 2, 28)),
            Period.custom(D(2023, 2, 28), D(2023, 2, 28)),
            id="custom-29-february",
        ),
        pytest.param(
            Period.custom(D(2024, 2, 1), D(2024, 2, 29)),
            Period.custom(D(2024, 1, 3), D(2024, 1, 31)),
            Period.custom(D(2023, 2, 1), D(2023, 2, 28)),
            id="custom-ending-29-february",
        ),
        pytest.param(
            Period.custom(D(2025, 2, 28), D(2025, 3, 1)),
            Period.custom(D(2025, 2, 26), D(2025, 2, 27)),
            Period.custom(D(2024, 2, 28), D(2024, 3, 1)),
            id="custom-into-leap-year-keeps-29-february",
        ),
    ],
)  # fmt: skip
def test_previous_and_same_period_last_year(period, previous, last_year):
    assert period.previous() == previous
    assert period.same_period_last_year() == last_year


def test_week_last_year_keeps_weekdays():
    week = Period.week(D(2025, 6, 18))
    assert week.same_period_last_year().start.weekday() == 0  # a Monday
    assert week.same_period_last_year().days == 7


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (D(2024, 2, 29), -1, D(2023, 2, 28)),
        (D(2024, 2, 29), 1, D(2025, 2, 28)),
        (D(2024, 2, 29), 4, D(2028, 2, 29)),
        (D(2025, 2, 28), -1, D(2024, 2, 28)),
        (D(2025, 3, 1), -1, D(2024, 3, 1)),
        (D(2025, 1, 1), -1, D(2024, 1, 1)),
    ],
)
def test_shift_years(day, years, expected):
    assert shift_years(day, years) == expected


@pytest.mark.parametrize(
    ("period", "start", "stop"),
    [
        (MARCH, D(2024, 4, 1), D(2025, 4, 1)),
        (Period.month(2024, 2), D(2023, 3, 1), D(2024, 3, 1)),
        (Period.custom(D(2024, 2, 29), D(2024, 2, 29)), D(2023, 3, 1), D(2024, 3, 1)),
    ],
)
def test_trailing_year(period, start, stop):
    year = period.trailing_year()
    assert (year.start, year.stop) == (start, stop)


def test_trailing_days_is_the_active_window():
    window = MARCH.trailing_days(90)
    assert (window.start, window.last_day) == (D(2025, 1, 1), D(2025, 3, 31))


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: Period.month(2025, 13), id="month-13"),
        pytest.param(lambda: Period.month(2025, 0), id="month-0"),
        pytest.param(lambda: Period.quarter(2025, 5), id="quarter-5"),
        pytest.param(
            lambda: Period.custom(D(2025, 3, 2), D(2025, 3, 1)), id="custom-reversed"
        ),
        pytest.param(lambda: Period(D(2025, 3, 1), D(2025, 3, 1)), id="empty"),
        pytest.param(
            lambda: Period(D(2025, 3, 1), D(2025, 3, 2), "day"), id="unknown-kind"
        ),
        pytest.param(
            lambda: Period.containing(D(2025, 3, 1), "custom"), id="containing-custom"
        ),
        pytest.param(lambda: MARCH.trailing_days(0), id="trailing-0-days"),
    ],
)
def test_period_refuses_bad_input(build):
    with pytest.raises(ValueError):
        build()


# ---------------------------------------------------------------------------
# Time zones: the caller turns UTC datetimes into local dates
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "tz_name", "expected"),
    [
        pytest.param(
            datetime(2024, 12, 31, 23, 30), "Europe/Amsterdam", D(2025, 1, 1),
            id="naive-utc-is-new-year-in-amsterdam",
        ),
        pytest.param(
            datetime(2024, 12, 31, 22, 59), "Europe/Amsterdam", D(2024, 12, 31),
            id="still-old-year-in-amsterdam",
        ),
        pytest.param(
            datetime(2025, 1, 1, 2, 0), "America/New_York", D(2024, 12, 31),
            id="still-old-year-in-new-york",
        ),
        pytest.param(
            datetime(2025, 1, 1, 2, 0), "UTC", D(2025, 1, 1), id="utc",
        ),
        pytest.param(
            datetime(2025, 3, 29, 23, 0), "Europe/Amsterdam", D(2025, 3, 30),
            id="night-summer-time-starts",
        ),
        pytest.param(
            datetime(2025, 10, 25, 22, 0), "Europe/Amsterdam", D(2025, 10, 26),
            id="night-summer-time-ends",
        ),
        pytest.param(
            datetime(2024, 2, 28, 10, 0), "Pacific/Kiritimati", D(2024, 2, 29),
            id="utc-plus-14-reaches-29-february",
        ),
        pytest.param(
            datetime(2025, 3, 30, 0, 30, tzinfo=ZoneInfo("Europe/Amsterdam")), "UTC",
            D(2025, 3, 29), id="aware-datetime-converted-from-its-zone",
        ),
        pytest.param(
            datetime(2025, 6, 1, 12, 0, tzinfo=UTC), "Asia/Kolkata",
            D(2025, 6, 1), id="aware-utc",
        ),
    ],
)  # fmt: skip
def test_local_date(moment, tz_name, expected):
    assert local_date(moment, tz_name) == expected


@pytest.mark.parametrize("tz_name", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_local_date_refuses_unknown_zone(tz_name):
    with pytest.raises(ValueError):
        local_date(datetime(2025, 1, 1), tz_name)


@pytest.mark.parametrize(
    ("day", "tz_name", "expected"),
    [
        (D(2025, 3, 30), "Europe/Amsterdam", datetime(2025, 3, 29, 23, 0)),
        (D(2025, 3, 31), "Europe/Amsterdam", datetime(2025, 3, 30, 22, 0)),
        (D(2025, 1, 1), "America/New_York", datetime(2025, 1, 1, 5, 0)),
        (D(2025, 1, 1), "UTC", datetime(2025, 1, 1, 0, 0)),
    ],
)
def test_utc_start_of_day(day, tz_name, expected):
    assert utc_start_of_day(day, tz_name) == expected


@pytest.mark.parametrize(
    ("period", "tz_name"),
    [
        # March 2025 holds the European summer time change and follows the
        # American one.
        pytest.param(MARCH, "Europe/Amsterdam", id="amsterdam-summer-time"),
        pytest.param(MARCH, "America/New_York", id="new-york"),
        pytest.param(MARCH, "UTC", id="utc"),
        pytest.param(Period.month(2024, 2), "Asia/Kolkata", id="half-hour-zone"),
        # Clock changes around midnight: the Azores go from 1:00 back to 0:00
        # on 26 October 2025 (midnight twice), Santiago from 24:00 back to
        # 23:00 on 5 April 2025 and from 0:00 on to 1:00 on 7 September 2025
        # (no midnight).
        pytest.param(
            Period.custom(D(2025, 10, 26), D(2025, 10, 26)), "Atlantic/Azores",
            id="midnight-twice",
        ),
        pytest.param(
            Period.custom(D(2025, 10, 25), D(2025, 10, 25)), "Atlantic/Azores",
            id="day-before-midnight-twice",
        ),
        pytest.param(
            Period.custom(D(2025, 4, 5), D(2025, 4, 5)), "America/Santiago",
            id="evening-twice",
        ),
        pytest.param(
            Period.custom(D(2025, 9, 7), D(2025, 9, 7)), "America/Santiago",
            id="midnight-skipped",
        ),
        # Samoa skipped 30 December 2011 altogether.
        pytest.param(Period.month(2011, 12), "Pacific/Apia", id="day-skipped"),
    ],
)  # fmt: skip
def test_utc_bounds_select_exactly_the_local_days(period, tz_name):
    # Every half hour in and around the period is in its UTC range exactly
    # when its local date is in the period.
    start, stop = period.utc_bounds(tz_name)
    moment = datetime.combine(period.start - timedelta(days=3), datetime.min.time())
    end = datetime.combine(period.stop + timedelta(days=3), datetime.min.time())
    while moment < end:
        in_range = start <= moment < stop
        assert in_range == period.contains(local_date(moment, tz_name)), moment
        moment += timedelta(minutes=30)


def test_a_skipped_day_is_empty():
    start, stop = Period.custom(D(2011, 12, 30), D(2011, 12, 30)).utc_bounds(
        "Pacific/Apia"
    )
    assert start == stop


# ---------------------------------------------------------------------------
# From orders to per-customer rows
# ---------------------------------------------------------------------------


def test_aggregate_orders_reference_rows():
    orders = [
        Order(1, D(2025, 2, 20), 50.0),  # February: before membership
        Order(1, D(2025, 3, 15), 100.0),  # March, as a member
        Order(1, D(2025, 3, 16), -30.0, is_refund=True),  # member refund
        Order(1, D(2025, 4, 1), 999.0),  # after the period: ignored
        Order(2, D(2024, 4, 1), 10.0),  # first day of the trailing year
        Order(2, D(2024, 3, 31), 10.0),  # the day before: outside
        Order(None, D(2025, 3, 1), 20.0),  # walk-in
    ]
    rows = aggregate_orders(orders, MARCH, {1: D(2025, 3, 10), 3: D(2025, 3, 31)})
    assert rows == [
        CustomerPeriod(
            1,
            member_since=D(2025, 3, 10),
            orders=1,
            revenue=70.0,
            member_orders=1,
            member_revenue=70.0,
            orders_prev=1,
            orders_12m=2,
            last_order=D(2025, 3, 15),
        ),
        CustomerPeriod(2, orders_12m=1, last_order=D(2024, 4, 1)),
        # a member without orders still has a row: he counts as a member
        CustomerPeriod(3, member_since=D(2025, 3, 31)),
        CustomerPeriod(None, orders=1, revenue=20.0, orders_12m=1,
                       last_order=D(2025, 3, 1)),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"revenue": math.nan}, id="nan-revenue"),
        pytest.param({"revenue": math.inf}, id="inf-revenue"),
        pytest.param({"member_revenue": -math.inf}, id="inf-member-revenue"),
        pytest.param({"orders": -1}, id="negative-orders"),
        pytest.param({"orders_12m": -1}, id="negative-orders-12m"),
    ],
)
def test_customer_totals_refuse_bad_values(kwargs):
    rows = [CustomerPeriod(1, orders=1, revenue=10.0), CustomerPeriod(2, **kwargs)]
    with pytest.raises(ValueError):
        customer_totals(rows, MARCH)


def test_customer_period_from_a_cursor_row():
    row = (7, D(2024, 1, 1), 2, 50.0, 1, 20.0, 0, 3, D(2025, 3, 3))
    assert CustomerPeriod._make(row).member_revenue == 20.0


def test_totals_of_parts_add_up_to_the_whole():
    # What makes snapshots per stage or segment summable in a pivot.
    orders = [
        Order(c, D(2025, 2, 1) + timedelta(days=5 * c), 10.0 * c) for c in range(1, 9)
    ]
    orders += [Order(c, D(2025, 3, 2) + timedelta(days=c), 5.0) for c in (2, 3, 5, 8)]
    member_since = {2: D(2024, 1, 1), 5: D(2025, 3, 1), 7: D(2025, 3, 20)}
    rows = aggregate_orders(orders, MARCH, member_since)
    whole = customer_totals(rows, MARCH)
    odd = customer_totals([r for r in rows if r.customer_id % 2], MARCH)
    even = customer_totals([r for r in rows if not r.customer_id % 2], MARCH)
    for field in CustomerTotals.__dataclass_fields__:
        assert getattr(whole, field) == pytest.approx(
            getattr(odd, field) + getattr(even, field)
        ), field


def test_order_refuses_non_finite_amount():
    with pytest.raises(ValueError):
        Order(1, D(2025, 3, 1), math.inf)


# ---------------------------------------------------------------------------
# KPIs from orders: one table, each case a small company
# ---------------------------------------------------------------------------

EMPTY = {
    "members_total": 0,
    "members_new": 0,
    "members_active": 0,
    "active_customers": 0,
    "participation_rate": None,
    "member_revenue_share": None,
    "retention_rate": None,
    "repeat_purchase_rate": None,
    "aov_members": None,
    "aov_non_members": None,
}

KPI_CASES = [
    pytest.param([], {}, EMPTY, id="empty-company"),
    pytest.param(
        [Order(1, D(2025, 3, 15), 100.0)],
        {},
        {**EMPTY, "active_customers": 1, "participation_rate": 0.0,
         "member_revenue_share": 0.0, "repeat_purchase_rate": 0.0,
         "aov_non_members": 100.0},
        id="one-customer-not-a-member",
    ),
    pytest.param(
        [Order(1, D(2025, 2, 20), 50.0), Order(1, D(2025, 3, 15), 100.0)],
        {1: D(2025, 3, 10)},
        {"members_total": 1, "members_new": 1, "members_active": 1,
         "active_customers": 1, "participation_rate": 1.0,
         "member_revenue_share": 1.0, "retention_rate": 1.0,
         "repeat_purchase_rate": 1.0, "aov_members": 100.0,
         "aov_non_members": None},
        id="one-customer-joins-in-march",
    ),
    pytest.param(
        [],
        {1: D(2024, 5, 1)},
        {**EMPTY, "members_total": 1},
        id="one-member-never-ordered",
    ),
    pytest.param(
        # Bought 300 in February, returned it in March, bought 50 in March:
        # March's net revenue is -250 over one order. Shown as it is.
        [Order(1, D(2025, 2, 10), 300.0),
         Order(1, D(2025, 3, 5), -300.0, is_refund=True),
         Order(1, D(2025, 3, 20), 50.0)],
        {},
        {**EMPTY, "active_customers": 1, "participation_rate": 0.0,
         "member_revenue_share": None, "retention_rate": 1.0,
         "repeat_purchase_rate": 1.0, "aov_non_members": -250.0},
        id="refund-larger-than-purchases",
    ),
    pytest.param(
        # A refund alone is not an order: not active, no order, no retention.
        [Order(1, D(2024, 12, 1), 100.0),
         Order(1, D(2025, 3, 2), -100.0, is_refund=True)],
        {1: D(2024, 1, 1)},
        {**EMPTY, "members_total": 1, "member_revenue_share": None,
         "repeat_purchase_rate": 0.0},
        id="refund-only-in-period",
    ),
    pytest.param(
        [Order(1, D(2025, 3, 3), 60.0), Order(1, D(2025, 3, 20), 40.0),
         Order(2, D(2025, 3, 4), 30.0), Order(2, D(2025, 3, 5), 30.0),
         Order(2, D(2025, 3, 6), 30.0),
         Order(None, D(2025, 3, 7), 10.0)],
        {1: D(2024, 1, 1)},
        {"members_total": 1, "members_new": 0, "members_active": 1,
         "active_customers": 2, "participation_rate": 0.5,
         "member_revenue_share": 0.5, "retention_rate": None,
         "repeat_purchase_rate": 1.0, "aov_members": 50.0,
         "aov_non_members": 25.0},
        id="members-vs-non-members-and-walk-ins",
    ),
    pytest.param(
        # Ordered in February: 1, 2, 3; in March: 1 and 4.
        [Order(c, D(2025, 2, 10), 10.0) for c in (1, 2, 3)]
        + [Order(c, D(2025, 3, 10), 10.0) for c in (1, 4)],
        {},
        {**EMPTY, "active_customers": 4, "participation_rate": 0.0,
         "member_revenue_share": 0.0, "retention_rate": 1 / 3,
         "repeat_purchase_rate": 0.25, "aov_non_members": 10.0},
        id="retention-one-of-three",
    ),
    pytest.param(
        # 1 Jan is the first of the 90 days ending 31 March; 31 Dec is not.
        [Order(1, D(2025, 1, 1), 10.0), Order(2, D(2024, 12, 31), 10.0)],
        {1: D(2024, 6, 1), 2: D(2024, 6, 1)},
        {**EMPTY, "members_total": 2, "members_active": 1,
         "active_customers": 1, "participation_rate": 1.0,
         "repeat_purchase_rate": 0.0},
        id="active-window-boundary",
    ),
    pytest.param(
        [],
        {1: D(2025, 3, 1), 2: D(2025, 3, 31), 3: D(2025, 4, 1), 4: D(2025, 2, 28)},
        {**EMPTY, "members_total": 3, "members_new": 2},
        id="member-since-boundaries",
    ),
    pytest.param(
        # 1 April 2024 is in the 12 months ending 31 March 2025, 31 March
        # 2024 is not; an order after the period is not seen.
        [Order(1, D(2024, 4, 1), 10.0), Order(1, D(2025, 3, 31), 10.0),
         Order(2, D(2024, 3, 31), 10.0), Order(2, D(2025, 3, 31), 10.0),
         Order(2, D(2025, 4, 1), 10.0)],
        {},
        {**EMPTY, "active_customers": 2, "participation_rate": 0.0,
         "member_revenue_share": 0.0, "repeat_purchase_rate": 0.5,
         "aov_non_members": 10.0},
        id="repeat-purchase-12-month-boundary",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("orders", "member_since", "expected"), KPI_CASES)
def test_kpis_from_orders(orders, member_since, expected):
    rows = aggregate_orders(orders, MARCH, member_since)
    values = compute_kpis(MARCH, rows)
    got = {code: values[code] for code in expected}
    assert got == pytest.approx(expected)


def test_empty_company_gives_every_kpi():
    values = compute_kpis(MARCH, [])
    assert tuple(values) == KPIS
    assert values == {
        **EMPTY,
        "average_clv": None,
        "redemption_rate": None,
        "breakage_rate": None,
        "points_liability": 0.0,
        "churned": 0,
        "won_back": 0,
    }


def test_kpi_directions_cover_every_kpi():
    assert set(KPI_DIRECTION) == set(KPIS)
    assert set(KPI_DIRECTION.values()) <= {-1, 0, 1}


def test_retention_with_nobody_before_is_undefined_not_zero():
    rows = [CustomerPeriod(1, orders=3, last_order=D(2025, 3, 3))]
    ratio = retention_rate(customer_totals(rows, MARCH))
    assert (ratio.numerator, ratio.denominator, ratio.value) == (0, 0, None)


def test_walk_in_row_is_never_a_customer():
    walk_in = CustomerPeriod(
        None, orders=5, revenue=50.0, orders_prev=5, orders_12m=9,
        last_order=D(2025, 3, 30),
    )  # fmt: skip
    values = compute_kpis(MARCH, [walk_in])
    assert values["active_customers"] == 0
    assert values["retention_rate"] is None
    assert values["repeat_purchase_rate"] is None
    assert values["aov_non_members"] == 10.0


def test_same_period_last_year_uses_the_same_definitions():
    # February 2024 (29 days) against February 2023 (28 days), each with its
    # own order. The 12 months ending 29 Feb 2024 start on 1 March 2023, so
    # 28 Feb 2023 is just outside them: no repeat purchase in either.
    orders = [Order(1, D(2024, 2, 29), 80.0), Order(1, D(2023, 2, 28), 40.0)]
    feb = Period.month(2024, 2)
    ago = feb.same_period_last_year()
    now = compute_kpis(feb, aggregate_orders(orders, feb))
    before = compute_kpis(ago, aggregate_orders(orders, ago))
    assert (now["aov_non_members"], before["aov_non_members"]) == (80.0, 40.0)
    assert now["repeat_purchase_rate"] == 0.0
    assert before["repeat_purchase_rate"] == 0.0
    result = compare(now, {}, before)["aov_non_members"]
    assert result["change_last_year"] == 40.0
    assert result["relative_last_year"] == 1.0
    assert result["previous"] is None
    assert result["change_previous"] is None


# ---------------------------------------------------------------------------
# Points: redemption, breakage, liability
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("totals", "earned", "spent", "expired", "redemption", "breakage"),
    [
        pytest.param([], 0.0, 0.0, 0.0, None, None, id="no-ledger"),
        pytest.param(
            [LedgerTotal("earn", 1000.0), LedgerTotal("redeem", 0.0, 300.0),
             LedgerTotal("expire", 0.0, 100.0)],
            1000.0, 300.0, 100.0, 0.3, 0.1, id="earn-redeem-expire",
        ),
        pytest.param(
            [LedgerTotal("earn", 800.0, 50.0), LedgerTotal("tier_bonus", 200.0),
             LedgerTotal("campaign_bonus", 100.0), LedgerTotal("welcome", 50.0),
             LedgerTotal("birthday", 25.0), LedgerTotal("referral", 75.0),
             LedgerTotal("treatment", 200.0)],
            1400.0, 0.0, 0.0, 0.0, 0.0, id="every-earning-kind",
        ),
        pytest.param(
            # 200 earned points taken back; 50 redeemed points given back
            [LedgerTotal("earn", 1200.0), LedgerTotal("redeem", 0.0, 300.0),
             LedgerTotal("reversal", 50.0, 200.0)],
            1000.0, 250.0, 0.0, 0.25, 0.0, id="reversals-both-ways",
        ),
        pytest.param(
            [LedgerTotal("earn", 500.0), LedgerTotal("donation", 0.0, 100.0),
             LedgerTotal("redeem", 0.0, 150.0)],
            500.0, 250.0, 0.0, 0.5, 0.0, id="donations-are-spent",
        ),
        pytest.param(
            [LedgerTotal("earn", 100.0), LedgerTotal("opening", 5000.0),
             LedgerTotal("adjustment", 300.0, 40.0), LedgerTotal("unknown", 9.0)],
            100.0, 0.0, 0.0, 0.0, 0.0, id="opening-and-adjustments-are-neither",
        ),
        pytest.param(
            [LedgerTotal("earn", 100.0), LedgerTotal("reversal", 0.0, 100.0),
             LedgerTotal("redeem", 0.0, 40.0), LedgerTotal("expire", 0.0, 10.0)],
            0.0, 40.0, 10.0, None, None, id="everything-earned-taken-back",
        ),
    ],
)  # fmt: skip
def test_point_flows_and_rates(totals, earned, spent, expired, redemption, breakage):
    flows = point_flows(totals)
    assert (flows.earned, flows.spent, flows.expired) == pytest.approx(
        (earned, spent, expired)
    )
    values = compute_kpis(MARCH, [], ledger_12m=totals)
    assert values["redemption_rate"] == pytest.approx(redemption)
    assert values["breakage_rate"] == pytest.approx(breakage)


@pytest.mark.parametrize(
    ("credit", "debit"), [(-1.0, 0.0), (0.0, -1.0), (math.nan, 0.0)]
)
def test_ledger_total_refuses_bad_sums(credit, debit):
    with pytest.raises(ValueError):
        LedgerTotal("earn", credit, debit)


@pytest.mark.parametrize(
    ("balances", "point_value", "expected"),
    [
        pytest.param([], 0.01, 0.0, id="no-cards"),
        pytest.param([1000.0], 0.01, 10.0, id="100-points-is-1"),
        pytest.param([100.0, -50.0, 0.0, 250.5], 0.01, 3.505, id="debts-ignored"),
        pytest.param([-500.0], 0.01, 0.0, id="only-debt"),
        pytest.param([1234.0], 0.0, 0.0, id="free-points"),
    ],
)
def test_points_liability(balances, point_value, expected):
    assert points_liability(balances, point_value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("balances", "point_value"),
    [
        ([100.0], -0.01),
        ([100.0], math.nan),
        ([math.inf], 0.01),
        ([math.nan, 5.0], 0.01),
        ([-math.nan], 0.01),
        ([math.inf, -math.inf], 0.01),
    ],
)
def test_points_liability_refuses_bad_input(balances, point_value):
    with pytest.raises(ValueError):
        points_liability(balances, point_value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        ([None, None], None),
        ([100.0, None, 200.0], 150.0),
        ([-20.0, 20.0], 0.0),
    ],
)
def test_average_clv(values, expected):
    assert average_clv(values) == expected


@pytest.mark.parametrize("values", [[math.nan], [1.0, math.inf], [math.inf, -math.inf]])
def test_average_clv_refuses_non_finite(values):
    with pytest.raises(ValueError):
        average_clv(values)


# ---------------------------------------------------------------------------
# Stages: churned, won back, distribution, flow
# ---------------------------------------------------------------------------

MOVES = [
    StageMove(1, D(2025, 2, 28), "growth", "winback"),  # February: not counted
    StageMove(2, D(2025, 3, 1), "growth", "winback"),
    StageMove(2, D(2025, 3, 10), "winback", "growth"),  # won back the same month
    StageMove(2, D(2025, 3, 30), "growth", "winback"),  # and lost again: once
    StageMove(3, D(2025, 3, 31), "retention", "winback"),
    StageMove(1, D(2025, 3, 5), "winback", "onboarding"),
    StageMove(4, D(2025, 3, 15), None, "acquisition"),  # first assignment
    StageMove(5, D(2025, 3, 16), "winback", "winback"),  # not a move out
    StageMove(6, D(2025, 4, 1), "growth", "winback"),  # April: not counted
    StageMove(7, D(2025, 3, 20), None, "winback"),  # first assignment: no churn
]


def test_churned_and_won_back():
    values = compute_kpis(MARCH, [], moves=MOVES)
    assert (values["churned"], values["won_back"]) == (2, 2)


def test_stage_flow():
    assert stage_flow(MOVES, MARCH) == {
        ("growth", "winback"): 2,
        ("winback", "growth"): 1,
        ("retention", "winback"): 1,
        ("winback", "onboarding"): 1,
        (None, "acquisition"): 1,
        ("winback", "winback"): 1,
        (None, "winback"): 1,
    }
    assert stage_flow(MOVES, Period.month(2025, 1)) == {}


def test_stages_on_and_distribution():
    stages = stages_on(MOVES, MARCH.last_day)
    assert stages == {
        1: "onboarding",
        2: "winback",
        3: "winback",
        4: "acquisition",
        5: "winback",
        7: "winback",
    }
    assert stage_distribution(stages.values()) == {
        "acquisition": 1,
        "onboarding": 1,
        "growth": 0,
        "ambassadorship": 0,
        "retention": 0,
        "winback": 4,
    }
    assert list(stage_distribution([])) == list(STAGES)
    assert stage_distribution([None, "growth"])["growth"] == 1


def test_stage_distribution_refuses_unknown_stage():
    with pytest.raises(ValueError):
        stage_distribution(["growth", "vip"])


# ---------------------------------------------------------------------------
# Trends and comparisons
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "last", "previous", "change", "relative"),
    [
        pytest.param([], None, None, None, None, id="no-values"),
        pytest.param([5.0], 5.0, None, None, None, id="one-value"),
        pytest.param([100.0, 120.0], 120.0, 100.0, 20.0, 0.2, id="up"),
        pytest.param([1.0, 100.0, 80.0], 80.0, 100.0, -20.0, -0.2, id="down"),
        pytest.param([0.0, 10.0], 10.0, 0.0, 10.0, None, id="from-zero"),
        pytest.param([0.0, 0.0], 0.0, 0.0, 0.0, None, id="zero-to-zero"),
        pytest.param([-50.0, -25.0], -25.0, -50.0, 25.0, 0.5, id="negative-up"),
        pytest.param([-50.0, -75.0], -75.0, -50.0, -25.0, -0.5, id="negative-down"),
        pytest.param([10.0, None], None, 10.0, None, None, id="missing-last"),
        pytest.param([None, 10.0], 10.0, None, None, None, id="missing-previous"),
    ],
)
def test_trend(values, last, previous, change, relative):
    result = trend(values)
    assert (result.last, result.previous) == (last, previous)
    assert result.change == pytest.approx(change)
    assert result.relative == pytest.approx(relative)
    assert result.points == tuple(values)


def test_compare():
    result = compare(
        {"retention_rate": 0.6, "churned": 3},
        {"retention_rate": 0.5, "churned": 0},
        {"retention_rate": None},
    )
    assert result["retention_rate"] == pytest.approx(
        {
            "value": 0.6,
            "previous": 0.5,
            "last_year": None,
            "change_previous": 0.1,
            "relative_previous": 0.2,
            "change_last_year": None,
            "relative_last_year": None,
        }
    )
    assert result["churned"]["change_previous"] == 3
    assert result["churned"]["relative_previous"] is None


# ---------------------------------------------------------------------------
# Goals
# ---------------------------------------------------------------------------

# "+20% retention": from 0.50 to 0.60 during 2025. 1 Jan to 31 Dec is 364
# days, so 2 July (day 182) is half-way: the trajectory expects 50%.
START, DEADLINE, HALF = D(2025, 1, 1), D(2025, 12, 31), D(2025, 7, 2)


@pytest.mark.parametrize(
    ("values", "today", "status", "progress", "expected"),
    [
        pytest.param([], D(2025, 2, 1), None, None, 100 * 31 / 364, id="no-data"),
        pytest.param([], D(2026, 1, 5), "missed", None, 100.0, id="no-data-late"),
        pytest.param([(START, 0.50)], START, "on_track", 0.0, 0.0, id="day-one"),
        pytest.param([(HALF, 0.52)], HALF, "at_risk", 20.0, 50.0, id="behind"),
        pytest.param([(HALF, 0.54)], HALF, "on_track", 40.0, 50.0,
                     id="within-tolerance"),
        pytest.param([(HALF, 0.539)], HALF, "at_risk", 39.0, 50.0,
                     id="just-outside-tolerance"),
        pytest.param([(HALF, 0.60)], HALF, "achieved", 100.0, 50.0, id="reached"),
        pytest.param([(HALF, 0.62)], HALF, "achieved", 120.0, 50.0, id="beyond"),
        pytest.param([(HALF, 0.45)], HALF, "at_risk", -50.0, 50.0,
                     id="below-baseline"),
        pytest.param([(HALF, 0.60), (D(2025, 8, 1), 0.53)], D(2025, 8, 1),
                     "at_risk", 30.0, 100 * 212 / 364, id="fell-back"),
        pytest.param([(HALF, 0.57), (D(2025, 9, 1), None)], D(2025, 9, 1),
                     "on_track", 70.0, 100 * 243 / 364, id="none-skipped"),
        pytest.param([(D(2025, 12, 20), 0.61), (D(2026, 1, 10), 0.55)],
                     D(2026, 1, 15), "achieved", 110.0, 100.0,
                     id="judged-at-deadline-reached"),
        pytest.param([(DEADLINE, 0.58), (D(2026, 1, 10), 0.65)], D(2026, 1, 15),
                     "missed", 80.0, 100.0, id="judged-at-deadline-missed"),
        pytest.param([(D(2026, 1, 10), 0.65)], D(2026, 1, 15), "missed", None,
                     100.0, id="only-measured-after-deadline"),
    ],
)  # fmt: skip
def test_goal_status(values, today, status, progress, expected):
    result = goal_status(values, 0.50, 0.60, DEADLINE, today, start=START)
    assert result.status == status
    assert result.progress == pytest.approx(progress)
    assert result.expected == pytest.approx(expected)


@pytest.mark.parametrize(
    ("baseline", "target", "value", "higher_is_better", "status", "progress"),
    [
        pytest.param(100, 80, 85, True, "on_track", 75.0, id="down-goal-on-track"),
        pytest.param(100, 80, 95, True, "at_risk", 25.0, id="down-goal-behind"),
        pytest.param(100, 80, 79, True, "achieved", 105.0, id="down-goal-reached"),
        pytest.param(0.5, 0.5, 0.5, True, "achieved", 100.0, id="hold-level"),
        pytest.param(0.5, 0.5, 0.49, True, "at_risk", 0.0, id="hold-level-below"),
        pytest.param(10, 10, 9, False, "achieved", 100.0, id="hold-a-ceiling"),
    ],
)
def test_goal_direction(baseline, target, value, higher_is_better, status, progress):
    result = goal_status(
        [(HALF, value)],
        baseline,
        target,
        DEADLINE,
        HALF,
        start=START,
        higher_is_better=higher_is_better,
    )
    assert (result.status, result.progress) == (status, pytest.approx(progress))


def test_goal_status_transitions_over_a_year():
    # Monthly snapshots of a "+15% average order value" goal (40 -> 46):
    # a good start, a summer dip, a strong autumn, then a fall after the
    # deadline that no longer matters.
    snapshots = [
        (D(2025, 1, 31), 41.5),
        (D(2025, 3, 31), 42.0),
        (D(2025, 6, 30), 41.0),
        (D(2025, 9, 30), 45.0),
        (D(2025, 11, 30), 46.5),
        (D(2026, 1, 31), 39.0),
    ]
    statuses = [
        goal_status(
            [s for s in snapshots if s[0] <= day], 40.0, 46.0, DEADLINE, day, START
        ).status
        for day, _value in snapshots
    ]
    assert statuses == [
        "on_track",
        "on_track",
        "at_risk",
        "on_track",
        "achieved",
        "achieved",
    ]


def test_goal_start_defaults_to_first_value():
    result = goal_status([(HALF, 0.50)], 0.50, 0.60, DEADLINE, HALF)
    assert (result.status, result.expected) == ("on_track", 0.0)


@pytest.mark.parametrize(
    ("baseline", "target", "tolerance", "values"),
    [
        (math.nan, 1.0, 10.0, []),
        (0.0, math.inf, 10.0, []),
        (0.0, 1.0, -1.0, []),
        (0.0, 1.0, 10.0, [(HALF, math.nan)]),
    ],
)
def test_goal_status_refuses_bad_input(baseline, target, tolerance, values):
    with pytest.raises(ValueError):
        goal_status(values, baseline, target, DEADLINE, HALF, tolerance=tolerance)


@pytest.mark.parametrize(
    ("baseline", "target", "percent", "expected"),
    [
        pytest.param(0.5, 20, True, 0.6, id="plus-20-pct-retention"),
        pytest.param(40.0, 15, True, 46.0, id="plus-15-pct-aov"),
        pytest.param(100, -20, True, 80.0, id="minus-20-pct-churned"),
        pytest.param(-200.0, 50, True, -100.0, id="negative-baseline-goes-up"),
        pytest.param(0.5, 0.7, False, 0.7, id="absolute"),
        pytest.param(0.0, 5.0, False, 5.0, id="absolute-from-zero"),
    ],
)
def test_goal_target(baseline, target, percent, expected):
    assert goal_target(baseline, target, percent) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("baseline", "target", "percent"),
    [(0.0, 10, True), (math.nan, 10, True), (1.0, math.inf, False)],
)
def test_goal_target_refuses_bad_input(baseline, target, percent):
    with pytest.raises(ValueError):
        goal_target(baseline, target, percent)


def test_goal_two_values_one_day_the_later_wins():
    values = [(HALF, 0.60), (HALF, 0.52)]
    result = goal_status(values, 0.50, 0.60, DEADLINE, HALF, start=START)
    assert (result.status, result.current) == ("at_risk", 0.52)
