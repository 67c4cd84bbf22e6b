from collections import defaultdict
from datetime import timedelta

import pytz

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.osv import expression
from odoo.tools import SQL, float_round, ormcache

from odoo.addons.base.models.res_partner import _tz_get

WEEKDAY_FIELDS = (
    "weekday_mon",
    "weekday_tue",
    "weekday_wed",
    "weekday_thu",
    "weekday_fri",
    "weekday_sat",
    "weekday_sun",
)
# Campaign review figures (review_<key> fields, _mlm_review).
REVIEW_KEYS = (
    "bonus_points",
    "members_reached",
    "member_orders_during",
    "member_orders_before",
    "member_revenue_during",
    "member_revenue_before",
    "other_orders_during",
    "other_orders_before",
    "other_revenue_during",
    "other_revenue_before",
)
SEGMENT_FIELDS = {
    "segment_heavy": "heavy",
    "segment_medium": "medium",
    "segment_low": "low",
}


class LoyaltyMlmCampaign(models.Model):
    """Extra points for orders inside a time window: double points weekends.

    An order inside the window (and on one of its weekdays, if any are
    ticked) earns a campaign bonus entry of (multiplier - 1) times the points
    it earned, for its lines in the campaign's product categories (all lines
    when none are set), if the member passes the stage, tier and segment
    restrictions. Campaigns never stack: when several apply to a line, the
    highest multiplier wins (then the lowest sequence).
    """

    _name = "loyalty.mlm.campaign"
    _inherit = ["loyalty.mlm.measured.mixin"]
    _description = "Member Points Campaign"
    _order = "date_start desc, sequence, id"

    name = fields.Char(required=True, translate=True)
    active = fields.Boolean(default=True)
    sequence = fields.Integer(default=10)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    date_start = fields.Datetime(string="Start", required=True)
    date_end = fields.Datetime(
        string="End", required=True, help="Orders up to this moment (included) count."
    )
    tz = fields.Selection(
        _tz_get,
        string="Timezone",
        required=True,
        default=lambda self: self.env.user.tz or "UTC",
        help="The weekdays are those of this timezone.",
    )
    weekday_mon = fields.Boolean(string="Monday")
    weekday_tue = fields.Boolean(string="Tuesday")
    weekday_wed = fields.Boolean(string="Wednesday")
    weekday_thu = fields.Boolean(string="Thursday")
    weekday_fri = fields.Boolean(string="Friday")
    weekday_sat = fields.Boolean(string="Saturday")
    weekday_sun = fields.Boolean(string="Sunday")
    multiplier = fields.Float(
        default=2.0,
        digits=(16, 2),
        help="2.0: double points, the order earns a campaign bonus equal to the "
        "points it earned.",
    )
    channel = fields.Selection(
        [("sale", "Sales orders"), ("pos", "Point of Sale"), ("both", "Both")],
        required=True,
        default="both",
    )
    stage_ids = fields.Many2many(
        "loyalty.mlm.stage",
        string="Lifecycle Stages",
        help="Only members in these stages (all when empty).",
    )
    tier_ids = fields.Many2many(
        "loyalty.mlm.tier",
        string="Tiers",
        help="Only members in these tiers (all when empty).",
    )
    segment_heavy = fields.Boolean(string="Heavy Users")
    segment_medium = fields.Boolean(string="Medium Users")
    segment_low = fields.Boolean(string="Low Users")
    categ_ids = fields.Many2many(
        "product.category",
        string="Product Categories",
        help="Only the lines of products in these categories (or their "
        "subcategories) get the bonus (all lines when empty).",
    )
    state = fields.Selection(
        [("planned", "Planned"), ("running", "Running"), ("done", "Ended")],
        compute="_compute_state",
        search="_search_state",
    )
    # Campaign review (computed on reading the form: _mlm_review).
    review_bonus_points = fields.Float(
        string="Bonus Points Given", compute="_compute_mlm_review", digits=(16, 2)
    )
    review_members_reached = fields.Integer(
        string="Members Reached", compute="_compute_mlm_review"
    )
    review_member_orders_during = fields.Float(
        string="Member Orders per Day", compute="_compute_mlm_review", digits=(16, 2)
    )
    review_member_orders_before = fields.Float(
        string="Member Orders per Day Before",
        compute="_compute_mlm_review",
        digits=(16, 2),
    )
    review_member_revenue_during = fields.Float(
        string="Member Revenue per Day", compute="_compute_mlm_review", digits=(16, 2)
    )
    review_member_revenue_before = fields.Float(
        string="Member Revenue per Day Before",
        compute="_compute_mlm_review",
        digits=(16, 2),
    )
    review_other_orders_during = fields.Float(
        string="Non-member Orders per Day",
        compute="_compute_mlm_review",
        digits=(16, 2),
    )
    review_other_orders_before = fields.Float(
        string="Non-member Orders per Day Before",
        compute="_compute_mlm_review",
        digits=(16, 2),
    )
    review_other_revenue_during = fields.Float(
        string="Non-member Revenue per Day",
        compute="_compute_mlm_review",
        digits=(16, 2),
    )
    review_other_revenue_before = fields.Float(
        string="Non-member Revenue per Day Before",
        compute="_compute_mlm_review",
        digits=(16, 2),
    )

    # ------------------------------------------------------------
    # Computes
    # ------------------------------------------------------------

    @api.depends("date_start", "date_end")
    def _compute_state(self):
        now = fields.Datetime.now()
        for campaign in self:
            if campaign.date_start and campaign.date_start > now:
                campaign.state = "planned"
            elif campaign.date_end and campaign.date_end < now:
                campaign.state = "done"
            else:
                campaign.state = "running"

    def _search_state(self, operator, value):
        if operator not in ("=", "!=", "in", "not in"):
            raise ValidationError(_("Unsupported search on the campaign state."))
        values = [value] if isinstance(value, str) else list(value)
        now = fields.Datetime.now()
        domains = {
            "planned": [("date_start", ">", now)],
            "running": [("date_start", "<=", now), ("date_end", ">=", now)],
            "done": [("date_end", "<", now)],
        }
        domain = expression.OR(
            [domains.get(state, expression.FALSE_DOMAIN) for state in values]
        )
        if operator in ("!=", "not in"):
            domain = ["!", *expression.normalize_domain(domain)]
        return domain

    @api.constrains("date_start", "date_end", "multiplier")
    def _check_window_and_multiplier(self):
        for campaign in self:
            if campaign.date_end < campaign.date_start:
                raise ValidationError(
                    _(
                        "The campaign %(name)s cannot end before it starts.",
                        name=campaign.name,
                    )
                )
            if campaign.multiplier <= 1:
                raise ValidationError(
                    _(
                        "The multiplier of the campaign %(name)s must be above 1 "
                        "(2.0: double points).",
                        name=campaign.name,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()  # _mlm_windows
        return super().create(vals_list)

    def write(self, vals):
        if {
            "company_id",
            "channel",
            "date_start",
            "date_end",
            "active",
            "tz",
            *WEEKDAY_FIELDS,
        } & set(vals):
            self.env.registry.clear_cache()  # _mlm_windows
        return super().write(vals)

    def unlink(self):
        self.env.registry.clear_cache()  # _mlm_windows
        return super().unlink()

    # ------------------------------------------------------------
    # Business methods
    # ------------------------------------------------------------

    def _mlm_reason(self):
        self.ensure_one()
        return _(
            "Campaign %(campaign)s (x%(multiplier)s)",
            campaign=self.name,
            multiplier=format(self.multiplier, "g"),
        )

    @api.model
    def _mlm_running(self, company, channel, when):
        """Campaigns of `company` for `channel` whose window contains `when`
        (a UTC datetime) on one of their weekdays."""
        ids = [
            campaign_id
            for campaign_id, start, end, days, tz in self._mlm_windows(
                company.id, channel
            )
            if start <= when <= end and self._mlm_on_days(when, days, tz)
        ]
        return self.sudo().browse(ids)

    @api.model
    @ormcache("company_id", "channel")
    def _mlm_windows(self, company_id, channel):
        """((id, start, end, weekdays, tz),) of the active campaigns of a
        company and channel, cached: every earning order asks, and most of
        the time no campaign is running, or not on that weekday (see
        create/write/unlink)."""
        return tuple(
            (
                campaign.id,
                campaign.date_start,
                campaign.date_end,
                tuple(campaign[name] for name in WEEKDAY_FIELDS),
                campaign.tz,
            )
            for campaign in self.sudo().search_fetch(
                [
                    ("company_id", "=", company_id),
                    ("channel", "in", (channel, "both")),
                ],
                ["date_start", "date_end", "tz", *WEEKDAY_FIELDS],
            )
        )

    @staticmethod
    def _mlm_on_days(when, days, tz):
        """Whether the UTC datetime `when` falls, in `tz`, on one of `days`
        (Monday first; none set: every day)."""
        if not any(days):
            return True
        local = pytz.utc.localize(when).astimezone(pytz.timezone(tz or "UTC"))
        return days[local.weekday()]

    def _mlm_accepts_member(self, partner, company):
        """Whether the member `partner` passes the stage, tier and segment
        restrictions (the stage and segment are the commercial entity's)."""
        self.ensure_one()
        commercial = partner.commercial_partner_id.with_company(company)
        if self.stage_ids and commercial.mlm_stage_id not in self.stage_ids:
            return False
        # An archived tier in the restriction still restricts.
        tiers = self.with_context(active_test=False).tier_ids
        if tiers and partner.with_company(company).mlm_tier_id not in tiers:
            return False
        segments = {code for name, code in SEGMENT_FIELDS.items() if self[name]}
        if segments:
            return (
                "mlm_usage_segment" in commercial._fields
                and commercial.mlm_usage_segment in segments
            )
        return True

    def _mlm_covers(self, product):
        self.ensure_one()
        if not self.categ_ids:
            return True
        path = product.categ_id.parent_path or ""
        return any(path.startswith(categ.parent_path) for categ in self.categ_ids)

    @api.model
    def _mlm_bonuses(self, company, channel, when, partner, lines, base):
        """[(campaign, bonus points)] of an order that earned `base` points.

        `lines` are (product, amount) of the order's product lines. Each line
        takes the best applicable campaign (highest multiplier, then lowest
        sequence); a campaign's bonus is base x (its lines' share of the
        amount) x (multiplier - 1).
        """
        # A member in a campaign's control group earns nothing from it.
        campaigns = self._mlm_running(company, channel, when).filtered(
            lambda campaign: (
                campaign._mlm_accepts_member(partner, company)
                and not campaign._mlm_in_control(partner)
            )
        )
        total = sum(amount for _product, amount in lines if amount > 0)
        if not campaigns or base <= 0 or total <= 0:
            return []
        ranked = campaigns.sorted(lambda c: (-c.multiplier, c.sequence, c.id))
        shares = defaultdict(float)
        for product, amount in lines:
            if amount <= 0:
                continue
            best = next((c for c in ranked if c._mlm_covers(product)), None)
            if best:
                shares[best] += amount / total
        return [
            (campaign, float_round(base * share * (campaign.multiplier - 1), 2))
            for campaign, share in sorted(shares.items(), key=lambda item: item[0].id)
        ]

    # ------------------------------------------------------------
    # Results (loyalty.mlm.measured.mixin)
    # ------------------------------------------------------------

    @api.model
    def _mlm_measured_actions(self):
        # Without a control group there is nothing to compare (the campaign
        # review shows the before / during figures instead).
        return self.search(
            [
                ("date_start", "<=", fields.Datetime.now()),
                ("mlm_control_share", ">", 0),
            ]
        )

    def _mlm_member_domain(self):
        """res.partner domain of the members the campaign addresses today
        (its stage, tier and segment restrictions; as _mlm_accepts_member)."""
        self.ensure_one()
        domain = [
            ("loyalty_card_ids.program_id", "=", self.company_id.mlm_program_id.id)
        ]
        if self.stage_ids:
            domain.append(
                ("commercial_partner_id.mlm_stage_id", "in", self.stage_ids.ids)
            )
        tiers = self.with_context(active_test=False).tier_ids
        if tiers:
            domain.append(("mlm_tier_id", "in", tiers.ids))
        segments = [code for name, code in SEGMENT_FIELDS.items() if self[name]]
        if segments:
            domain.append(("commercial_partner_id.mlm_usage_segment", "in", segments))
        return domain

    def _mlm_result_population(self):
        """The members it addresses (as they are today), from its start; the
        control group are those its control share holds out."""
        self.ensure_one()
        if not self.company_id.mlm_program_id:
            return []
        partners = (
            self.env["res.partner"]
            .with_company(self.company_id)
            .sudo()
            .search(self._mlm_member_domain())
        )
        return [
            (partner.id, self.date_start, self._mlm_in_control(partner.id))
            for partner in partners
        ]

    def _mlm_result_cost(self, population):
        """The value of the campaign bonuses of its window."""
        self.ensure_one()
        groups = (
            self.env["loyalty.mlm.ledger"]
            .sudo()
            ._read_group(
                [
                    ("company_id", "=", self.company_id.id),
                    ("kind", "=", "campaign_bonus"),
                    ("partner_id", "in", [p[0] for p in population]),
                    ("date", ">=", self.date_start),
                    ("date", "<=", self.date_end),
                ],
                [],
                ["points:sum"],
            )
        )
        return (groups[0][0] or 0.0) * self.company_id.mlm_point_value

    # ------------------------------------------------------------
    # Campaign review
    # ------------------------------------------------------------

    def _mlm_campaign_days(self, since, until):
        """Local dates in [since, until] (dates) on the campaign's weekdays."""
        self.ensure_one()
        days = tuple(self[name] for name in WEEKDAY_FIELDS)
        day, result = since, []
        while day <= until:
            if not any(days) or days[day.weekday()]:
                result.append(day)
            day += timedelta(days=1)
        return result

    def _mlm_review(self):
        """The campaign in figures: bonus points given and members reached
        (campaign bonuses of its window: overlapping campaigns share them),
        and per day of the campaign vs the same weekdays of the 4 weeks
        before its start, members' and other customers' orders and revenue.
        One query for the orders, one for the bonuses."""
        self.ensure_one()
        tz = pytz.timezone(self.tz or "UTC")

        def local(moment):
            return pytz.utc.localize(moment).astimezone(tz).date()

        start, end = local(self.date_start), local(self.date_end)
        before = self._mlm_campaign_days(
            start - timedelta(days=28), start - timedelta(days=1)
        )
        during = self._mlm_campaign_days(start, min(end, local(fields.Datetime.now())))
        stream = self.env["loyalty.mlm.kpi.snapshot"]._mlm_order_stream(
            self.company_id,
            self.date_start - timedelta(days=29),
            self.date_end + timedelta(days=1),
        )
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT timezone(%(tz)s, timezone('UTC', o.at))::date AS day,
                       EXISTS (SELECT 1 FROM loyalty_card c
                                WHERE c.partner_id = o.partner_id
                                  AND c.program_id = %(program)s) AS member,
                       COUNT(*) FILTER (WHERE o.is_order), SUM(o.revenue)
                  FROM (%(stream)s) o
              GROUP BY 1, 2
                """,
                tz=self.tz or "UTC",
                program=self.company_id.mlm_program_id.id or 0,
                stream=stream,
            )
        )
        sums = defaultdict(lambda: [0, 0.0])
        days_before, days_during = set(before), set(during)
        for day, member, orders, revenue in self.env.cr.fetchall():
            period = (
                "during"
                if day in days_during
                else "before"
                if day in days_before
                else None
            )
            if period:
                key = (period, "member" if member else "other")
                sums[key][0] += orders
                sums[key][1] += revenue or 0.0
        [(points, reached)] = (
            self.env["loyalty.mlm.ledger"]
            .sudo()
            ._read_group(
                [
                    ("company_id", "=", self.company_id.id),
                    ("kind", "=", "campaign_bonus"),
                    ("date", ">=", self.date_start),
                    ("date", "<=", self.date_end),
                ],
                [],
                ["points:sum", "partner_id:count_distinct"],
            )
        )
        review = {"bonus_points": points or 0.0, "members_reached": reached}
        for period, days in (("during", during), ("before", before)):
            for group in ("member", "other"):
                orders, revenue = sums[(period, group)]
                review[f"{group}_orders_{period}"] = orders / len(days) if days else 0.0
                review[f"{group}_revenue_{period}"] = (
                    revenue / len(days) if days else 0.0
                )
        return review

    @api.depends_context("uid")
    def _compute_mlm_review(self):
        for campaign in self:
            if campaign.id and campaign.date_start and campaign.company_id:
                review = campaign._mlm_review()
            else:
                review = {}
            for key in REVIEW_KEYS:
                campaign[f"review_{key}"] = review.get(key, 0)
