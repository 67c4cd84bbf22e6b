from odoo import fields, models


class CrmLead(models.Model):
    # The segment badge (scores, stage): loyalty.mlm.segment.mixin.
    _name = "crm.lead"
    _inherit = ["crm.lead", "loyalty.mlm.segment.mixin"]

    # The customer's next best action and the treatments he received.
    mlm_treatment_id = fields.Many2one(
        related="partner_id.commercial_partner_id.mlm_treatment_id"
    )
    mlm_next_action = fields.Char(
        related="partner_id.commercial_partner_id.mlm_next_action"
    )
    mlm_next_action_status = fields.Char(
        related="partner_id.commercial_partner_id.mlm_next_action_status"
    )
    mlm_treatment_rationale = fields.Char(
        related="partner_id.commercial_partner_id.mlm_treatment_rationale"
    )
    mlm_treatment_log_ids = fields.One2many(
        related="partner_id.commercial_partner_id.mlm_treatment_log_ids"
    )
