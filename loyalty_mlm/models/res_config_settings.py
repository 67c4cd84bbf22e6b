from odoo import api, fields, models

from .res_company import MLM_SETTING_BOUNDS, mlm_check_bounds

# The company's settings (same names here) and those kept as config
# parameters; checked before the values are converted (NaN cannot even be
# rounded) or stored in this wizard's table (an integer beyond its range).
SETTINGS_BOUNDS = {**MLM_SETTING_BOUNDS, "mlm_expiry_reminder_days": (0, 365)}


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    mlm_program_id = fields.Many2one(
        related="company_id.mlm_program_id", readonly=False
    )
    mlm_points_validity_months = fields.Integer(
        related="company_id.mlm_points_validity_months", readonly=False
    )
    mlm_auto_enroll = fields.Boolean(
        related="company_id.mlm_auto_enroll", readonly=False
    )
    mlm_portal_self_enroll = fields.Boolean(
        related="company_id.mlm_portal_self_enroll", readonly=False
    )
    mlm_score_heavy_pct = fields.Float(
        related="company_id.mlm_score_heavy_pct", readonly=False
    )
    mlm_score_low_pct = fields.Float(
        related="company_id.mlm_score_low_pct", readonly=False
    )
    mlm_score_low_threshold = fields.Monetary(
        related="company_id.mlm_score_low_threshold", readonly=False
    )
    mlm_score_loyalty_split_pct = fields.Float(
        related="company_id.mlm_score_loyalty_split_pct", readonly=False
    )
    mlm_score_profit_split_pct = fields.Float(
        related="company_id.mlm_score_profit_split_pct", readonly=False
    )
    mlm_score_default_margin_pct = fields.Float(
        related="company_id.mlm_score_default_margin_pct", readonly=False
    )
    mlm_point_value = fields.Float(related="company_id.mlm_point_value", readonly=False)
    mlm_score_clv_years = fields.Float(
        related="company_id.mlm_score_clv_years", readonly=False
    )
    mlm_churn_horizon_days = fields.Integer(
        related="company_id.mlm_churn_horizon_days", readonly=False
    )
    mlm_clv_months = fields.Integer(related="company_id.mlm_clv_months", readonly=False)
    mlm_at_risk_rise = fields.Integer(
        related="company_id.mlm_at_risk_rise", readonly=False
    )
    mlm_lapse_days = fields.Integer(related="company_id.mlm_lapse_days", readonly=False)
    mlm_onboarding_days = fields.Integer(
        related="company_id.mlm_onboarding_days", readonly=False
    )
    mlm_onboarding_max_orders = fields.Integer(
        related="company_id.mlm_onboarding_max_orders", readonly=False
    )
    mlm_at_risk_churn = fields.Integer(
        related="company_id.mlm_at_risk_churn", readonly=False
    )
    mlm_order_drop_pct = fields.Float(
        related="company_id.mlm_order_drop_pct", readonly=False
    )
    mlm_ambassador_referrals = fields.Integer(
        related="company_id.mlm_ambassador_referrals", readonly=False
    )
    # Bonuses and tiers
    mlm_welcome_bonus = fields.Float(
        related="company_id.mlm_welcome_bonus", readonly=False
    )
    mlm_welcome_bonus_start = fields.Date(related="company_id.mlm_welcome_bonus_start")
    mlm_birthday_bonus = fields.Float(
        related="company_id.mlm_birthday_bonus", readonly=False
    )
    mlm_referral_bonus = fields.Float(
        related="company_id.mlm_referral_bonus", readonly=False
    )
    mlm_referral_bonus_referred = fields.Float(
        related="company_id.mlm_referral_bonus_referred", readonly=False
    )
    mlm_tier_metric = fields.Selection(
        related="company_id.mlm_tier_metric", readonly=False
    )
    mlm_tier_grace_days = fields.Integer(
        related="company_id.mlm_tier_grace_days", readonly=False
    )
    # Treatments
    mlm_expiry_reminder_days = fields.Integer(
        string="Expiry Reminder (days before)",
        config_parameter="loyalty_mlm.expiry_reminder_days",
        default=14,
        help="Members get a mail this many days before points expire, once per "
        "lot of points; 0: no reminder.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            mlm_check_bounds(self, SETTINGS_BOUNDS, vals)
        return super().create(vals_list)

    def write(self, vals):
        mlm_check_bounds(self, SETTINGS_BOUNDS, vals)
        return super().write(vals)
