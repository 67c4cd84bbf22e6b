from odoo.tests import tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestSaleTrust(LoyaltyMlmCommon):
    """Sale orders after a merge of members and for a member in debt."""

    def merge_into_b(self):
        wizard = self.env["base.partner.merge.automatic.wizard"].create({})
        wizard._merge((self.partner | self.partner_b).ids, self.partner_b)
        return self.card_of(self.partner_b)

    def test_cancel_after_merge_reverses_on_the_surviving_card(self):
        order = self.make_order(amount=30.0)
        order.action_confirm()
        old_card = self.card_of()
        self.make_order(partner=self.partner_b, amount=20.0).action_confirm()
        survivor = self.merge_into_b()
        self.assertEqual(old_card.mlm_merged_into_id, survivor)
        self.assertEqual(survivor.points, 50.0)
        order._action_cancel()
        # The member does not keep the points of the cancelled order.
        self.assertEqual(survivor.points, 20.0)
        self.assertEqual(old_card.with_context(active_test=False).points, 0.0)
        reversal = self.ledger(res_model="sale.order", res_id=order.id, kind="reversal")
        self.assertEqual((reversal.card_id, reversal.points), (survivor, -30.0))
        self.assertLedgerInvariant()

    def test_cancel_after_merge_takes_back_bonuses_once(self):
        silver = self.env.ref("loyalty_mlm.loyalty_mlm_tier_silver")
        self.partner._mlm_enroll(self.company)
        self.partner.with_company(self.company).mlm_tier_id = silver
        order = self.make_order(amount=40.0)
        order.action_confirm()
        earned = sum(
            self.ledger(res_model="sale.order", res_id=order.id).mapped("points")
        )
        self.assertEqual(earned, 50.0)  # 40 + Silver's 25%
        survivor = self.merge_into_b()
        self.assertEqual(survivor.points, 50.0)
        order._action_cancel()
        self.assertEqual(survivor.points, 0.0)
        self.assertLedgerInvariant()

    def test_member_in_debt_still_confirms_an_ordinary_order(self):
        earning = self.make_order(amount=300.0)
        earning.action_confirm()
        card = self.card_of()
        spending = self.make_order(amount=10.0)
        self.claim_points(spending, card)
        spending.action_confirm()
        earning._action_cancel()
        self.assertLess(card.points, 0)
        # Odoo's promotions are computed on the quote (the member card
        # earns on it): confirming it is fine, only spending is blocked.
        order = self.make_order(amount=20.0)
        before = card.points
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self.assertEqual(card.points, before + 20.0)
        result = self.make_order(amount=10.0)._apply_program_reward(self.reward, card)
        self.assertIn("Redemption is blocked", result["error"])
        self.assertLedgerInvariant()
