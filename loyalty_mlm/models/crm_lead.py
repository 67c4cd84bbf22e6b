from odoo import fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"

    # The customer's segment scores (stored on the commercial partner, in the
    # company the user works in), shown as badges on the form and kanban card.
    mlm_usage_segment = fields.Selection(
        related="partner_id.commercial_partner_id.mlm_usage_segment",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_quadrant = fields.Selection(
        related="partner_id.commercial_partner_id.mlm_quadrant",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_rfm_code = fields.Char(
        related="partner_id.commercial_partner_id.mlm_rfm_code",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_churn_risk = fields.Integer(
        related="partner_id.commercial_partner_id.mlm_churn_risk",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_score_date = fields.Date(
        related="partner_id.commercial_partner_id.mlm_score_date",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_stage_id = fields.Many2one(
        related="partner_id.commercial_partner_id.mlm_stage_id",
        string="Lifecycle Stage",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    # The customer's next best action and the treatments he received.
    mlm_treatment_id = fields.Many2one(
        related="partner_id.commercial_partner_id.mlm_treatment_id",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_next_action = fields.Char(
        related="partner_id.commercial_partner_id.mlm_next_action",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_next_action_status = fields.Char(
        related="partner_id.commercial_partner_id.mlm_next_action_status",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_treatment_rationale = fields.Char(
        related="partner_id.commercial_partner_id.mlm_treatment_rationale",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_treatment_log_ids = fields.One2many(
        related="partner_id.commercial_partner_id.mlm_treatment_log_ids",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
