from odoo import fields, models


class CrmLead(models.Model):
    # The segment badge (scores, stage): loyalty.mlm.segment.mixin.
    _name = "crm.lead"
    _inherit = ["crm.lead", "loyalty.mlm.segment.mixin"]

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
    # The customer's latest NPS answer (survey).
    mlm_nps_score = fields.Integer(
        related="partner_id.commercial_partner_id.mlm_nps_score",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_nps_category = fields.Selection(
        related="partner_id.commercial_partner_id.mlm_nps_category",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_nps_comment = fields.Text(
        related="partner_id.commercial_partner_id.mlm_nps_comment",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_nps_date = fields.Datetime(
        related="partner_id.commercial_partner_id.mlm_nps_date",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
