"""Ledger reasons are stored as codes and values, shown in the reader's
language; old text reasons get their code back (the upgrade step)."""

from odoo.tests import tagged

from ..models.loyalty_mlm_ledger import mlm_reason
from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestLedgerReasons(LoyaltyMlmCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("nl_NL")
        cls.env["ir.module.module"]._load_module_terms(
            ["loyalty_mlm"], ["nl_NL"], overwrite=True
        )
        cls.partner._mlm_enroll(cls.env.company)
        cls.card = cls.card_of(cls)
        cls.silver = cls.env.ref("loyalty_mlm.loyalty_mlm_tier_silver")

    def test_posted_by_a_dutch_user_read_in_english_and_dutch(self):
        self.card.with_context(lang="nl_NL")._mlm_post_points(
            25.0,
            "tier_bonus",
            reason=mlm_reason("tier_bonus", tier=self.silver.id, multiplier=1.25),
        )
        entry = self.ledger(card_id=self.card.id, kind="tier_bonus")
        self.assertEqual(entry.reason_code, "tier_bonus")
        self.assertEqual(entry.reason, "Silver tier bonus (x1.25)")
        self.assertEqual(
            entry.with_context(lang="en_US").reason_display,
            "Silver tier bonus (x1.25)",
        )
        silver_nl = self.silver.with_context(lang="nl_NL").name
        self.assertEqual(
            entry.with_context(lang="nl_NL").reason_display,
            f"Niveaubonus {silver_nl} (x1,25)",
        )

    def test_free_text_stays_as_typed(self):
        self.card._mlm_adjust(10.0, "Goodwill na klacht")
        entry = self.ledger(card_id=self.card.id, kind="adjustment")
        self.assertFalse(entry.reason_code)
        self.assertEqual(
            entry.with_context(lang="en_US").reason_display, "Goodwill na klacht"
        )

    def test_old_text_reasons_get_their_code(self):
        self.card._mlm_adjust(10.0, "placeholder")
        old = self.ledger(card_id=self.card.id, kind="adjustment")
        Ledger = self.env["loyalty.mlm.ledger"]
        for text, code in (
            ("Welkomstbonus", "welcome"),
            ("Silver tier bonus (x1.25)", "tier_bonus"),
            ("Donatie aan Voedselbank", "donation"),
            ("Points earned on 2025-01-03 expired", "expired"),
            ("Goodwill na klacht", False),
        ):
            with self.subTest(text=text):
                self.env.cr.execute(
                    "UPDATE loyalty_mlm_ledger SET reason = %s, reason_code = NULL, "
                    "reason_values = NULL WHERE id = %s",
                    (text, old.id),
                )
                Ledger.invalidate_model()
                Ledger._mlm_backfill_reason_codes()
                self.assertEqual(old.reason_code or False, code)
        self.assertEqual(
            old.with_context(lang="en_US").reason_display, "Goodwill na klacht"
        )
        self.env.cr.execute(
            "UPDATE loyalty_mlm_ledger SET reason = %s, reason_code = NULL, "
            "reason_values = NULL WHERE id = %s",
            ("Donatie aan Voedselbank", old.id),
        )
        Ledger.invalidate_model()
        Ledger._mlm_backfill_reason_codes()
        self.assertEqual(old.reason, "Donation to Voedselbank")
        self.assertEqual(
            old.with_context(lang="nl_NL").reason_display, "Donatie aan Voedselbank"
        )

    def test_chatter_note_in_the_members_language(self):
        """The note is stored once: in the member's language (as his
        statement), points as the programme formats them, whoever posts."""
        self.user_manager.lang = "nl_NL"
        for lang, expected in (
            ("en_US", "Points adjusted by +25.00 (new balance 25.00)."),
            ("nl_NL", "Punten gecorrigeerd met +25,00 (nieuw saldo 25,00)."),
        ):
            with self.subTest(lang=lang):
                self.partner.lang = lang
                self.env["loyalty.mlm.adjust.wizard"].with_user(
                    self.user_manager
                ).create(
                    {"partner_id": self.partner.id, "points": 25, "reason": "x"}
                ).action_apply()
                self.assertIn(expected, self.partner.message_ids[0].body)
                self.card.sudo()._mlm_adjust(-25.0, "reset")
