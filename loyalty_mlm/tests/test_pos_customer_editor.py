from odoo.exceptions import ValidationError
from odoo.tests import tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestPosCustomerEditor(LoyaltyMlmCommon):
    """The referrer's code typed in the customer editor (the register's
    contact form), and the codes the register searches by."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        (cls.partner | cls.partner_b)._mlm_enroll(cls.company)
        cls.partner.mlm_referral_code = "ANNA2345"
        cls.partner_b.mlm_referral_code = "BRAM2345"
        # Bram brought Anna in.
        cls.partner.mlm_referrer_id = cls.partner_b

    def typed(self, partner, code):
        """The editor's onchange on `partner` (a new contact when empty)."""
        record = self.env["res.partner"].new(
            {"name": partner.name or "Walk-in", "mlm_referrer_code": code},
            origin=partner,
        )
        return record, record._onchange_mlm_referrer_code()

    def test_unknown_code_is_cleared_with_the_reason(self):
        record, result = self.typed(self.env["res.partner"], "nope2345")
        self.assertEqual(result["warning"]["type"], "dialog")
        self.assertEqual(
            result["warning"]["message"], "No member has the referral code NOPE2345."
        )
        self.assertFalse(record.mlm_referrer_code)

    def test_loop_is_cleared_with_the_reason(self):
        # Bram typing Anna's code: Anna was brought in by Bram.
        record, result = self.typed(self.partner_b, "ANNA2345")
        self.assertIn("nobody can refer themselves", result["warning"]["message"])
        self.assertFalse(record.mlm_referrer_code)

    def test_valid_code_passes(self):
        record, result = self.typed(self.env["res.partner"], "anna2345")
        self.assertIsNone(result)
        self.assertEqual(record.mlm_referrer_code, "anna2345")

    def test_saving_a_loop_is_refused_and_nothing_saved(self):
        with self.assertRaisesRegex(ValidationError, "would make a loop"):
            with self.env.cr.savepoint():
                self.partner_b.write(
                    {"mlm_referrer_code": "ANNA2345", "mlm_birthdate": "1990-05-14"}
                )
        self.partner_b.invalidate_recordset()
        self.assertFalse(self.partner_b.mlm_referrer_id)
        self.assertFalse(self.partner_b.mlm_birthdate)

    def test_search_by_referral_and_card_code(self):
        card = self.card_of(self.partner)
        Partner = self.env["res.partner"]
        self.assertEqual(
            Partner.search([("mlm_referral_code", "=ilike", "anna2345")]), self.partner
        )
        self.assertEqual(
            Partner.search([("mlm_card_code", "=ilike", card.code.lower())]),
            self.partner,
        )
