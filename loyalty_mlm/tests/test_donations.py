from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestDonations(LoyaltyMlmCommon):
    """Members give points to a charity through the wizard; the report totals
    them per charity and month."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["loyalty.mlm.campaign"].search([]).active = False
        cls.env["loyalty.mlm.tier"].search([]).active = False
        cls.company.mlm_welcome_bonus = 0.0
        cls.food_bank = cls.env["res.partner"].create(
            {"name": "Food Bank", "is_company": True, "mlm_is_charity": True}
        )
        cls.shelter = cls.env["res.partner"].create(
            {"name": "Animal Shelter", "is_company": True, "mlm_is_charity": True}
        )
        cls.salesman = new_test_user(
            cls.env, login="mlm_salesman", groups="sales_team.group_sale_salesman"
        )

    def setUp(self):
        super().setUp()
        self.make_order(amount=300.0).action_confirm()
        self.card = self.card_of()

    def donate(self, points, charity=None, user=None, partner=None):
        wizard = (
            self.env["loyalty.mlm.donation.wizard"]
            .with_user(user or self.env.user)
            .create(
                {
                    "partner_id": (partner or self.partner).id,
                    "charity_id": (charity or self.food_bank).id,
                    "points": points,
                }
            )
        )
        return wizard.action_donate()

    def test_salesperson_donates_on_behalf_of_a_member(self):
        self.donate(120.0, user=self.salesman)
        entry = self.ledger(kind="donation", partner_id=self.partner.id)
        self.assertEqual(
            (entry.points, entry.source_ref, entry.reason, entry.user_id),
            (-120.0, self.food_bank, "Donation to Food Bank", self.salesman),
        )
        self.assertEqual(self.card.points, 180.0)
        self.assertEqual(
            self.partner.message_ids[:1].preview,
            "120.00 points donated to Food Bank (new balance 180.00).",
        )
        self.assertLedgerInvariant()

    def test_access(self):
        with self.assertRaises(AccessError):
            self.donate(10.0, user=self.user_plain)
        self.donate(10.0, user=self.user_loyalty)
        self.assertEqual(self.card.points, 290.0)
        with self.assertRaises(AccessError):
            self.env["loyalty.mlm.donation.report"].with_user(self.user_plain).search(
                []
            )

    def test_balance_never_negative(self):
        with self.assertRaisesRegex(UserError, "has 300.0 points"):
            self.donate(300.01)
        self.assertFalse(self.ledger(kind="donation", partner_id=self.partner.id))
        self.donate(300.0)
        self.assertEqual(self.card.points, 0.0)
        with self.assertRaisesRegex(UserError, "has 0.0 points"):
            self.donate(1.0)
        # A member in debt (points taken back after spending) cannot donate.
        self.card._mlm_adjust(-50.0, "Taken back")
        with self.assertRaisesRegex(UserError, "has -50.0 points"):
            self.donate(1.0)
        self.assertLedgerInvariant()

    def test_refusals(self):
        with self.assertRaisesRegex(UserError, "positive number"):
            self.donate(0.0)
        with self.assertRaisesRegex(UserError, "positive number"):
            self.donate(-5.0)
        with self.assertRaisesRegex(UserError, "not on the list of charities"):
            self.donate(5.0, charity=self.partner_b)
        with self.assertRaisesRegex(UserError, "is not a member"):
            self.donate(5.0, partner=self.partner_b)

    def test_report_totals_per_charity_and_month(self):
        self.card._mlm_adjust(1000.0, "Top up for the test")
        with freeze_time("2025-03-05 10:00:00"):
            self.donate(100.0)
            self.donate(20.0, charity=self.shelter)
        with freeze_time("2025-03-28 10:00:00"):
            self.donate(30.0)
        with freeze_time("2025-04-02 10:00:00"):
            self.donate(40.0)
        self.env.flush_all()
        report = self.env["loyalty.mlm.donation.report"]
        totals = report._read_group(
            [("partner_id", "=", self.partner.id)],
            ["charity_id", "date:month"],
            ["points:sum"],
        )
        self.assertEqual(
            sorted(
                (charity.name, month.strftime("%Y-%m"), points)
                for charity, month, points in totals
            ),
            [
                ("Animal Shelter", "2025-03", 20.0),
                ("Food Bank", "2025-03", 130.0),
                ("Food Bank", "2025-04", 40.0),
            ],
        )
        self.assertEqual(self.card.points, 1300.0 - 190.0)
        self.assertLedgerInvariant()
