import logging
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytz

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..tools import kpi as kpi_tools
from ..tools.lifecycle import STAGES

_logger = logging.getLogger(__name__)

# The backfill: this many months back, and as many weeks as a quarter holds.
BACKFILL_MONTHS = 24
BACKFILL_WEEKS = 13

SEGMENTS = ("heavy", "medium", "low")
QUADRANTS = ("true_friend", "butterfly", "barnacle", "stranger")
PERIOD_KIND_SELECTION = [
    ("week", "Week"),
    ("month", "Month"),
    ("quarter", "Quarter"),
    ("year", "Year"),
]
# The cockpit's calendar periods (tools/kpi.py knows "custom" too, for goals
# and ad-hoc comparisons; snapshots are kept per calendar period only).
SNAPSHOT_KINDS = tuple(kind for kind, _label in PERIOD_KIND_SELECTION)
DIMENSION_SELECTION = [
    ("all", "All customers"),
    ("stage", "Stage"),
    ("segment", "Segment"),
    ("tier", "Tier"),
    ("quadrant", "Loyalty x Profit"),
]
# The KPI codes of tools/kpi.py with their labels (shared by goals, the
# cockpit and the digest, so that each KPI has one name everywhere).
KPI_SELECTION = [
    ("members_total", "Members"),
    ("members_new", "New members"),
    ("members_active", "Active members"),
    ("active_customers", "Active customers"),
    ("participation_rate", "Participation"),
    ("member_revenue_share", "Members' share of revenue"),
    ("retention_rate", "Retention rate"),
    ("repeat_purchase_rate", "Repeat purchase rate"),
    ("aov_members", "Average order value (members)"),
    ("aov_non_members", "Average order value (non-members)"),
    ("average_clv", "Average CLV"),
    ("redemption_rate", "Redemption rate"),
    ("breakage_rate", "Breakage"),
    ("points_liability", "Points liability"),
    ("churned", "Churned"),
    ("won_back", "Won back"),
]
# How each KPI is shown: an integer count, a rate (fraction shown as %), or
# an amount in company currency.
KPI_FORMAT = {
    "members_total": "integer",
    "members_new": "integer",
    "members_active": "integer",
    "active_customers": "integer",
    "participation_rate": "percent",
    "member_revenue_share": "percent",
    "retention_rate": "percent",
    "repeat_purchase_rate": "percent",
    "aov_members": "monetary",
    "aov_non_members": "monetary",
    "average_clv": "monetary",
    "redemption_rate": "percent",
    "breakage_rate": "percent",
    "points_liability": "monetary",
    "churned": "integer",
    "won_back": "integer",
}
# KPIs measured on the whole programme only (the ledger and the stage
# moves are not split per stage, segment, tier or quadrant).
PROGRAMME_KPIS = (
    "redemption_rate",
    "breakage_rate",
    "points_liability",
    "churned",
    "won_back",
)


class LoyaltyMlmKpiSnapshot(models.Model):
    """The programme's KPIs of one company for one calendar period.

    One row per (company, period, dimension value): the "all" row holds every
    KPI of tools/kpi.py plus the JSON the cockpit draws (stage distribution
    and flow, segment x quadrant grid); the stage / segment / tier / quadrant
    rows hold the customer KPIs of that part. Written set-based by the
    nightly chain after scores and stages (the current week, month, quarter
    and year, and the periods that closed since the last run) and by the
    backfill (the last 24 months, 8 quarters, 2 years and 13 weeks, from the
    orders, the ledger and the stage history). A row of a period that is
    still running is "to date" and is rewritten each night; `date_computed`
    says as of which day.

    Counts and sums are stored next to the rates so that a pivot adds parts
    up correctly (a mean of rates is not the rate of the sums); the rates
    themselves are not aggregated.
    """

    _name = "loyalty.mlm.kpi.snapshot"
    _description = "Member Programme KPI Snapshot"
    _order = "company_id, period_kind, date_start desc, dimension, id"
    _check_company_auto = True

    company_id = fields.Many2one(
        "res.company", required=True, index=True, ondelete="cascade"
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    period_kind = fields.Selection(
        PERIOD_KIND_SELECTION, string="Period", required=True
    )
    date_start = fields.Date(string="From", required=True, index=True)
    date_end = fields.Date(string="To", required=True, help="Last day included.")
    date_computed = fields.Date(
        string="As Of",
        required=True,
        help="The day the figures were computed for: a period still running "
        "shows its figures to that day.",
    )
    is_closed = fields.Boolean(
        string="Closed", help="The period had ended when it was computed."
    )
    dimension = fields.Selection(DIMENSION_SELECTION, required=True, default="all")
    stage_id = fields.Many2one("loyalty.mlm.stage", string="Stage", index=True)
    usage_segment = fields.Selection(
        [("heavy", "Heavy user"), ("medium", "Medium user"), ("low", "Low user")],
        string="Segment",
    )
    tier_id = fields.Many2one("loyalty.mlm.tier", string="Tier")
    quadrant = fields.Selection(
        [
            ("true_friend", "True Friend"),
            ("butterfly", "Butterfly"),
            ("barnacle", "Barnacle"),
            ("stranger", "Stranger"),
        ],
        string="Loyalty x Profit",
    )

    # -- additive counts and sums (tools/kpi.py:CustomerTotals) ------------
    customers = fields.Integer(help="Customers with a stage or an order.")
    members_total = fields.Integer(string="Members")
    members_new = fields.Integer(string="New Members")
    members_active = fields.Integer(string="Active Members")
    active_customers = fields.Integer(string="Active Customers")
    ordered_before = fields.Integer(string="Ordered in Previous Period")
    retained = fields.Integer(string="Retained")
    buyers_12m = fields.Integer(string="Buyers (12 months)")
    repeat_buyers = fields.Integer(string="Repeat Buyers (12 months)")
    orders = fields.Integer()
    revenue = fields.Monetary(currency_field="currency_id")
    member_orders = fields.Integer(string="Member Orders")
    member_revenue = fields.Monetary(
        string="Member Revenue", currency_field="currency_id"
    )
    clv_sum = fields.Monetary(string="CLV (sum)", currency_field="currency_id")
    clv_count = fields.Integer(string="Customers with a CLV")
    # Points moved in the period, and in the 12 months ending with it (the
    # window of the redemption rate and the breakage).
    points_earned = fields.Float(string="Points Earned", digits=(16, 2))
    points_spent = fields.Float(string="Points Spent", digits=(16, 2))
    points_expired = fields.Float(string="Points Expired", digits=(16, 2))
    points_earned_12m = fields.Float(string="Points Earned (12 months)", digits=(16, 2))
    points_spent_12m = fields.Float(string="Points Spent (12 months)", digits=(16, 2))
    points_expired_12m = fields.Float(
        string="Points Expired (12 months)", digits=(16, 2)
    )
    points_outstanding = fields.Float(
        string="Outstanding Points",
        digits=(16, 2),
        help="Positive member card balances at the end of the period "
        "(or on the day computed).",
    )
    churned = fields.Integer()
    won_back = fields.Integer(string="Won Back")

    # -- rates (not aggregated: a pivot shows the sums above) --------------
    participation_rate = fields.Float(aggregator=None)
    member_revenue_share = fields.Float(
        string="Members' Share of Revenue", aggregator=None
    )
    retention_rate = fields.Float(aggregator=None)
    repeat_purchase_rate = fields.Float(aggregator=None)
    aov_members = fields.Monetary(
        string="AOV Members", currency_field="currency_id", aggregator=None
    )
    aov_non_members = fields.Monetary(
        string="AOV Non-members", currency_field="currency_id", aggregator=None
    )
    average_clv = fields.Monetary(
        string="Average CLV", currency_field="currency_id", aggregator=None
    )
    redemption_rate = fields.Float(aggregator=None)
    breakage_rate = fields.Float(aggregator=None)
    points_liability = fields.Monetary(
        currency_field="currency_id",
        help="Outstanding points x the value of a point, in company currency.",
    )
    # Which rates are undefined (None in tools/kpi.py: no denominator). A
    # Float column cannot hold "no data", and 0% must not stand for it.
    undefined_kpis = fields.Char(
        help="Comma-separated KPI codes without a value (nothing to divide by)."
    )

    # -- what the cockpit draws (on the "all" rows) -------------------------
    stage_distribution = fields.Json(help="{stage code: customers}")
    stage_flow = fields.Json(help="[[from stage code or null, to stage code, moves]]")
    segment_grid = fields.Json(
        help="[[segment, quadrant, customers, revenue]] of the period."
    )

    _sql_constraints = [
        (
            "kind_dimension_unique",
            "UNIQUE NULLS NOT DISTINCT (company_id, period_kind, date_start,"
            " dimension, stage_id, usage_segment, tier_id, quadrant)",
            "There is one snapshot per company, period and part.",
        ),
    ]

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------

    def _mlm_kpi_value(self, code):
        """The value of KPI `code` on this row; None when undefined."""
        self.ensure_one()
        if code not in kpi_tools.KPI_DIRECTION:
            raise UserError(_("Unknown KPI %(code)s.", code=code))
        undefined = (self.undefined_kpis or "").split(",")
        if code in undefined:
            return None
        if code == "average_clv" and not self.clv_count:
            return None
        return self[code]

    @api.model
    def _mlm_series(
        self,
        company,
        kind,
        code,
        dimension="all",
        value=False,
        limit=None,
        until=None,
    ):
        """[(date_start, date_end, value)] of KPI `code`, oldest first.

        `value`: the stage / tier record, or segment / quadrant key, of a
        dimension other than "all". `until`: only periods starting on or
        before that day. `limit`: the last so many periods.
        """
        domain = [
            ("company_id", "=", company.id),
            ("period_kind", "=", kind),
            ("dimension", "=", dimension),
        ]
        domain += self._mlm_dimension_domain(dimension, value)
        if until:
            domain.append(("date_start", "<=", until))
        rows = self.sudo().search(domain, order="date_start desc", limit=limit)
        return [
            (row.date_start, row.date_end, row._mlm_kpi_value(code))
            for row in reversed(rows)
        ]

    @api.model
    def _mlm_dimension_domain(self, dimension, value):
        field = {
            "stage": "stage_id",
            "segment": "usage_segment",
            "tier": "tier_id",
            "quadrant": "quadrant",
        }.get(dimension)
        if not field:
            return []
        if isinstance(value, models.BaseModel):
            value = value.id
        return [(field, "=", value)]

    @api.model
    def _mlm_period(self, kind, day):
        """The tools Period of kind `kind` containing `day`."""
        if kind not in SNAPSHOT_KINDS:
            raise UserError(_("Unknown period %(kind)s.", kind=kind))
        if not isinstance(day, date):
            day = fields.Date.to_date(day)
        return kpi_tools.Period.containing(day, kind)

    # ------------------------------------------------------------------
    # Writing: the nightly snapshots and the backfill
    # ------------------------------------------------------------------

    @api.model
    def _mlm_trigger_snapshots(self):
        """Run the snapshot job soon (the nightly chain calls this after the
        stages, like the treatments: its own job, its own transaction)."""
        cron = self.env.ref(
            "loyalty_mlm.ir_cron_kpi_snapshots", raise_if_not_found=False
        )
        if cron:
            cron._trigger()

    @api.model
    def _cron_snapshots(self, companies=None, today=None):
        """Nightly, after scores and stages: the KPIs of the current week,
        month, quarter and year of every company, up to yesterday (the last
        complete day), then the goals measured on them.

        Each company's periods are computed together (one pass over the
        orders, one over the ledger, one over the stage moves); a company is
        one step for ir.cron's progress. Returns the rows written.
        """
        if companies is None:
            companies = self.env["res.company"].sudo().search([])
        written = 0
        for done, company in enumerate(companies, start=1):
            day = (today or self._mlm_company_today(company)) - timedelta(days=1)
            periods = [
                kpi_tools.Period.containing(day, kind) for kind in SNAPSHOT_KINDS
            ]
            written += len(self._mlm_build(company, periods, day, dimensions=True))
            self.env["ir.cron"]._notify_progress(
                done=done, remaining=len(companies) - done
            )
        if "loyalty.mlm.goal" in self.env:
            self.env["loyalty.mlm.goal"]._mlm_update_goals(companies, today)
        return written

    def action_backfill(self):
        """Button: rebuild the history of the current company's KPIs."""
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager"):
            raise AccessError(
                _("Only a Loyalty Manager can recompute the KPI history.")
            )
        self.sudo()._mlm_backfill(self.env.company)
        return True

    @api.model
    def _mlm_backfill(self, companies, today=None, months=BACKFILL_MONTHS):
        """The KPIs of the last `months` months (and of the quarters, years
        and weeks they cover) from the orders, the ledger and the stage
        history, so that a new install shows trends on day one; then the
        current periods, like a night but up to `today` included. Past
        periods get the "all" row only: which stage, segment or tier a
        customer had back then is not known (except the stage, whose history
        gives the stage distribution)."""
        written = self.browse()
        for company in companies:
            # Up to today so far (the nightly job stops at yesterday): an
            # install or a click shows today's members and orders too.
            day = today or self._mlm_company_today(company)
            written |= self._mlm_build(
                company, self._mlm_backfill_periods(day, months), day, dimensions=False
            )
            written |= self._mlm_build(
                company,
                [kpi_tools.Period.containing(day, kind) for kind in SNAPSHOT_KINDS],
                day,
                dimensions=True,
            )
        if "loyalty.mlm.goal" in self.env:
            self.env["loyalty.mlm.goal"]._mlm_update_goals(companies, today)
        return written

    @staticmethod
    def _mlm_backfill_periods(day, months):
        """The closed periods before the one containing `day`: `months`
        months, the quarters and years those months touch, and as many weeks
        as fit in a quarter."""
        periods = []
        for kind, count in (
            ("month", months),
            ("quarter", -(-months // 3)),
            ("year", -(-months // 12)),
            ("week", BACKFILL_WEEKS),
        ):
            period = kpi_tools.Period.containing(day, kind)
            for _i in range(count):
                period = period.previous()
                periods.append(period)
        return periods

    @api.model
    def _mlm_company_today(self, company):
        return datetime.now(kpi_tools._tz(self._mlm_tz(company))).date()

    @api.model
    def _mlm_tz(self, company):
        """The company's time zone: its address's, else the user's, else UTC."""
        tz = company.partner_id.tz or self.env.context.get("tz") or self.env.user.tz
        return tz if tz in pytz.all_timezones_set else "UTC"

    def _mlm_build(self, company, periods, day, dimensions):
        """Compute and store the snapshots of `periods` for `company`, as of
        `day` (periods still running are cut at the end of that day).

        `dimensions`: also the stage / segment / tier / quadrant rows, from
        each customer's current values (only right for current periods).
        Returns the rows written; the rows they replace are deleted.
        """
        self = self.sudo()
        windows = [
            _Window(key, period, min(period.stop, day + timedelta(days=1)))
            for key, period in enumerate(periods)
        ]
        tz = self._mlm_tz(company)
        customers = self._mlm_read_customers(company, windows, tz, dimensions)
        ledger = self._mlm_read_ledger(company, windows, tz)
        outstanding = self._mlm_read_outstanding(company, windows, tz)
        moves = self._mlm_read_moves(company, windows, tz)
        scored = self._mlm_read_scored(company) if dimensions else {}
        stages = self._mlm_read_stage_distribution(company, windows, tz, dimensions)
        point_value = company.mlm_point_value
        values = []
        for window in windows:
            key = window.key
            # A company without any customer still gets its (empty) row.
            parts = customers.get(key) or {("all", False): kpi_tools.CustomerTotals()}
            for part, totals in parts.items():
                if part[0] == "grid":
                    continue
                row = self._mlm_row_values(company, window, day, part, totals)
                count, clv_sum, clv_count = scored.get(part, (0, 0.0, 0))
                row.update(
                    customers=count,
                    clv_sum=clv_sum,
                    clv_count=clv_count,
                    average_clv=clv_sum / clv_count if clv_count else None,
                )
                if part == ("all", False):
                    row.update(
                        self._mlm_programme_values(
                            window,
                            ledger,
                            outstanding.get(key, 0.0),
                            point_value,
                            moves.get(key, {}),
                        ),
                        stage_distribution={
                            code: stages.get(key, {}).get(code, 0) for code in STAGES
                        },
                        segment_grid=self._mlm_grid(parts, scored),
                    )
                # A Float column cannot hold "no value": list the codes.
                undefined = [code for code in KPI_FORMAT if row.get(code) is None]
                row["undefined_kpis"] = ",".join(undefined)
                row.update(dict.fromkeys(undefined, 0.0))
                values.append(row)
        self._mlm_delete(company, periods)
        return self.create(values)

    def _mlm_delete(self, company, periods):
        """Remove the stored rows of `periods` (they are about to be rebuilt)."""
        self.env.cr.execute(
            SQL(
                "DELETE FROM loyalty_mlm_kpi_snapshot WHERE company_id = %s"
                " AND (period_kind, date_start) IN (%s)",
                company.id,
                SQL(", ").join(
                    SQL("(%s, %s::date)", period.kind, period.start)
                    for period in periods
                ),
            )
        )
        self.invalidate_model()

    # -- the customers' side: one pass over the orders ----------------------

    @api.model
    def _mlm_order_stream(self, company, since, until):
        """Qualifying orders and refunds of `company` dated in [since, until)
        (UTC): partner_id, at, is_order, revenue in company currency; the
        scores' own sources (loyalty.mlm.partner.score), so that a KPI and a
        score never disagree on what an order is. Margins are not needed:
        their expression is skipped by a threshold no order reaches.
        Revenue as float8: summing doubles costs a third of summing numerics,
        and the KPIs are rounded to the cent (exact scores keep numerics)."""
        Score = self.env["loyalty.mlm.partner.score"]
        never = datetime(9999, 1, 1)
        sources = (company, 0.0, SQL(), never)
        return SQL(
            """
            SELECT partner_id, at, is_order, revenue::float8 AS revenue FROM (
                %(sale)s UNION ALL %(pos)s UNION ALL %(credit_note)s
            ) r WHERE r.at >= %(since)s AND r.at < %(until)s
            """,
            sale=Score._mlm_score_sale_rows(*sources),
            pos=Score._mlm_score_pos_rows(*sources),
            credit_note=Score._mlm_score_credit_note_rows(*sources),
            since=since,
            until=until,
        )

    def _mlm_read_customers(self, company, windows, tz, dimensions):
        """{window key: {part: CustomerTotals}}: the customer KPIs' counts and
        sums, aggregated in the database (tools/kpi.py:customer_totals is the
        reference this SQL follows; the tests compare the two).

        Every window boundary (period, previous period, trailing year,
        active days) cuts time into buckets; one pass over the orders sums
        each customer's orders, revenue and member orders and revenue per
        bucket (five aggregates, whatever the number of windows), then each
        customer's buckets give his figures per window; then they are
        counted and summed per window and part (GROUPING SETS: all, and
        with `dimensions` each stage, segment, tier, quadrant and segment x
        quadrant cell of the customers' current values). Members without
        orders come from the member cards.
        """
        bounds = {window.key: window.utc(tz) for window in windows}
        cuts = sorted(
            {moment for b in bounds.values() for pair in b.values() for moment in pair}
        )
        # Bucket i (1-based, width_bucket's numbering) is [cuts[i-1], cuts[i]).
        index = {moment: position for position, moment in enumerate(cuts, start=1)}
        # Each distinct aggregate once: the night's periods all end on the
        # same day, so they share their trailing year, active days and
        # member counts; the Python side picks each window's columns.
        per_window, outer, picks = {}, {}, []

        def bucket_sum(column, start, stop):
            key = (column, index[start], index[stop])
            if key not in per_window:
                per_window[key] = SQL(
                    "COALESCE(SUM(b.%s) FILTER (WHERE b.bucket >= %s"
                    " AND b.bucket < %s), 0) AS %s",
                    SQL(column),
                    index[start],
                    index[stop],
                    SQL(f"w{len(per_window)}"),
                )
            return SQL(f"d.w{list(per_window).index(key)}")

        def aggregate(expression):
            key = (expression.code, tuple(expression.params))
            if key not in outer:
                outer[key] = expression
            return list(outer).index(key)

        def count(condition):
            return aggregate(SQL("COUNT(*) FILTER (WHERE %s)::int", condition))

        for window in windows:
            b = bounds[window.key]
            p0, p1 = b["p"]
            o = bucket_sum("o", p0, p1)
            op = bucket_sum("o", *b["prev"])
            oy = bucket_sum("o", b["year"][0], p1)
            act = bucket_sum("o", b["active"][0], p1)
            customer = SQL("d.customer_id IS NOT NULL")
            member = SQL("d.member_since <= %s", window.last_day)
            # The CustomerTotals of the window, in its field order.
            picks.append(
                [
                    count(member),
                    count(
                        SQL("%s AND d.member_since >= %s", member, window.period.start)
                    ),
                    count(SQL("%s AND %s > 0", member, act)),
                    count(SQL("%s AND %s > 0", customer, act)),
                    count(SQL("%s AND %s > 0", customer, op)),
                    count(SQL("%s AND %s > 0 AND %s > 0", customer, op, o)),
                    count(SQL("%s AND %s > 0", customer, oy)),
                    count(SQL("%s AND %s >= 2", customer, oy)),
                    aggregate(SQL("COALESCE(SUM(%s), 0)::int", o)),
                    aggregate(
                        SQL(
                            "ROUND(COALESCE(SUM(%s), 0)::numeric, 2)::float8",
                            bucket_sum("rev", p0, p1),
                        )
                    ),
                    aggregate(
                        SQL("COALESCE(SUM(%s), 0)::int", bucket_sum("mo", p0, p1))
                    ),
                    aggregate(
                        SQL(
                            "ROUND(COALESCE(SUM(%s), 0)::numeric, 2)::float8",
                            bucket_sum("mrev", p0, p1),
                        )
                    ),
                ]
            )
        dimension_columns = SQL("NULL AS no_dimension")
        dimension_join = SQL()
        grouping = SQL("()")
        parts = SQL("15, NULL::int, NULL::varchar, NULL::int, NULL::varchar")
        if dimensions:
            # Stage and tier are company-dependent: a JSON of {company id: id}.
            dimension_columns = SQL(
                "(rp.mlm_stage_id ->> %s)::int AS stage_id, s.usage_segment,"
                " (rp.mlm_tier_id ->> %s)::int AS tier_id, s.quadrant",
                str(company.id),
                str(company.id),
            )
            dimension_join = SQL(
                """
                LEFT JOIN res_partner rp ON rp.id = c.customer_id
                LEFT JOIN loyalty_mlm_partner_score s
                       ON s.partner_id = c.customer_id AND s.company_id = %s
                """,
                company.id,
            )
            grouping = SQL(
                """GROUPING SETS ((), (d.stage_id), (d.usage_segment),
                   (d.tier_id), (d.quadrant), (d.usage_segment, d.quadrant))"""
            )
            parts = SQL(
                "GROUPING(d.stage_id, d.usage_segment, d.tier_id, d.quadrant),"
                " d.stage_id, d.usage_segment, d.tier_id, d.quadrant"
            )
        query = SQL(
            """
            WITH stream AS (%(stream)s),
                 buckets AS (
                    SELECT p.commercial_partner_id AS cid,
                           width_bucket(r.at, %(cuts)s::timestamp[]) AS bucket,
                           COUNT(*) FILTER (WHERE r.is_order) AS o,
                           SUM(r.revenue) AS rev,
                           COUNT(*) FILTER (WHERE r.is_order
                                            AND r.at >= %(member_at)s) AS mo,
                           SUM(r.revenue) FILTER (WHERE r.at >= %(member_at)s)
                               AS mrev,
                           MAX(cp.mlm_member_since) AS since
                      FROM stream r
                      LEFT JOIN res_partner p ON p.id = r.partner_id
                      LEFT JOIN res_partner cp ON cp.id = p.commercial_partner_id
                     GROUP BY 1, 2
                 ),
                 per_customer AS (
                    SELECT b.cid, MAX(b.since) AS since, %(per_window)s
                      FROM buckets b GROUP BY b.cid
                 ),
                 members AS (
                    SELECT DISTINCT cmp.id AS mcid,
                           cmp.mlm_member_since AS member_since
                      FROM loyalty_card card
                      JOIN res_partner mp ON mp.id = card.partner_id
                      JOIN res_partner cmp ON cmp.id = mp.commercial_partner_id
                     WHERE card.program_id = %(program)s
                 ),
                 customers AS (
                    -- The member since of customers with orders came with
                    -- their orders; the members without come from the cards.
                    SELECT COALESCE(pc.cid, m.mcid) AS customer_id,
                           COALESCE(pc.since, m.member_since) AS member_since,
                           pc.*
                      FROM per_customer pc
                      FULL JOIN members m ON m.mcid = pc.cid
                ),
                 dims AS (
                    SELECT c.*, %(dimension_columns)s
                      FROM customers c %(dimension_join)s
                 )
            SELECT %(parts)s, %(totals)s
              FROM dims d
             GROUP BY %(grouping)s
            """,
            stream=self._mlm_order_stream(company, cuts[0], cuts[-1]),
            cuts=cuts,
            # Bought as a member: on or after the local midnight that starts
            # the member_since day (NULL, never, for a non-member).
            member_at=SQL(
                "timezone('UTC', timezone(%s, cp.mlm_member_since::timestamp))", tz
            ),
            per_window=SQL(", ").join(per_window.values()),
            tz=tz,
            program=company.mlm_program_id.id or 0,
            dimension_columns=dimension_columns,
            dimension_join=dimension_join,
            totals=SQL(", ").join(outer.values()),
            grouping=grouping,
            parts=parts,
        )
        self.env.flush_all()
        cr = self.env.cr
        # The planner expects a few hundred customers out of the bucket
        # aggregation and looks each one up by index (stage, scores, member
        # since): hash joins over all of them cost a third of that. Grouped
        # by sorting, as the score refresh does: parallel workers sort their
        # share of the orders, where one hash table per level stays serial
        # (measured: a third faster at 100,000 customers, bench/README.md).
        cr.execute(
            SQL(
                "SET LOCAL work_mem = %s; SET LOCAL jit = off;"
                " SET LOCAL enable_nestloop = off; SET LOCAL enable_hashagg = off",
                "256MB",
            )
        )
        cr.execute(query)
        rows = cr.fetchall()
        cr.execute(
            SQL(
                "RESET work_mem; RESET jit; RESET enable_nestloop; RESET enable_hashagg"
            )
        )
        result = defaultdict(dict)
        for grouped, stage, segment, tier, quadrant, *sums in rows:
            part = self._mlm_part(grouped, stage, segment, tier, quadrant)
            if part:
                for window, columns in zip(windows, picks, strict=True):
                    result[window.key][part] = kpi_tools.CustomerTotals(
                        *(sums[column] for column in columns)
                    )
        return result

    @staticmethod
    def _mlm_part(grouped, stage, segment, tier, quadrant):
        """The part a GROUPING SETS row stands for, or None for customers
        without that value (no stage, not scored: not a part of their own).
        `grouped`: the GROUPING() bits of (stage, segment, tier, quadrant),
        1 where the column is aggregated away."""
        parts = {
            0b1111: ("all", False),
            0b0111: ("stage", stage),
            0b1011: ("segment", segment),
            0b1101: ("tier", tier),
            0b1110: ("quadrant", quadrant),
            0b1010: ("grid", (segment, quadrant)),
        }
        part = parts.get(grouped)
        if part is None:
            return None
        values = part[1] if part[0] == "grid" else (part[1],)
        return None if None in values else part

    # -- the programme's side: ledger, cards, stage moves, scores ----------

    def _mlm_read_ledger(self, company, windows, tz):
        """[(local day, kind, credit, debit)] of the ledger entries in the
        windows' trailing years: one grouped pass; each window then sums its
        own days (tools/kpi.py:point_flows says what counts as what)."""
        since = min(window.utc(tz)["year"][0] for window in windows)
        until = max(window.utc(tz)["p"][1] for window in windows)
        self.env.cr.execute(
            SQL(
                """
                SELECT timezone(%(tz)s, timezone('UTC', l.date))::date, l.kind,
                       SUM(GREATEST(l.points, 0))::float8,
                       SUM(GREATEST(-l.points, 0))::float8
                  FROM loyalty_mlm_ledger l
                 WHERE l.company_id = %(company)s
                   AND l.date >= %(since)s AND l.date < %(until)s
                 GROUP BY 1, 2
                """,
                tz=tz,
                company=company.id,
                since=since,
                until=until,
            )
        )
        return self.env.cr.fetchall()

    def _mlm_read_outstanding(self, company, windows, tz):
        """{window key: positive member card balances at the window's end}.

        A card's balance at a moment is its ledger's sum up to it (card ==
        ledger). The night's windows all end at today's midnight: the cards'
        balances less what was posted since, without reading the whole
        ledger; older ends (the backfill) sum each card's ledger once, with
        one column per end.
        """
        program = company.mlm_program_id.id or 0
        ends = sorted({window.utc(tz)["p"][1] for window in windows})
        cr = self.env.cr
        if len(ends) == 1 and ends[0] >= datetime.now() - timedelta(days=2):
            cr.execute(
                SQL(
                    """
                    SELECT COALESCE(SUM(GREATEST(c.points - COALESCE(l.recent, 0),
                                                 0)), 0)::float8
                      FROM loyalty_card c
                      LEFT JOIN (SELECT card_id, SUM(points) AS recent
                                   FROM loyalty_mlm_ledger
                                  WHERE company_id = %(company)s
                                    AND date >= %(end)s
                                  GROUP BY card_id) l ON l.card_id = c.id
                     WHERE c.program_id = %(program)s
                    """,
                    company=company.id,
                    end=ends[0],
                    program=program,
                )
            )
            balances = cr.fetchone()
        else:
            cr.execute(
                SQL(
                    "SELECT %s FROM (SELECT %s FROM loyalty_mlm_ledger l"
                    " JOIN loyalty_card c ON c.id = l.card_id"
                    " WHERE c.program_id = %s GROUP BY l.card_id) per_card",
                    SQL(", ").join(
                        SQL("COALESCE(SUM(GREATEST(b%s, 0)), 0)::float8", SQL(str(i)))
                        for i in range(len(ends))
                    ),
                    SQL(", ").join(
                        SQL(
                            "SUM(l.points) FILTER (WHERE l.date < %s) AS b%s",
                            end,
                            SQL(str(i)),
                        )
                        for i, end in enumerate(ends)
                    ),
                    program,
                )
            )
            balances = cr.fetchone()
        at_end = dict(zip(ends, balances, strict=True))
        return {window.key: at_end[window.utc(tz)["p"][1]] for window in windows}

    def _mlm_read_moves(self, company, windows, tz):
        """{window key: {"flow": {(from, to): moves}, "churned": n,
        "won_back": n}} of the stage moves dated in each window (codes; from
        None for a first assignment); churned and won back count customers
        once (tools/kpi.py:churned, won_back)."""
        bounds = SQL(", ").join(
            SQL("(%s, %s::timestamp, %s::timestamp)", w.key, *w.utc(tz)["p"])
            for w in windows
        )
        self.env.cr.execute(
            SQL(
                """
                SELECT w.key, GROUPING(fs.code, ts.code), fs.code, ts.code,
                       COUNT(*)::int,
                       COUNT(DISTINCT h.partner_id) FILTER (
                           WHERE ts.code = 'winback' AND fs.code IS NOT NULL
                             AND fs.code <> 'winback')::int,
                       COUNT(DISTINCT h.partner_id) FILTER (
                           WHERE fs.code = 'winback'
                             AND ts.code <> 'winback')::int
                  FROM loyalty_mlm_stage_history h
                  JOIN (VALUES %(bounds)s) AS w(key, start, stop)
                    ON h.date >= w.start AND h.date < w.stop
                  LEFT JOIN loyalty_mlm_stage fs ON fs.id = h.from_stage_id
                  JOIN loyalty_mlm_stage ts ON ts.id = h.to_stage_id
                 WHERE h.company_id = %(company)s
                 GROUP BY GROUPING SETS ((w.key, fs.code, ts.code), (w.key))
                """,
                bounds=bounds,
                company=company.id,
            )
        )
        moves = defaultdict(lambda: {"flow": {}, "churned": 0, "won_back": 0})
        for (
            key,
            grouped,
            from_code,
            to_code,
            count,
            churned,
            won,
        ) in self.env.cr.fetchall():
            if grouped:
                moves[key].update(churned=churned, won_back=won)
            else:
                moves[key]["flow"][(from_code, to_code)] = count
        return moves

    def _mlm_read_scored(self, company):
        """{part: (customers, CLV sum, customers with a CLV)} of the scored
        customers (every customer with an order), per current stage, segment,
        tier, quadrant and segment x quadrant cell."""
        self.env.cr.execute(
            SQL(
                """
                SELECT GROUPING(c.stage_id, c.usage_segment, c.tier_id,
                                c.quadrant),
                       c.stage_id, c.usage_segment, c.tier_id, c.quadrant,
                       COUNT(*)::int, COALESCE(SUM(c.clv), 0)::float8,
                       COUNT(c.clv)::int
                  FROM (SELECT (rp.mlm_stage_id ->> %(key)s)::int AS stage_id,
                               s.usage_segment,
                               (rp.mlm_tier_id ->> %(key)s)::int AS tier_id,
                               s.quadrant, s.clv
                          FROM loyalty_mlm_partner_score s
                          JOIN res_partner rp ON rp.id = s.partner_id
                         WHERE s.company_id = %(company)s) c
                 GROUP BY GROUPING SETS ((), (c.stage_id), (c.usage_segment),
                       (c.tier_id), (c.quadrant), (c.usage_segment, c.quadrant))
                """,
                key=str(company.id),
                company=company.id,
            )
        )
        scored = {}
        for grouped, stage, segment, tier, quadrant, *values in self.env.cr.fetchall():
            part = self._mlm_part(grouped, stage, segment, tier, quadrant)
            if part:
                scored[part] = tuple(values)
        return scored

    def _mlm_read_stage_distribution(self, company, windows, tz, current):
        """{window key: {stage code: customers}}: with `current`, today's
        stages (the contacts'); else each window end's, from the history
        (every customer's last move before it)."""
        cr = self.env.cr
        if current:
            cr.execute(
                SQL(
                    """
                    SELECT s.code, COUNT(*)::int
                      FROM res_partner p
                      JOIN loyalty_mlm_stage s
                        ON s.id = (p.mlm_stage_id ->> %(key)s)::int
                     WHERE p.active
                       AND (p.company_id IS NULL OR p.company_id = %(company)s)
                     GROUP BY s.code
                    """,
                    key=str(company.id),
                    company=company.id,
                )
            )
            counts = dict(cr.fetchall())
            return {window.key: counts for window in windows}
        ends = SQL(", ").join(
            SQL("(%s, %s::timestamp)", w.key, w.utc(tz)["p"][1]) for w in windows
        )
        cr.execute(
            SQL(
                """
                SELECT w.key, s.code, COUNT(*)::int
                  FROM (VALUES %(ends)s) AS w(key, stop)
                 CROSS JOIN LATERAL (
                       SELECT DISTINCT ON (h.partner_id) h.to_stage_id
                         FROM loyalty_mlm_stage_history h
                        WHERE h.company_id = %(company)s AND h.date < w.stop
                        ORDER BY h.partner_id, h.date DESC, h.id DESC) last
                  JOIN loyalty_mlm_stage s ON s.id = last.to_stage_id
                 GROUP BY w.key, s.code
                """,
                ends=ends,
                company=company.id,
            )
        )
        distribution = defaultdict(dict)
        for key, code, count in cr.fetchall():
            distribution[key][code] = count
        return distribution

    # -- rows ----------------------------------------------------------------

    def _mlm_row_values(self, company, window, day, part, totals):
        """The values of one snapshot row: the part's counts and sums and the
        customer KPIs computed from them by tools/kpi.py."""
        period = window.period
        dimension, value = part
        aov_members, aov_others = kpi_tools.average_order_values(totals)
        values = {
            "company_id": company.id,
            "period_kind": period.kind,
            "date_start": period.start,
            "date_end": period.last_day,
            "date_computed": min(day, period.last_day),
            "is_closed": period.last_day <= day,
            "dimension": dimension,
            "stage_id": value if dimension == "stage" else False,
            "usage_segment": value if dimension == "segment" else False,
            "tier_id": value if dimension == "tier" else False,
            "quadrant": value if dimension == "quadrant" else False,
            "members_total": totals.members_total,
            "members_new": totals.members_new,
            "members_active": totals.members_active,
            "active_customers": totals.active_customers,
            "ordered_before": totals.ordered_before,
            "retained": totals.retained,
            "buyers_12m": totals.buyers_12m,
            "repeat_buyers": totals.repeat_buyers,
            "orders": totals.orders,
            "revenue": totals.revenue,
            "member_orders": totals.member_orders,
            "member_revenue": totals.member_revenue,
            "participation_rate": kpi_tools.participation_rate(totals).value,
            "member_revenue_share": kpi_tools.member_revenue_share(totals).value,
            "retention_rate": kpi_tools.retention_rate(totals).value,
            "repeat_purchase_rate": kpi_tools.repeat_purchase_rate(totals).value,
            "aov_members": aov_members.value,
            "aov_non_members": aov_others.value,
        }
        # Programme-wide KPIs have no value on a part (PROGRAMME_KPIS).
        values.update(dict.fromkeys(PROGRAMME_KPIS))
        return values

    def _mlm_programme_values(self, window, ledger, outstanding, point_value, moves):
        """The "all" row's programme KPIs: point flows, liability, churn."""
        year_start = kpi_tools.shift_years(window.stop, -1)

        def totals_since(first):
            totals = defaultdict(lambda: [0.0, 0.0])
            for day, kind, credit, debit in ledger:
                if first <= day < window.stop:
                    totals[kind][0] += credit
                    totals[kind][1] += debit
            return [
                kpi_tools.LedgerTotal(kind, credit, debit)
                for kind, (credit, debit) in totals.items()
            ]

        in_period = kpi_tools.point_flows(totals_since(window.period.start))
        year = totals_since(year_start)
        in_year = kpi_tools.point_flows(year)
        return {
            "points_earned": in_period.earned,
            "points_spent": in_period.spent,
            "points_expired": in_period.expired,
            "points_earned_12m": in_year.earned,
            "points_spent_12m": in_year.spent,
            "points_expired_12m": in_year.expired,
            "points_outstanding": outstanding,
            "redemption_rate": kpi_tools.redemption_rate(year).value,
            "breakage_rate": kpi_tools.breakage_rate(year).value,
            "points_liability": kpi_tools.points_liability([outstanding], point_value),
            "churned": moves.get("churned", 0),
            "won_back": moves.get("won_back", 0),
            "stage_flow": [
                [from_code, to_code, count]
                for (from_code, to_code), count in sorted(
                    moves.get("flow", {}).items(),
                    key=lambda item: (item[0][0] or "", item[0][1]),
                )
            ],
        }

    @staticmethod
    def _mlm_grid(parts, scored):
        """[[segment, quadrant, scored customers, revenue of the period]]
        for every cell of the segment x quadrant grid (zeros included)."""
        grid = []
        for segment in SEGMENTS:
            for quadrant in QUADRANTS:
                cell = ("grid", (segment, quadrant))
                totals = parts.get(cell)
                grid.append(
                    [
                        segment,
                        quadrant,
                        scored.get(cell, (0,))[0],
                        totals.revenue if totals else 0.0,
                    ]
                )
        return grid


class _Window:
    """One period to compute, cut at `stop` (the day after the last day
    measured: a period still running is measured up to the day computed)."""

    __slots__ = ("_utc", "key", "period", "stop")

    def __init__(self, key, period, stop):
        self.key = key
        self.period = period
        self.stop = stop
        self._utc = {}

    @property
    def last_day(self):
        return self.stop - timedelta(days=1)

    def utc(self, tz):
        """Naive UTC bounds (start, stop) of the period ("p"), the period
        before it ("prev"), the trailing 12 months ("year") and the active
        days ("active"), all ending at the cut."""
        if tz not in self._utc:
            start = kpi_tools.utc_start_of_day
            stop = start(self.stop, tz)
            self._utc[tz] = {
                "p": (start(self.period.start, tz), stop),
                "prev": self.period.previous().utc_bounds(tz),
                "year": (start(kpi_tools.shift_years(self.stop, -1), tz), stop),
                "active": (
                    start(self.stop - timedelta(days=kpi_tools.ACTIVE_DAYS), tz),
                    stop,
                ),
            }
        return self._utc[tz]
