import logging
from datetime import date

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..tools import kpi as kpi_tools

_logger = logging.getLogger(__name__)

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
    participation_rate = fields.Float(digits=(16, 4), aggregator=None)
    member_revenue_share = fields.Float(
        string="Members' Share of Revenue", digits=(16, 4), aggregator=None
    )
    retention_rate = fields.Float(digits=(16, 4), aggregator=None)
    repeat_purchase_rate = fields.Float(digits=(16, 4), aggregator=None)
    aov_members = fields.Monetary(
        string="AOV Members", currency_field="currency_id", aggregator=None
    )
    aov_non_members = fields.Monetary(
        string="AOV Non-members", currency_field="currency_id", aggregator=None
    )
    average_clv = fields.Monetary(
        string="Average CLV", currency_field="currency_id", aggregator=None
    )
    redemption_rate = fields.Float(digits=(16, 4), aggregator=None)
    breakage_rate = fields.Float(digits=(16, 4), aggregator=None)
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
