"""/my/loyalty: the member's own page (balance, tier, history, statement,
donation, birthday, share link), the invitation of non-members, and the
public share link /join/<code>."""

from contextlib import contextmanager
from datetime import timedelta
from unittest.mock import patch

from lxml import html

from odoo import fields, http
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import ChromeBrowser

from ..models.loyalty_mlm_ledger import mlm_reason
from .test_demo_tours import run_screenshot_tour


@contextmanager
def phone_viewport(width=375, height=812):
    """Browser tests on a phone's screen: Chrome's window cannot be narrower
    than 500 px, so the page is given the phone's viewport (and touch)."""
    original = ChromeBrowser.__init__

    def init(browser, *args, **kwargs):
        original(browser, *args, **kwargs)
        browser._websocket_request(
            "Emulation.setDeviceMetricsOverride",
            params={
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": True,
            },
        )

    with patch.object(ChromeBrowser, "__init__", init):
        yield


def css(name):
    """XPath of the elements with the class `name`."""
    return f"//*[contains(concat(' ', normalize-space(@class), ' '), ' {name} ')]"


class PortalLoyaltyCommon(HttpCase):
    """Two portal members with history (Mila, Noor) and a portal user who
    is no member (Olaf); a charity. Every other programme is archived."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.company
        cls.program = cls.env.ref("loyalty_mlm.loyalty_program_member")
        cls.env["loyalty.program"].search([("id", "!=", cls.program.id)]).write(
            {"active": False}
        )
        cls.company.mlm_program_id = cls.program
        cls.company.mlm_portal_self_enroll = False
        # Balances in the assertions are the adjustments below only.
        cls.company.mlm_welcome_bonus = 0
        cls.env["res.lang"]._activate_lang("nl_NL")
        cls.member_user = new_test_user(
            cls.env,
            login="mlm_mila",
            name="Mila Jansen",
            email="mila.jansen@example.com",
            groups="base.group_portal",
        )
        cls.other_user = new_test_user(
            cls.env, login="mlm_noor", name="Noor Bakker", groups="base.group_portal"
        )
        cls.guest_user = new_test_user(
            cls.env, login="mlm_olaf", name="Olaf Visser", groups="base.group_portal"
        )
        cls.member = cls.member_user.partner_id
        cls.other = cls.other_user.partner_id
        cls.guest = cls.guest_user.partner_id
        (cls.member | cls.other)._mlm_enroll(cls.company)
        cls.member.mlm_referral_code = "MILA2026"
        cls.member.mlm_card_id._mlm_adjust(250, "Opening gift")
        cls.other.mlm_card_id._mlm_adjust(900, "Noor's private adjustment")
        cls.member.with_company(cls.company).mlm_tier_id = cls.env.ref(
            "loyalty_mlm.loyalty_mlm_tier_silver"
        )
        cls.charity = cls.env["res.partner"].create(
            {"name": "Food Bank", "mlm_is_charity": True}
        )

    def page(self, url="/my/loyalty"):
        response = self.url_open(url)
        self.assertEqual(response.status_code, 200)
        return html.fromstring(response.text)

    def texts(self, tree, name):
        return [el.text_content().strip() for el in tree.xpath(css(name))]

    def post(self, url, **data):
        return self.url_open(
            url, data={**data, "csrf_token": http.Request.csrf_token(self)}
        )


@tagged("post_install", "-at_install")
class TestPortalLoyalty(PortalLoyaltyCommon):
    def test_page_balance_tier_expiry_history(self):
        self.authenticate("mlm_mila", "mlm_mila")
        tree = self.page()
        self.assertEqual(self.texts(tree, "o_mlm_balance"), ["250.00"])
        self.assertEqual(self.texts(tree, "o_mlm_tier"), ["Silver"])
        # The tier's progress names the next tier.
        progress = " ".join(self.texts(tree, "o_mlm_tier_progress"))
        self.assertIn("Gold", progress)
        # Her own entries only: Noor's adjustment is not listed.
        reasons = self.texts(tree, "o_mlm_history_reason")
        self.assertIn("Opening gift", reasons)
        self.assertNotIn("Noor's private adjustment", reasons)
        self.assertNotIn("900", " ".join(self.texts(tree, "o_mlm_history_points")))

    def test_reasons_in_the_members_language(self):
        self.member_user.lang = "nl_NL"
        self.member.mlm_card_id._mlm_post_points(
            10, "birthday", reason=mlm_reason("birthday", year=2026)
        )
        entry = self.env["loyalty.mlm.ledger"].search(
            [("partner_id", "=", self.member.id), ("kind", "=", "birthday")]
        )
        dutch = entry.with_context(lang="nl_NL").reason_display
        self.authenticate("mlm_mila", "mlm_mila")
        tree = self.page("/my/loyalty?kind=birthday")
        self.assertEqual(self.texts(tree, "o_mlm_history_reason"), [dutch])
        kind = self.env["loyalty.mlm.ledger"].with_context(lang="nl_NL")
        label = dict(kind._fields["kind"]._description_selection(kind.env))["birthday"]
        self.assertEqual(self.texts(tree, "o_mlm_history_kind"), [label])

    def test_history_filter_and_pages(self):
        card = self.member.mlm_card_id
        for index in range(25):
            card._mlm_adjust(1, f"Small gift {index}")
        self.authenticate("mlm_mila", "mlm_mila")
        first = self.page()
        self.assertEqual(len(first.xpath(css("o_mlm_history_line"))), 20)
        second = self.page("/my/loyalty/page/2")
        # 26 adjustments and the welcome/opening entries: 20 + the rest.
        total = self.env["loyalty.mlm.ledger"].search_count(
            [("partner_id", "=", self.member.id)]
        )
        self.assertEqual(len(second.xpath(css("o_mlm_history_line"))), total - 20)
        adjustments = self.page("/my/loyalty?kind=welcome")
        self.assertEqual(
            len(adjustments.xpath(css("o_mlm_history_line"))),
            self.env["loyalty.mlm.ledger"].search_count(
                [("partner_id", "=", self.member.id), ("kind", "=", "welcome")]
            ),
        )

    def test_expiring_points_with_dates(self):
        today = fields.Date.context_today(self.member)
        lot = self.env["loyalty.mlm.ledger"].search(
            [("partner_id", "=", self.member.id), ("points", ">", 0)], limit=1
        )
        # The ledger refuses changes: the lot's date as if it were earned
        # eleven months ago.
        self.env.cr.execute(
            "UPDATE loyalty_mlm_ledger SET expiry_date = %s WHERE id = %s",
            (today + timedelta(days=20), lot.id),
        )
        lot.invalidate_recordset(["expiry_date"])
        self.authenticate("mlm_mila", "mlm_mila")
        tree = self.page()
        expected = f"{lot.remaining:.2f}"
        self.assertEqual(self.texts(tree, "o_mlm_expiring_30"), [expected])
        self.assertEqual(len(tree.xpath(css("o_mlm_expiring_lot"))), 1)

    def test_home_card_and_sidebar(self):
        self.authenticate("mlm_mila", "mlm_mila")
        tree = self.page("/my")
        self.assertEqual(self.texts(tree, "o_mlm_home_points"), ["250.00"])
        self.assertEqual(self.texts(tree, "o_mlm_home_tier"), ["Silver"])
        self.assertTrue(tree.xpath("//a[@href='/my/loyalty']"))
        # No card of the member programme in Odoo's own list ("a reward is
        # waiting"): our block shows it.
        self.assertEqual(tree.xpath(css("o_loyalty_card")), [])

    def test_statement_is_the_members_own(self):
        self.authenticate("mlm_mila", "mlm_mila")
        response = self.url_open("/my/loyalty/statement")
        self.assertEqual(response.status_code, 200)
        self.assertIn("Opening gift", response.text)
        self.assertNotIn("Noor", response.text)
        # The report's own URL with another member's id is refused.
        for kind in ("html", "pdf"):
            response = self.url_open(
                f"/report/{kind}/loyalty_mlm.report_points_statement/{self.other.id}"
            )
            self.assertNotIn("Noor's private adjustment", response.text)
            self.assertNotEqual(response.status_code, 200)

    def test_donation_from_own_card_only(self):
        self.authenticate("mlm_mila", "mlm_mila")
        response = self.post(
            "/my/loyalty/donate",
            charity_id=self.charity.id,
            points="40",
            partner_id=self.other.id,
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.member.mlm_card_id.points, 210.0)
        self.assertEqual(self.other.mlm_card_id.points, 900.0)
        donation = self.env["loyalty.mlm.ledger"].search(
            [("kind", "=", "donation"), ("res_id", "=", self.charity.id)]
        )
        self.assertEqual(donation.partner_id, self.member)
        self.assertEqual(donation.points, -40.0)

    def test_donation_rules_of_the_back_office(self):
        """More than the balance, no charity, not a number: refused with the
        wizard's message, nothing posted."""
        self.authenticate("mlm_mila", "mlm_mila")
        before = self.env["loyalty.mlm.ledger"].search_count([])
        tree = html.fromstring(
            self.post(
                "/my/loyalty/donate", charity_id=self.charity.id, points="5000"
            ).text
        )
        self.assertIn("cannot donate", " ".join(self.texts(tree, "o_mlm_error")))
        not_charity = self.env["res.partner"].create({"name": "Not a charity"})
        tree = html.fromstring(
            self.post("/my/loyalty/donate", charity_id=not_charity.id, points="5").text
        )
        self.assertIn("not on the list", " ".join(self.texts(tree, "o_mlm_error")))
        tree = html.fromstring(
            self.post("/my/loyalty/donate", charity_id=self.charity.id, points="x").text
        )
        self.assertTrue(self.texts(tree, "o_mlm_error"))
        self.assertEqual(self.env["loyalty.mlm.ledger"].search_count([]), before)
        self.assertEqual(self.member.mlm_card_id.points, 250.0)

    def test_non_member_cannot_donate_or_print(self):
        self.authenticate("mlm_olaf", "mlm_olaf")
        self.post("/my/loyalty/donate", charity_id=self.charity.id, points="1")
        self.assertFalse(
            self.env["loyalty.mlm.ledger"].search(
                [("kind", "=", "donation"), ("res_id", "=", self.charity.id)]
            )
        )
        response = self.url_open("/my/loyalty/statement")
        self.assertNotIn("Points statement", response.text)

    def test_birthday(self):
        self.authenticate("mlm_mila", "mlm_mila")
        self.post("/my/loyalty/birthday", birthdate="1990-04-12")
        self.assertEqual(fields.Date.to_string(self.member.mlm_birthdate), "1990-04-12")
        future = fields.Date.to_string(fields.Date.today() + timedelta(days=3))
        tree = html.fromstring(self.post("/my/loyalty/birthday", birthdate=future).text)
        self.assertTrue(self.texts(tree, "o_mlm_error"))
        self.assertEqual(fields.Date.to_string(self.member.mlm_birthdate), "1990-04-12")

    def test_non_member_invitation_and_join(self):
        self.authenticate("mlm_olaf", "mlm_olaf")
        tree = self.page()
        self.assertTrue(tree.xpath(css("o_mlm_invitation")))
        self.assertFalse(tree.xpath(css("o_mlm_join")))
        self.assertFalse(tree.xpath(css("o_mlm_balance")))
        # Joining is refused while the company does not allow it.
        self.post("/my/loyalty/join")
        self.assertFalse(self.guest.mlm_member_since)
        self.company.mlm_portal_self_enroll = True
        tree = self.page()
        self.assertTrue(tree.xpath(css("o_mlm_join")))
        self.post("/my/loyalty/join")
        self.assertTrue(self.guest.mlm_member_since)
        self.assertTrue(self.guest.mlm_card_id)
        self.assertTrue(self.page().xpath(css("o_mlm_balance")))

    def test_share_link_reveals_the_first_name_only(self):
        self.authenticate(None, None)
        response = self.url_open("/join/mila2026")
        self.assertEqual(response.status_code, 200)
        tree = html.fromstring(response.text)
        page = " ".join(tree.xpath(css("o_mlm_referral_page"))[0].itertext())
        self.assertIn("Mila", page)
        self.assertEqual(self.texts(tree, "o_mlm_referral_code"), ["MILA2026"])
        for secret in ("Jansen", "mila.jansen@example.com"):
            self.assertNotIn(secret, response.text)
        for secret in ("250", "Silver", "Opening gift"):
            self.assertNotIn(secret, page)
        unknown = html.fromstring(self.url_open("/join/NOSUCHCODE").text)
        self.assertFalse(unknown.xpath(css("o_mlm_referral_code")))

    def test_share_link_code_at_signup(self):
        """A visitor who opens the link and signs up is referred by Mila."""
        self.env["ir.config_parameter"].set_param("auth_signup.invitation_scope", "b2c")
        self.authenticate(None, None)
        self.url_open("/join/MILA2026")
        form = html.fromstring(self.url_open("/web/signup").text)
        codes = form.xpath(css("o_mlm_signup_referral") + "//strong")
        self.assertEqual([code.text for code in codes], ["MILA2026"])
        self.post(
            "/web/signup",
            login="pieter@example.com",
            name="Pieter de Boer",
            password="pieter-secret-1",
            confirm_password="pieter-secret-1",
        )
        user = self.env["res.users"].search([("login", "=", "pieter@example.com")])
        self.assertEqual(user.partner_id.mlm_referrer_id, self.member)


@tagged("post_install", "-at_install")
class TestPortalLoyaltyTours(PortalLoyaltyCommon):
    """The member's page in Chromium, with its screenshot for the README."""

    # Tall enough for the page down to the history in one screenshot.
    browser_size = "1366x1400"
    phone = False

    def run_tour(self, tour, login, shots=(), url="/my"):
        viewport = phone_viewport() if self.phone else None
        run_screenshot_tour(self, url, tour, login, shots, viewport)

    def test_member_tour(self):
        self.run_tour("loyalty_mlm_portal_loyalty", "mlm_mila", ["portal_loyalty"])

    def test_non_member_tour(self):
        self.company.mlm_portal_self_enroll = True
        self.run_tour("loyalty_mlm_portal_loyalty_guest", "mlm_olaf")
        self.assertTrue(self.guest.mlm_member_since)


@tagged("post_install", "-at_install")
class TestPortalLoyaltyMobile(TestPortalLoyaltyTours):
    """The same page on a phone (375 px wide)."""

    browser_size = "375x812"
    touch_enabled = True
    phone = True

    def test_member_tour(self):
        self.run_tour(
            "loyalty_mlm_portal_loyalty_mobile", "mlm_mila", ["portal_loyalty_mobile"]
        )

    def test_non_member_tour(self):
        self.company.mlm_portal_self_enroll = True
        self.run_tour("loyalty_mlm_portal_loyalty_guest", "mlm_olaf")
        self.assertTrue(self.guest.mlm_member_since)
