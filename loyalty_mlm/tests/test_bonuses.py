from datetime import date

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import tagged

from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon


class BonusMixin:
    def kinds(self, partner, kind):
        return self.env["loyalty.mlm.ledger"].search(
            [("partner_id", "=", partner.id), ("kind", "=", kind)], order="id"
        )


@tagged("post_install", "-at_install")
class TestWelcomeBonus(BonusMixin, LoyaltyMlmCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["loyalty.mlm.campaign"].search([]).active = False
        cls.env["loyalty.mlm.tier"].search([]).active = False
        cls.company.mlm_welcome_bonus = 50.0

    def test_start_date_set_when_switched_on(self):
        # The user's date, as he reads it (not the UTC one).
        self.assertEqual(
            self.company.mlm_welcome_bonus_start,
            fields.Date.context_today(self.company),
        )
        self.company.mlm_welcome_bonus = 0.0
        self.assertFalse(self.company.mlm_welcome_bonus_start)

    def test_welcome_once_on_first_order(self):
        self.make_order(amount=100.0).action_confirm()
        welcome = self.kinds(self.partner, "welcome")
        self.assertEqual(
            (welcome.points, welcome.reason, welcome.source_ref),
            (50.0, "Welcome bonus", self.partner),
        )
        self.assertEqual(self.card_of().points, 150.0)
        # Every later path that could welcome again does not.
        self.make_order(amount=10.0).action_confirm()
        self.partner._mlm_enroll(self.company)
        self.env["loyalty.mlm.tier"]._cron_review()
        self.assertEqual(len(self.kinds(self.partner, "welcome")), 1)
        self.assertEqual(self.card_of().points, 160.0)
        self.assertLedgerInvariant()

    def test_welcome_on_make_member(self):
        self.partner_b.action_mlm_enroll()
        self.assertEqual(self.kinds(self.partner_b, "welcome").points, 50.0)
        self.assertEqual(self.card_of(self.partner_b).points, 50.0)
        self.assertTrue(self.partner_b.mlm_referral_code)
        self.assertLedgerInvariant()

    def test_card_made_elsewhere_is_welcomed_by_the_nightly_catch_up(self):
        # A card Odoo creates by itself (here: by hand in the backend).
        self.env["loyalty.card"].create(
            {"program_id": self.program.id, "partner_id": self.partner.id}
        )
        self.assertEqual(self.card_of().points, 0.0)
        self.env["loyalty.mlm.tier"]._cron_review()
        self.assertEqual(self.card_of().points, 50.0)
        self.env["loyalty.mlm.tier"]._cron_review()
        self.assertEqual(len(self.kinds(self.partner, "welcome")), 1)
        self.assertLedgerInvariant()

    def test_no_welcome_for_members_from_before(self):
        old_member = self.env["res.partner"].create({"name": "Old Member"})
        old_member.mlm_member_since = date(2020, 1, 1)
        old_member._mlm_enroll(self.company)
        self.assertFalse(self.kinds(old_member, "welcome"))
        self.env["loyalty.mlm.tier"]._cron_review()
        self.assertFalse(self.kinds(old_member, "welcome"))


@tagged("post_install", "-at_install")
class TestBirthdayBonus(BonusMixin, LoyaltyMlmCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.write({"mlm_birthday_bonus": 100.0, "mlm_welcome_bonus": 0.0})
        cls.partner.write({"email": "anna@example.com", "mlm_birthdate": "1990-06-15"})
        cls.leapling = cls.env["res.partner"].create(
            {
                "name": "Leap Day",
                "email": "leap@example.com",
                "mlm_birthdate": "2000-02-29",
            }
        )
        (cls.partner | cls.leapling)._mlm_enroll(cls.company)
        cls.outsider = cls.env["res.partner"].create(
            {"name": "Not A Member", "mlm_birthdate": "1990-06-15"}
        )

    def run_cron(self, day):
        with freeze_time(day):
            self.env["loyalty.mlm.bonus"]._cron_birthday_bonus()

    def mails(self, partner):
        return self.env["mail.mail"].search(
            [("model", "=", "res.partner"), ("res_id", "=", partner.id)]
        )

    def test_once_per_year_on_the_birthday(self):
        self.run_cron("2025-06-14 06:00:00")
        self.assertFalse(self.kinds(self.partner, "birthday"))
        self.run_cron("2025-06-15 06:00:00")
        self.run_cron("2025-06-15 18:00:00")  # run again the same day
        entries = self.kinds(self.partner, "birthday")
        self.assertEqual(
            [(e.points, e.reason) for e in entries], [(100.0, "Birthday bonus 2025")]
        )
        self.assertEqual(entries.source_ref, self.partner)
        mail = self.mails(self.partner)
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.state, "outgoing")  # queued, not sent
        self.assertIn("100", str(mail.body_html))
        self.assertFalse(self.kinds(self.outsider, "birthday"))
        self.run_cron("2026-06-15 06:00:00")
        self.assertEqual(len(self.kinds(self.partner, "birthday")), 2)
        self.assertEqual(self.card_of().points, 200.0)
        self.assertLedgerInvariant()

    def test_29_february_in_a_non_leap_year(self):
        self.run_cron("2025-02-28 06:00:00")
        self.run_cron("2025-03-01 06:00:00")
        self.assertEqual(
            [e.reason for e in self.kinds(self.leapling, "birthday")],
            ["Birthday bonus 2025"],
        )
        self.assertFalse(self.kinds(self.partner, "birthday"))

    def test_29_february_in_a_leap_year(self):
        self.run_cron("2024-02-28 06:00:00")
        self.assertFalse(self.kinds(self.leapling, "birthday"))
        self.run_cron("2024-02-29 06:00:00")
        self.assertEqual(len(self.kinds(self.leapling, "birthday")), 1)
        self.assertEqual(len(self.mails(self.leapling)), 1)
        self.assertLedgerInvariant()

    def test_switched_off(self):
        self.company.mlm_birthday_bonus = 0.0
        self.run_cron("2025-06-15 06:00:00")
        self.assertFalse(self.kinds(self.partner, "birthday"))


@tagged("post_install", "-at_install")
class TestReferral(BonusMixin, LoyaltyMlmCommon):
    """Anna (a member) refers Bram; both get their bonus on Bram's first order."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["loyalty.mlm.campaign"].search([]).active = False
        cls.env["loyalty.mlm.tier"].search([]).active = False
        cls.company.write(
            {
                "mlm_welcome_bonus": 0.0,
                "mlm_referral_bonus": 100.0,
                "mlm_referral_bonus_referred": 50.0,
            }
        )
        cls.partner._mlm_enroll(cls.company)

    def test_happy_path(self):
        code = self.partner.mlm_referral_code
        self.assertEqual(len(code), 8)
        # Bram quotes Anna's code (any case, spaces around).
        self.partner_b.mlm_referrer_code = f" {code.lower()} "
        self.assertEqual(self.partner_b.mlm_referrer_id, self.partner)
        order = self.make_order(partner=self.partner_b, amount=80.0)
        order.action_confirm()
        given = self.kinds(self.partner, "referral")
        got = self.kinds(self.partner_b, "referral")
        self.assertEqual(
            (given.points, given.reason, given.source_ref),
            (100.0, "Referral of Bram Member", self.partner_b),
        )
        self.assertEqual((got.points, got.reason), (50.0, "Referred by Anna Member"))
        self.assertEqual(
            self.partner_b.mlm_referral_date, fields.Date.context_today(self.partner_b)
        )
        self.assertEqual(self.partner.mlm_referral_count, 1)
        self.assertEqual(self.card_of().points, 100.0)
        self.assertEqual(self.card_of(self.partner_b).points, 130.0)
        # The count feeds the ambassadorship rule.
        inputs = self.env["loyalty.mlm.stage"]._mlm_stage_inputs(
            self.partner, self.company, fields.Date.context_today(self.partner)
        )
        self.assertEqual(inputs[self.partner.id].referrals, 1)
        self.assertLedgerInvariant()

    def test_referral_on_the_sale_order(self):
        order = self.make_order(partner=self.partner_b, amount=20.0)
        order.mlm_referrer_id = self.partner
        self.assertEqual(self.partner_b.mlm_referrer_id, self.partner)
        order.action_confirm()
        self.assertEqual(len(self.kinds(self.partner, "referral")), 1)

    def test_double_credit_attempts(self):
        self.partner_b.mlm_referrer_id = self.partner
        first = self.make_order(partner=self.partner_b, amount=80.0)
        second = self.make_order(partner=self.partner_b, amount=30.0)
        (first | second).action_confirm()  # both first orders at once
        self.make_order(partner=self.partner_b, amount=10.0).action_confirm()
        self.env["loyalty.mlm.referral"]._mlm_referral_rewards(first)
        self.assertEqual(len(self.kinds(self.partner, "referral")), 1)
        self.assertEqual(len(self.kinds(self.partner_b, "referral")), 1)
        # Rewarded: the referrer can no longer change (nor be removed).
        other = self.env["res.partner"].create({"name": "Other Member"})
        other._mlm_enroll(self.company)
        with self.assertRaisesRegex(ValidationError, "was rewarded on"):
            self.partner_b.mlm_referrer_id = other
        with self.assertRaisesRegex(ValidationError, "was rewarded on"):
            self.partner_b.mlm_referrer_id = False
        self.assertLedgerInvariant()

    def test_cancelled_first_order_takes_the_referral_back(self):
        self.partner_b.mlm_referrer_id = self.partner
        first = self.make_order(partner=self.partner_b, amount=80.0)
        first.action_confirm()
        first._action_cancel()
        reversals = self.env["loyalty.mlm.ledger"].search(
            [
                ("kind", "=", "reversal"),
                ("res_model", "=", "res.partner"),
                ("res_id", "=", self.partner_b.id),
            ],
            order="points",
        )
        self.assertEqual(reversals.mapped("points"), [-100.0, -50.0])
        self.assertEqual(
            reversals[0].reason,
            "Referral bonus of Bram Member: their first order was cancelled",
        )
        self.assertEqual(self.card_of().points, 0.0)
        self.assertEqual(self.card_of(self.partner_b).points, 0.0)
        self.assertFalse(self.partner_b.mlm_referral_date)
        self.assertEqual(self.partner.mlm_referral_count, 0)
        # The next qualifying order pays the referral again: once, net.
        second = self.make_order(partner=self.partner_b, amount=30.0)
        second.action_confirm()
        self.assertEqual(self.card_of().points, 100.0)
        self.assertEqual(self.card_of(self.partner_b).points, 80.0)
        self.assertEqual(self.partner.mlm_referral_count, 1)
        # Cancelling an order that is not the only one takes nothing back.
        self.make_order(partner=self.partner_b, amount=10.0).action_confirm()
        second._action_cancel()
        self.assertEqual(self.card_of().points, 100.0)
        self.assertEqual(
            self.partner_b.mlm_referral_date, fields.Date.context_today(self.partner_b)
        )
        self.assertLedgerInvariant()

    def test_no_bonus_when_not_the_first_order(self):
        self.make_order(partner=self.partner_b, amount=20.0).action_confirm()
        self.partner_b.mlm_referrer_id = self.partner
        self.make_order(partner=self.partner_b, amount=20.0).action_confirm()
        self.assertFalse(self.kinds(self.partner, "referral"))
        self.assertFalse(self.partner_b.mlm_referral_date)

    def test_self_referral_rejected(self):
        with self.assertRaisesRegex(ValidationError, "nobody can refer themselves"):
            self.partner.mlm_referrer_id = self.partner
        company = self.env["res.partner"].create(
            {"name": "Anna's Shop", "is_company": True}
        )
        company._mlm_enroll(self.company)
        employee = self.env["res.partner"].create(
            {"name": "Anna's Clerk", "parent_id": company.id}
        )
        with self.assertRaisesRegex(ValidationError, "nobody can refer themselves"):
            employee.mlm_referrer_id = company

    def test_loops_rejected(self):
        a, b, c = self.env["res.partner"].create(
            [{"name": "A"}, {"name": "B"}, {"name": "C"}]
        )
        (a | b | c)._mlm_enroll(self.company)
        b.mlm_referrer_id = a
        c.mlm_referrer_id = b
        with self.assertRaisesRegex(ValidationError, "would make a loop"):
            a.mlm_referrer_id = c
        with self.assertRaisesRegex(ValidationError, "would make a loop"):
            a.mlm_referrer_id = b

    def test_referrer_must_be_a_member_and_code_known(self):
        stranger = self.env["res.partner"].create({"name": "Stranger"})
        with self.assertRaisesRegex(ValidationError, "is not a member"):
            self.partner_b.mlm_referrer_id = stranger
        with self.assertRaisesRegex(ValidationError, "No member has the referral"):
            self.partner_b.mlm_referrer_code = "NOPE1234"

    def test_codes_unique(self):
        partners = self.env["res.partner"].create(
            [{"name": f"Member {i}"} for i in range(20)]
        )
        partners._mlm_enroll(self.company)
        codes = partners.mapped("mlm_referral_code")
        self.assertEqual(len(set(codes)), 20)
        self.assertTrue(all(len(code) == 8 for code in codes))


@tagged("post_install", "-at_install")
class TestReferralPos(BonusMixin, LoyaltyMlmPosCommon):
    def test_referral_on_paid_pos_order(self):
        self.company.write(
            {"mlm_referral_bonus": 100.0, "mlm_referral_bonus_referred": 50.0}
        )
        referrer = self.env["res.partner"].create({"name": "Pos Referrer"})
        referrer._mlm_enroll(self.company)
        self.member.mlm_referrer_id = referrer
        self.sync([(self.product, 1)])
        self.assertEqual(self.kinds(referrer, "referral").points, 100.0)
        self.assertEqual(self.kinds(self.member, "referral").points, 50.0)
        self.sync([(self.product, 1)])
        self.assertEqual(len(self.kinds(referrer, "referral")), 1)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})
