from odoo import fields, models


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
