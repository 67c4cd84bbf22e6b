from odoo import api, models


class LoyaltyCard(models.Model):
    _inherit = "loyalty.card"

    @api.model_create_multi
    def create(self, vals_list):
        # Odoo gives a customer a card of the loyalty programme as soon as a
        # cart earns points on it. A web cart is no membership: the member
        # card it creates waits for the order's confirmation (see
        # sale.order._mlm_post_order_bonuses) before the customer counts as
        # a member (member since, referral code, welcome bonus).
        order_ids = {vals.get("order_id") for vals in vals_list} - {False, None}
        orders = self.env["sale.order"].sudo().browse(order_ids)
        if any(
            order.website_id and order.state in ("draft", "sent") for order in orders
        ):
            cards = super(LoyaltyCard, self.with_context(mlm_website_cart=True)).create(
                vals_list
            )
            return cards.with_env(self.env)
        return super().create(vals_list)

    @api.model
    def _mlm_mark_member(self, partners):
        if self.env.context.get("mlm_website_cart"):
            return
        super()._mlm_mark_member(partners)
