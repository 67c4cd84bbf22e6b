from odoo import fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"

    # The customer's segment scores (stored on the commercial partner, in the
    # company the user works in), shown as badges on the form and kanban card.
    mlm_usage_segment = fields.Selection(
        related="partner_id.commercial_partner_id.mlm_usage_segment"
    )
    mlm_quadrant = fields.Selection(
        related="partner_id.commercial_partner_id.mlm_quadrant"
    )
    mlm_rfm_code = fields.Char(related="partner_id.commercial_partner_id.mlm_rfm_code")
    mlm_churn_risk = fields.Integer(
        related="partner_id.commercial_partner_id.mlm_churn_risk"
    )
    mlm_score_date = fields.Date(
        related="partner_id.commercial_partner_id.mlm_score_date"
    )
    mlm_stage_id = fields.Many2one(
        related="partner_id.commercial_partner_id.mlm_stage_id",
        string="Lifecycle Stage",
    )
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
