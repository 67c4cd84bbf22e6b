from odoo import fields, models


class LoyaltyMlmCampaign(models.Model):
    _inherit = "loyalty.mlm.campaign"

    # Web orders (sale orders of a website) are their own channel: "Sales
    # orders" are the back office's. See sale.order._mlm_bonus_channel.
    channel = fields.Selection(
        selection_add=[("website", "Web shop"), ("both", "All channels")],
        ondelete={"website": "set sale"},
    )
