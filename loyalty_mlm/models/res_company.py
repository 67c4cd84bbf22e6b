from odoo import _, api, fields, models
from odoo.exceptions import ValidationError


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
        help="A churn risk (0-100) at or above this puts an active customer in "
        "Retention.",
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

    @api.constrains(
        "mlm_lapse_days",
        "mlm_onboarding_days",
        "mlm_onboarding_max_orders",
        "mlm_at_risk_churn",
        "mlm_order_drop_pct",
    )
    def _check_mlm_stage_settings(self):
        for company in self:
            if (
                min(
                    company.mlm_lapse_days,
                    company.mlm_onboarding_days,
                    company.mlm_onboarding_max_orders,
                )
                < 0
            ):
                raise ValidationError(
                    _("The lifecycle day and order thresholds cannot be negative.")
                )
            if not 0 <= company.mlm_at_risk_churn <= 100 or not (
                0.0 <= company.mlm_order_drop_pct <= 100.0
            ):
                raise ValidationError(
                    _("The at-risk churn and the order drop must be between 0 and 100.")
                )

    @api.model
    def _load_pos_data_fields(self, config_id):
        return [*super()._load_pos_data_fields(config_id), "mlm_program_id"]

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

    @api.constrains("mlm_points_validity_months")
    def _check_mlm_points_validity_months(self):
        if any(company.mlm_points_validity_months < 0 for company in self):
            raise ValidationError(_("The points validity cannot be negative."))

    def write(self, vals):
        res = super().write(vals)
        if vals.get("mlm_program_id"):
            # Cards that existed before the programme was chosen start their
            # ledger with an opening entry, so balance == ledger from now on.
            self.mlm_program_id.coupon_ids._mlm_post_opening_balance()
        return res
