"""The web shop side of membership: the Web shop campaign channel, the
cart's points preview (what the ledger then posts), membership from the
first confirmed order, the member block on the cart and on /my/orders, the
share link's code on the first order."""

from datetime import timedelta

from lxml import html

from odoo import Command, fields
from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.loyalty_mlm.tests.test_demo_tours import run_screenshot_tour
from odoo.addons.loyalty_mlm.tests.test_portal_loyalty import phone_viewport

BONUS_KINDS = ("earn", "tier_bonus", "campaign_bonus")


def css(name):
    return f"//*[contains(concat(' ', normalize-space(@class), ' '), ' {name} ')]"


class WebshopCommon(HttpCase):
    """A portal member (Mila, Silver) and a portal user who is no member
    (Olaf); the member programme only (1 point per 1.00), no other campaign
    than the test's; an untaxed published product at 100.00."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.company
        cls.website = cls.env["website"].search(
            [("company_id", "=", cls.company.id)], limit=1
        )
        cls.program = cls.env.ref("loyalty_mlm.loyalty_program_member")
        cls.env["loyalty.program"].search([("id", "!=", cls.program.id)]).write(
            {"active": False}
        )
        cls.program.ecommerce_ok = True
        cls.company.mlm_program_id = cls.program
        cls.company.mlm_welcome_bonus = 0
        cls.env["loyalty.mlm.campaign"].search([]).write({"active": False})
        cls.member_user = new_test_user(
            cls.env,
            login="mlm_shop_mila",
            name="Mila Jansen",
            groups="base.group_portal",
        )
        cls.guest_user = new_test_user(
            cls.env,
            login="mlm_shop_olaf",
            name="Olaf Visser",
            groups="base.group_portal",
        )
        cls.member = cls.member_user.partner_id
        cls.guest = cls.guest_user.partner_id
        cls.member._mlm_enroll(cls.company)
        cls.member.mlm_referral_code = "SHOPMILA"
        cls.member.mlm_card_id._mlm_adjust(40, "Opening gift")
        cls.member.with_company(cls.company).mlm_tier_id = cls.env.ref(
            "loyalty_mlm.loyalty_mlm_tier_silver"
        )
        cls.product = cls.env["product.product"].create(
            {
                "name": "Organic Coffee Beans",
                "list_price": 100.0,
                "taxes_id": False,
                "is_published": True,
                "sale_ok": True,
            }
        )
        now = fields.Datetime.now()
        cls.campaign = cls.env["loyalty.mlm.campaign"].create(
            {
                "name": "Web Week",
                "date_start": now - timedelta(days=1),
                "date_end": now + timedelta(days=7),
                "multiplier": 2.0,
                "channel": "website",
            }
        )

    def make_cart(self, partner, qty=1):
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "website_id": self.website.id,
                "order_line": [
                    Command.create(
                        {"product_id": self.product.id, "product_uom_qty": qty}
                    )
                ],
            }
        )
        order._update_programs_and_rewards()
        return order

    def posted(self, order):
        """{kind: points} the ledger holds for `order`."""
        groups = self.env["loyalty.mlm.ledger"]._read_group(
            [("res_model", "=", "sale.order"), ("res_id", "=", order.id)],
            ["kind"],
            ["points:sum"],
        )
        return dict(groups)


@tagged("post_install", "-at_install")
class TestWebshop(WebshopCommon):
    def test_cart_preview_equals_what_the_ledger_posts(self):
        cart = self.make_cart(self.member)
        preview = cart._mlm_points_preview()
        # 100 points, Silver (x1.25) +25, the web campaign (x2) +100.
        self.assertEqual(
            (preview["earned"], preview["tier_bonus"], preview["campaign_bonus"]),
            (100.0, 25.0, 100.0),
        )
        cart.action_confirm()
        posted = self.posted(cart)
        self.assertEqual(sum(posted[kind] for kind in BONUS_KINDS), preview["total"])
        self.assertEqual(posted["campaign_bonus"], 100.0)
        # The confirmation page then shows what was posted, as a receipt.
        receipt = cart._mlm_cart_member()["receipt"]
        self.assertEqual(
            [(line["kind"], line["points"]) for line in receipt["lines"]],
            [("earn", 100.0), ("tier_bonus", 25.0), ("campaign_bonus", 100.0)],
        )
        self.assertEqual(receipt["previous"], 40.0)
        self.assertEqual(receipt["balance"], 265.0)

    def test_web_campaign_skips_back_office_orders(self):
        quote = self.env["sale.order"].create(
            {
                "partner_id": self.member.id,
                "order_line": [Command.create({"product_id": self.product.id})],
            }
        )
        quote._update_programs_and_rewards()
        self.assertEqual(quote._mlm_points_preview()["campaign_bonus"], 0.0)
        quote.action_confirm()
        self.assertNotIn("campaign_bonus", self.posted(quote))
        # A Sales orders campaign leaves the web shop out, in turn.
        self.campaign.channel = "sale"
        cart = self.make_cart(self.member)
        self.assertEqual(cart._mlm_points_preview()["campaign_bonus"], 0.0)
        self.campaign.channel = "both"
        self.assertEqual(cart._mlm_points_preview()["campaign_bonus"], 100.0)

    def test_abandoned_cart_enrols_nobody(self):
        cart = self.make_cart(self.guest)
        # Odoo prepared the points of the programme on the cart...
        self.assertEqual(cart.coupon_point_ids.points, 100.0)
        self.assertEqual(cart._mlm_points_preview()["total"], 200.0)
        # ...but the customer is no member: no member date, no referral
        # code, no welcome bonus, nothing on the ledger.
        self.env.invalidate_all()
        self.assertFalse(self.guest.mlm_member_since)
        self.assertFalse(self.guest.mlm_referral_code)
        self.assertFalse(
            self.env["loyalty.mlm.ledger"].search([("partner_id", "=", self.guest.id)])
        )
        self.assertFalse(
            self.env["res.partner"].search(
                [("id", "=", self.guest.id), ("mlm_member_since", "!=", False)]
            )
        )

    def test_first_confirmed_order_enrols(self):
        self.company.mlm_welcome_bonus = 15
        self.company.mlm_auto_enroll = False
        cart = self.make_cart(self.guest)
        self.assertFalse(self.guest.mlm_member_since)
        cart.action_confirm()
        self.assertEqual(self.guest.mlm_member_since, fields.Date.context_today(cart))
        self.assertTrue(self.guest.mlm_referral_code)
        posted = self.env["loyalty.mlm.ledger"].search(
            [("partner_id", "=", self.guest.id)]
        )
        self.assertEqual(
            sorted(posted.mapped("kind")), ["campaign_bonus", "earn", "welcome"]
        )
        self.assertEqual(self.guest.mlm_card_id.points, 215.0)

    def test_cart_preview_counts_the_welcome_bonus(self):
        self.company.mlm_welcome_bonus = 15
        self.company.mlm_auto_enroll = False
        cart = self.make_cart(self.guest)
        preview = cart._mlm_points_preview()
        self.assertEqual(preview["welcome_bonus"], 15.0)
        self.assertEqual(preview["total"], 215.0)
        cart.action_confirm()
        self.assertEqual(self.guest.mlm_card_id.points, preview["total"])
        # A member who had his welcome bonus gets none on the next cart.
        self.assertEqual(
            self.make_cart(self.guest)._mlm_points_preview()["welcome_bonus"], 0.0
        )

    def test_cart_page_shows_balance_and_preview(self):
        cart = self.make_cart(self.member)
        self.authenticate("mlm_shop_mila", "mlm_shop_mila")
        response = self.url_open("/shop/cart")
        self.assertEqual(response.status_code, 200)
        tree = html.fromstring(response.text)

        def text(name):
            return [el.text_content().strip() for el in tree.xpath(css(name))]

        self.assertEqual(text("o_mlm_cart_balance"), ["40.00"])
        self.assertEqual(text("o_mlm_cart_tier"), ["Silver"])
        shown = float(text("o_mlm_cart_preview_total")[0].replace(",", ""))
        cart.action_confirm()
        posted = self.posted(cart)
        self.assertEqual(shown, sum(posted[kind] for kind in BONUS_KINDS))
        # /my/orders/<id>: the POS receipt's member block.
        tree = html.fromstring(self.url_open(f"/my/orders/{cart.id}").text)
        self.assertEqual(len(tree.xpath(css("o_mlm_order_member"))), 1)
        self.assertEqual(len(tree.xpath(css("o_mlm_receipt_campaign_bonus"))), 1)
        balance = tree.xpath(css("o_mlm_receipt_balance"))[0].text_content().split()
        self.assertEqual(balance[-1], f"{self.member.mlm_card_id.points:,.2f}")

    def test_share_link_code_on_the_first_order(self):
        cart = self.make_cart(self.guest)
        self.authenticate("mlm_shop_olaf", "mlm_shop_olaf")
        self.assertEqual(self.url_open("/join/SHOPMILA").status_code, 200)
        self.assertEqual(self.url_open("/shop/cart").status_code, 200)
        self.assertEqual(self.guest.mlm_referrer_id, self.member)
        self.assertEqual(cart.partner_id, self.guest)


@tagged("post_install", "-at_install")
class TestWebshopTours(WebshopCommon):
    browser_size = "1366x1000"

    def run_tour(self, tour, login, shots=(), url="/shop/cart"):
        run_screenshot_tour(self, url, tour, login, shots)

    def test_member_cart_tour(self):
        cart = self.make_cart(self.member)
        preview = cart._mlm_points_preview()
        self.run_tour("loyalty_mlm_shop_cart", "mlm_shop_mila", ["shop_cart"])
        cart.action_confirm()
        posted = self.posted(cart)
        self.assertEqual(sum(posted[kind] for kind in BONUS_KINDS), preview["total"])

    def test_non_member_cart_tour(self):
        self.make_cart(self.guest)
        self.run_tour("loyalty_mlm_shop_cart_guest", "mlm_shop_olaf")
        self.assertFalse(self.guest.mlm_member_since)


@tagged("post_install", "-at_install")
class TestWebshopMobile(WebshopCommon):
    browser_size = "375x812"
    touch_enabled = True

    def test_member_cart_tour(self):
        self.make_cart(self.member)
        with phone_viewport():
            self.start_tour(
                "/shop/cart", "loyalty_mlm_shop_cart_mobile", login="mlm_shop_mila"
            )
