from odoo import fields, models


class LoyaltyMlmSegmentMixin(models.AbstractModel):
    """The customer's segment badge on a document: his segment scores and
    lifecycle stage (stored on the commercial partner, in the company the
    user works in), for the badges of the form and kanban card.

    For models with a `partner_id` (crm.lead, sale.order)."""

    _name = "loyalty.mlm.segment.mixin"
    _description = "Customer Segment Badge"

    # Declared here so that the related fields below resolve on the mixin
    # itself; the inheriting model's own definition completes it.
    partner_id = fields.Many2one("res.partner")
    # Loyalty staff only, like the contact's own fields.
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
