from odoo.http import request, route

from odoo.addons.loyalty_mlm.controllers.portal import (
    SESSION_REFERRAL,
    apply_session_referral,
)
from odoo.addons.website_sale.controllers.main import WebsiteSale


class MlmWebsiteSale(WebsiteSale):
    """A visitor who came through a member's share link (/join/<code>) is
    referred by that member on their first order: the code is applied to
    the cart's customer as soon as the cart has one (not the public user)."""

    def _mlm_apply_referral(self):
        code = request.session.get(SESSION_REFERRAL)
        if not code:
            return
        order = request.website.sale_get_order()
        if order and not request.website.is_public_user():
            apply_session_referral(order.partner_id, code)
        elif order and order.partner_id != request.website.user_id.partner_id:
            # A guest checkout: the address step made the customer.
            apply_session_referral(order.partner_id, code)

    @route()
    def cart(self, access_token=None, revive="", **post):
        self._mlm_apply_referral()
        return super().cart(access_token=access_token, revive=revive, **post)

    @route()
    def shop_payment(self, **post):
        self._mlm_apply_referral()
        return super().shop_payment(**post)
