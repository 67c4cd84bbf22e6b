import math

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, ValidationError

# Range of every numeric member setting: beyond it a setting is a typing
# error that breaks later work (a validity of 100,000 months makes every
# credit fail with "year out of range").
MLM_SETTING_BOUNDS = {
    "mlm_points_validity_months": (0, 120),
    "mlm_score_heavy_pct": (0, 100),
    "mlm_score_low_pct": (0, 100),
    "mlm_score_low_threshold": (0, 1e12),
    "mlm_score_loyalty_split_pct": (0, 100),
    "mlm_score_profit_split_pct": (0, 100),
    "mlm_score_default_margin_pct": (0, 100),
    "mlm_score_clv_years": (0, 100),
    "mlm_churn_horizon_days": (1, 3650),
    "mlm_clv_months": (1, 240),
    "mlm_at_risk_rise": (0, 100),
    "mlm_point_value": (0, 1e6),
    "mlm_lapse_days": (0, 3650),
    "mlm_onboarding_days": (0, 3650),
    "mlm_onboarding_max_orders": (0, 10000),
    "mlm_at_risk_churn": (0, 100),
    "mlm_order_drop_pct": (0, 100),
    "mlm_ambassador_referrals": (0, 10000),
    "mlm_welcome_bonus": (0, 1e6),
    "mlm_birthday_bonus": (0, 1e6),
    "mlm_referral_bonus": (0, 1e6),
    "mlm_referral_bonus_referred": (0, 1e6),
    "mlm_tier_grace_days": (0, 3650),
}


def mlm_check_bounds(model, bounds, vals):
    """Refuse values of `vals` outside `bounds` ({field: (min, max)}) with a
    ValidationError naming the setting; NaN, Infinity and text included.
    Called before the write: an integer beyond the column's range would
    otherwise fail in the database."""
    for fname, value in vals.items():
        if fname not in bounds:
            continue
        low, high = bounds[fname]
        try:
            number = float(value or 0)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and low <= number <= high):
            # Formatted outside _(): Babel evaluates what the call contains.
            setting = model._fields[fname]._description_string(model.env)
            low, high = f"{low:,g}", f"{high:,g}"
            raise ValidationError(
                _(
                    "%(setting)s must be between %(min)s and %(max)s (not %(value)s).",
                    setting=setting,
                    min=low,
                    max=high,
                    value=value,
                )
            )


class ResCompany(models.Model):
    _inherit = "res.company"

    mlm_program_id = fields.Many2one(
        "loyalty.program",
        string="Member Programme",
        domain="[('program_type', '=', 'loyalty'), ('company_id', 'in', [id, False])]",
        help="The loyalty programme whose cards are the members' point balances.",
    )
    mlm_points_validity_months = fields.Integer(
        string="Points Validity (months)",
        default=12,
        help="Earned points expire this many months after they were earned "
        "(0: they never expire).",
    )
    mlm_auto_enroll = fields.Boolean(
        string="Enrol on First Order",
        default=True,
        help="A customer becomes a member on their first confirmed or paid order.",
    )
    mlm_portal_self_enroll = fields.Boolean(
        string="Join from the Portal",
        help="Portal users who are not members see a Join button on their "
        "loyalty page (else only an invitation to order).",
    )
    # Segment scores (see models/loyalty_mlm_partner_score.py, tools/scoring.py)
    mlm_score_heavy_pct = fields.Float(
        string="Heavy Users (%)",
        default=20.0,
        help="The top X% of customers by revenue over 12 months are heavy users.",
    )
    mlm_score_low_pct = fields.Float(
        string="Low Users (%)",
        default=30.0,
        help="The bottom Y% of customers by revenue over 12 months are low users.",
    )
    mlm_score_low_threshold = fields.Monetary(
        string="Low User Threshold",
        currency_field="currency_id",
        default=0.0,
        help="A customer whose revenue over 12 months is at or below this amount "
        "is a low user, whatever the percentages say.",
    )
    mlm_score_loyalty_split_pct = fields.Float(
        string="Loyalty Split (percentile)",
        default=50.0,
        help="Customers at or above this percentile of loyalty (frequency, "
        "regularity, tenure) are loyal: True Friends or Barnacles.",
    )
    mlm_score_profit_split_pct = fields.Float(
        string="Profitability Split (percentile)",
        default=50.0,
        help="Customers at or above this percentile of margin over 12 months are "
        "profitable: True Friends or Butterflies.",
    )
    mlm_score_default_margin_pct = fields.Float(
        string="Default Margin (%)",
        default=30.0,
        help="Margin assumed on order lines whose product has no cost.",
    )
    mlm_point_value = fields.Float(
        string="Value of a Point",
        digits=(16, 4),
        default=0.01,
        help="What one point is worth to a member, in company currency "
        "(100 points for 1.00 off is 0.01): the points liability is the "
        "outstanding points times this.",
    )
    mlm_score_clv_years = fields.Float(
        string="CLV Horizon (years)",
        default=5.0,
        help="The customer lifetime value never counts more years than this.",
    )
    mlm_churn_horizon_days = fields.Integer(
        string="Churn Horizon (days)",
        default=180,
        help="Churn risk is the probability (0-100) that the customer places no "
        "order within this many days.",
    )
    mlm_clv_months = fields.Integer(
        string="CLV Horizon (months)",
        default=12,
        help="The lifetime value is the expected margin of the customer's "
        "orders over this many months, discounted by 1% a month.",
    )

    # Lifecycle stage rules (see tools/lifecycle.py)
    mlm_lapse_days = fields.Integer(
        string="Lapse After (days)",
        default=180,
        help="A customer with no order for more days than this is in Winback.",
    )
    mlm_onboarding_days = fields.Integer(
        string="Onboarding Window (days)",
        default=90,
        help="A customer whose first order is at most this many days old, with "
        "few orders, is in Onboarding.",
    )
    mlm_onboarding_max_orders = fields.Integer(
        string="Onboarding Orders",
        default=3,
        help="Onboarding lasts while the customer has fewer orders than this.",
    )
    mlm_at_risk_churn = fields.Integer(
        string="At-Risk Churn",
        default=70,
        help="A churn risk (0-100: the probability of no order within the "
        "churn horizon) at or above this puts an active customer in Retention.",
    )
    mlm_at_risk_rise = fields.Integer(
        string="At-Risk Churn Rise",
        default=0,
        help="Retention also needs the churn risk to have risen this many points "
        "above the customer's own pattern (his churn risk right after his last "
        "order). 0: the churn risk alone decides.",
    )
    mlm_order_drop_pct = fields.Float(
        string="Order Drop (%)",
        default=50.0,
        help="Orders over 12 months falling by more than this percentage against "
        "the 12 months before also put a customer in Retention.",
    )
    mlm_ambassador_referrals = fields.Integer(
        string="Ambassador Referrals",
        default=1,
        help="Successful referrals that make an active customer an Ambassador "
        "(heavy users who are True Friends are Ambassadors too).",
    )

    @api.model
    def _load_pos_data_fields(self, config_id):
        return [*super()._load_pos_data_fields(config_id), "mlm_program_id"]

    # Bonuses and tiers (see models/loyalty_mlm_bonus.py, loyalty_mlm_tier.py)
    mlm_welcome_bonus = fields.Float(
        string="Welcome Bonus",
        digits=(16, 2),
        help="Points credited once when a contact becomes a member (0: none).",
    )
    mlm_welcome_bonus_start = fields.Date(
        string="Welcome Bonus Since",
        compute="_compute_mlm_welcome_bonus_start",
        store=True,
        help="Members who joined on or after this day get the welcome bonus; "
        "set when the bonus is switched on (members from before get none).",
    )
    mlm_birthday_bonus = fields.Float(
        string="Birthday Bonus",
        digits=(16, 2),
        help="Points credited on the member's birthday, once a year (0: none).",
    )
    mlm_referral_bonus = fields.Float(
        string="Referral Bonus (Referrer)",
        digits=(16, 2),
        help="Points for the member who referred a new customer, when that "
        "customer's first order is confirmed or paid.",
    )
    mlm_referral_bonus_referred = fields.Float(
        string="Referral Bonus (New Customer)",
        digits=(16, 2),
        help="Points for the referred customer on their first order.",
    )
    mlm_tier_metric = fields.Selection(
        [("points", "Points earned"), ("spend", "Net spend")],
        string="Tier Qualification",
        required=True,
        default="points",
        help="What the tier thresholds measure over the last 12 months: points "
        "earned on orders (tier and campaign bonuses included, net of "
        "cancellations and refunds) or the untaxed amount spent, net of refunds.",
    )
    mlm_tier_grace_days = fields.Integer(
        string="Tier Grace Period (days)",
        default=30,
        help="A member below their tier's threshold keeps the tier this many days "
        "before the nightly review downgrades them.",
    )
    # State of the treatment job (loyalty.mlm.treatment._mlm_walk), kept here
    # so that it survives the job's commits and a killed worker.
    mlm_treatment_cursor = fields.Integer(
        string="Treatment Job Position",
        readonly=True,
        copy=False,
        groups="base.group_system",
        help="The contact id from which the running treatment job plans this "
        "company next (0: the next run starts from the first contact).",
    )

    @api.depends("mlm_welcome_bonus")
    def _compute_mlm_welcome_bonus_start(self):
        today = fields.Date.context_today(self)
        for company in self:
            if not company.mlm_welcome_bonus:
                company.mlm_welcome_bonus_start = False
            elif not company.mlm_welcome_bonus_start:
                company.mlm_welcome_bonus_start = today

    @api.constrains(*MLM_SETTING_BOUNDS)
    def _check_mlm_setting_bounds(self):
        for company in self:
            mlm_check_bounds(
                company,
                MLM_SETTING_BOUNDS,
                {fname: company[fname] for fname in MLM_SETTING_BOUNDS},
            )

    @api.constrains("mlm_program_id")
    def _check_mlm_program_id(self):
        for company in self.filtered("mlm_program_id"):
            program = company.mlm_program_id
            if program.program_type != "loyalty":
                raise ValidationError(
                    _("The member programme must be a loyalty programme.")
                )
            if program.company_id and program.company_id != company:
                raise ValidationError(
                    _("The member programme of %s belongs to another company.")
                    % company.name
                )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            mlm_check_bounds(self, MLM_SETTING_BOUNDS, vals)
        if any(vals.get("mlm_program_id") for vals in vals_list):
            # loyalty.program._mlm_member_programme_ids is cached.
            self.env.registry.clear_cache()
        companies = super().create(vals_list)
        self.env["res.partner"]._mlm_create_stage_indexes(companies)
        return companies

    def write(self, vals):
        mlm_check_bounds(self, MLM_SETTING_BOUNDS, vals)
        res = super().write(vals)
        if "mlm_program_id" in vals or "active" in vals:
            # loyalty.program._mlm_member_programme_ids is cached.
            self.env.registry.clear_cache()
        if vals.get("mlm_program_id"):
            # Cards that existed before the programme was chosen start their
            # ledger with an opening entry, so balance == ledger from now on.
            self.mlm_program_id.coupon_ids._mlm_post_opening_balance()
        return res

    @api.model
    def _mlm_check_shared_config(self, what):
        """Configuration shared by every company (the lifecycle stages, tiers
        and treatment rules without a company) changes what every company's
        customers get: only a user of every company may change it. `what`
        names it in the message."""
        if self.env.su:
            return
        missing = self.sudo().search([]) - self.env.user.company_ids
        if missing:
            raise AccessError(
                _(
                    "%(what)s: shared by every company, so only a user of every "
                    "company may change it (not allowed in: %(companies)s). Set "
                    "a company on the record to keep it to your company.",
                    what=what,
                    companies=", ".join(missing.mapped("name")),
                )
            )
