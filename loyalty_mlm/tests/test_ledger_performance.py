from odoo.tests import tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestLedgerPerformance(LoyaltyMlmCommon):
    """Posting to the ledger costs the same whatever the member's history."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The shipped rules hold out 10% of the customers by a hash of their
        # id: a held-out customer's first order costs another number of
        # queries than a treated one's. Compare histories, not that draw.
        cls.env["loyalty.mlm.treatment"].with_context(active_test=False).search(
            []
        ).mlm_control_share = 0

    def _history(self, partner, lots):
        card = self.env["loyalty.card"].create(
            {"program_id": self.program.id, "partner_id": partner.id}
        )
        for _i in range(lots):
            card._mlm_post_points(10.0, "earn", reason="history")
        return card

    def _confirm_queries(self, partner):
        order = self.make_order(partner=partner, amount=30.0)
        self.env.flush_all()
        self.env.invalidate_all()
        queries_before = self.cr.sql_log_count
        order.action_confirm()
        self.env.flush_all()
        return self.cr.sql_log_count - queries_before

    def test_confirm_cost_does_not_grow_with_history(self):
        short, long_ = self.partner, self.partner_b
        self._history(short, 1)
        self._history(long_, 60)
        # Warm the caches (programme, rules, translations) once.
        self._confirm_queries(self.env["res.partner"].create({"name": "Warm-up"}))
        self.assertEqual(self._confirm_queries(short), self._confirm_queries(long_))

    def test_redeem_cost_does_not_grow_with_history(self):
        warm_up = self.env["res.partner"].create({"name": "Warm-up"})
        cards = [
            self._history(partner, lots)
            for partner, lots in ((warm_up, 2), (self.partner, 2), (self.partner_b, 60))
        ]
        counts = []
        for card in cards:
            self.env.flush_all()
            self.env.invalidate_all()
            before = self.cr.sql_log_count
            card._mlm_post_points(-15.0, "redeem", reason="counter")
            self.env.flush_all()
            counts.append(self.cr.sql_log_count - before)
        # The first call fills caches; 2 lots or 60 lots cost the same.
        self.assertEqual(counts[1], counts[2])
        self.assertLedgerInvariant()
