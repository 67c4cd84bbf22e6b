from odoo import models


class SaleOrder(models.Model):
    _inherit = "sale.order"

    def _mlm_bonus_channel(self):
        # Campaigns tell the web shop from the back office's sales orders.
        if self.website_id:
            return "website"
        return super()._mlm_bonus_channel()

    def _mlm_post_order_bonuses(self):
        """A web customer becomes a member with their first confirmed (paid)
        order, when it earned points on the card their cart prepared; with
        "Enrol on First Order" unset too, as a back-office quotation makes
        its customer a member when it gives them a card."""
        Card = self.env["loyalty.card"].with_context(mlm_website_cart=False)
        for order in self.filtered(
            lambda order: order.website_id and order.state == "sale"
        ):
            partner = order.partner_id.sudo().with_company(order.company_id)
            if not partner.mlm_member_since and partner.mlm_card_id:
                Card._mlm_mark_member(partner)
        return super()._mlm_post_order_bonuses()

    def _mlm_confirm_makes_member(self):
        # A web order makes its customer a member (_mlm_post_order_bonuses).
        return bool(self.website_id) or super()._mlm_confirm_makes_member()

    def _mlm_cart_member(self):
        """What the cart and the confirmation show the customer: their
        balance and tier, and the points the order earns (the same engine as
        confirmation: sale.order._mlm_points_preview) or, once confirmed,
        what it posted (the POS receipt's block, sale.order._mlm_receipt)."""
        self.ensure_one()
        company = self.company_id
        program = company.mlm_program_id
        partner = self.partner_id.sudo().with_company(company)
        if not program or not partner or partner == self.website_id.user_id.partner_id:
            return False
        member = bool(partner.mlm_member_since and partner.mlm_card_id)
        order = self.sudo()
        return {
            "member": member,
            "first_name": (partner.name or "").split()[0] if partner.name else "",
            "points": partner.mlm_card_id.points if member else 0.0,
            "tier": partner.mlm_tier_id.name if member else "",
            "digits": program.mlm_points_digits,
            "preview": order._mlm_points_preview(),
            "receipt": order._mlm_receipt() if order.state == "sale" else False,
        }
