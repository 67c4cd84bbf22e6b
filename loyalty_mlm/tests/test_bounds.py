import math

from odoo.exceptions import UserError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestBounds(LoyaltyMlmCommon):
    """Settings and wizards refuse out-of-range input with a clear error;
    nothing is written and no server error comes out."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A Loyalty Manager who may not edit contacts.
        cls.manager_only = new_test_user(
            cls.env,
            login="mlm_bounds_manager",
            groups="base.group_user,loyalty_mlm.group_loyalty_mlm_manager",
        )
        cls.charity = cls.env["res.partner"].create(
            {"name": "Food Bank", "mlm_is_charity": True}
        )

    def save_settings(self, **values):
        self.env["res.config.settings"].create(values).execute()

    # settings -----------------------------------------------------------------

    def test_settings_out_of_range_are_refused(self):
        bad = {
            "mlm_points_validity_months": [100000, 2**31, -1],
            "mlm_expiry_reminder_days": [-3, 366, 2**31],
            "mlm_welcome_bonus": [1e12, -1.0, math.nan, math.inf],
            "mlm_birthday_bonus": [1e7],
            "mlm_referral_bonus": [-5.0],
            "mlm_score_heavy_pct": [101.0, math.nan],
            "mlm_at_risk_churn": [101],
            "mlm_lapse_days": [-1, 2**31],
            "mlm_tier_grace_days": [-1],
            "mlm_score_clv_years": [1e6],
        }
        for fname, values in bad.items():
            for value in values:
                with (
                    self.subTest(setting=fname, value=value),
                    self.assertRaises(ValidationError),
                ):
                    self.save_settings(**{fname: value})
        self.assertEqual(self.company.mlm_points_validity_months, 12)
        self.assertEqual(self.company.mlm_welcome_bonus, 0.0)
        self.assertEqual(
            self.env["loyalty.mlm.expiry.reminder"]._mlm_reminder_days(), 14
        )

    def test_settings_in_range_are_saved(self):
        self.save_settings(
            mlm_points_validity_months=120,
            mlm_expiry_reminder_days=365,
            mlm_welcome_bonus=1e6,
            mlm_lapse_days=0,
        )
        self.assertEqual(self.company.mlm_points_validity_months, 120)
        self.assertEqual(self.company.mlm_welcome_bonus, 1e6)
        self.assertEqual(
            self.env["loyalty.mlm.expiry.reminder"]._mlm_reminder_days(), 365
        )
        # The longest validity still lets points be earned.
        self.make_order(amount=10.0).action_confirm()
        self.assertLedgerInvariant()

    def test_company_write_is_bounded_too(self):
        with self.assertRaises(ValidationError):
            self.company.write({"mlm_points_validity_months": 2**31})
        with self.assertRaises(ValidationError):
            self.company.mlm_order_drop_pct = -0.5

    # adjust wizard --------------------------------------------------------------

    def adjust(self, user, partner, points, reason="Goodwill"):
        return (
            self.env["loyalty.mlm.adjust.wizard"]
            .with_user(user)
            .create({"partner_id": partner.id, "points": points, "reason": reason})
            .action_apply()
        )

    def test_adjust_non_member_is_a_clear_error(self):
        with self.assertRaises(UserError) as error:
            self.adjust(self.user_manager, self.partner_b, 10.0)
        self.assertIn("is not a member", str(error.exception))
        self.assertFalse(self.card_of(self.partner_b))

    def test_adjust_one_member_at_a_time(self):
        Wizard = self.env["loyalty.mlm.adjust.wizard"].with_user(self.user_manager)
        with self.assertRaises(UserError):
            Wizard.with_context(
                active_model="res.partner",
                active_ids=(self.partner | self.partner_b).ids,
            ).default_get(["partner_id"])
        self.partner._mlm_enroll(self.company)
        self.partner_b._mlm_enroll(self.company)
        wizards = Wizard.create(
            [
                {"partner_id": self.partner.id, "points": 5, "reason": "x"},
                {"partner_id": self.partner_b.id, "points": 5, "reason": "x"},
            ]
        )
        with self.assertRaises(UserError):
            wizards.action_apply()
        self.assertFalse(self.ledger(kind="adjustment"))

    def test_adjust_by_manager_without_contact_rights(self):
        self.partner._mlm_enroll(self.company)
        self.adjust(self.manager_only, self.partner, 12.5, "Complaint")
        self.assertEqual(self.card_of().points, 12.5)
        message = self.partner.message_ids[0]
        self.assertIn("Complaint", message.body)
        self.assertEqual(message.author_id, self.manager_only.partner_id)
        self.assertLedgerInvariant()

    def test_adjust_refuses_non_finite_and_huge(self):
        self.partner._mlm_enroll(self.company)
        for value in (math.nan, math.inf, -math.inf, 1e15, -1e10):
            with self.subTest(value=value), self.assertRaises(ValidationError):
                self.adjust(self.user_manager, self.partner, value)
        with self.assertRaises(UserError):
            self.adjust(self.user_manager, self.partner, 0.001)
        self.assertEqual(self.card_of().points, 0.0)
        self.assertFalse(self.ledger(card_id=self.card_of().id))
        # A debit that would take the balance past the bound is refused too.
        self.adjust(self.user_manager, self.partner, 1e9)
        with self.assertRaises(ValidationError):
            self.adjust(self.user_manager, self.partner, 1.0)
        self.assertEqual(self.card_of().points, 1e9)
        self.assertLedgerInvariant()

    # donation wizard --------------------------------------------------------------

    def donate(self, points):
        return (
            self.env["loyalty.mlm.donation.wizard"]
            .with_user(self.user_loyalty)
            .create(
                {
                    "partner_id": self.partner.id,
                    "charity_id": self.charity.id,
                    "points": points,
                }
            )
            .action_donate()
        )

    def test_donation_refuses_bad_numbers(self):
        self.partner._mlm_enroll(self.company)
        self.card_of()._mlm_adjust(50.0, "Opening")
        for value in (math.nan, math.inf, 1e15):
            with self.subTest(value=value), self.assertRaises(ValidationError):
                self.donate(value)
        for value in (-5.0, 0.0, 50.01, 1e9):
            with self.subTest(value=value), self.assertRaises(UserError):
                self.donate(value)
        self.assertEqual(self.card_of().points, 50.0)
        self.donate(20.0)
        self.assertEqual(self.card_of().points, 30.0)
        self.assertLedgerInvariant()
