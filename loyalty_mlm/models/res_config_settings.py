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
