from odoo.tests import tagged

from .common import LoyaltyMlmPosCommon


@tagged("post_install", "-at_install")
class TestLedgerPos(LoyaltyMlmPosCommon):
    """POS earn, redeem and refund through the order sync the front end uses."""

    def test_pos_earn_redeem_refund(self):
        # 1. A paid order enrols the customer and earns through the RPC the
        # payment screen calls after the sync.
        order = self.sync([(self.product, 3)])
        self.assertEqual(len(self.card()), 1)  # enrolled on the paid order
        order.confirm_coupon_programs(
            {
                str(self.card().id): {
                    "points": 30.0,
                    "program_id": self.program.id,
                    "coupon_id": self.card().id,
                    "partner_id": self.member.id,
                }
            }
        )
        self.assertEqual(self.card().points, 30.0)
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(order)], [("earn", 30.0)]
        )
        # 2. An order that spends 20 points and earns 10.
        reward = self.program.reward_ids
        spend = self.sync(
            [
                (self.product, 1),
                {
                    "product": reward.discount_line_product_id,
                    "quantity": 1,
                    "is_reward_line": True,
                    "reward_id": reward.id,
                    "reward_identifier_code": "RWD1",
                    "points_cost": 20.0,
                },
            ]
        )
        spend.confirm_coupon_programs(
            {
                str(self.card().id): {
                    "points": -10.0,  # net, as the front end sends it
                    "program_id": self.program.id,
                    "coupon_id": self.card().id,
                    "line_codes": ["RWD1"],
                }
            }
        )
        # The spend is taken when the order is saved (card locked), the
        # earning when the register confirms the points.
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(spend)],
            [("redeem", -20.0), ("earn", 10.0)],
        )
        self.assertEqual(self.card().points, 20.0)
        # 3. Refunding one of the three breads takes back a third of what the
        # first order earned, once, even if the refund is processed again.
        refund = self.sync(
            [
                {
                    "product": self.product,
                    "quantity": -1,
                    "refunded_orderline_id": order.lines[0].id,
                }
            ]
        )
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(refund)], [("reversal", -10.0)]
        )
        refund._mlm_reverse_refunded_points()
        self.assertEqual(len(self.entries(refund)), 1)
        self.assertEqual(self.card().points, 10.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(self.card()), {})

    def test_pos_refuses_redemption_on_negative_balance(self):
        self.member._mlm_enroll(self.company)
        self.card()._mlm_adjust(-15.0, "Points taken back after spending")
        result = self.env["pos.order"].validate_coupon_programs(
            {str(self.card().id): -10.0}, []
        )
        self.assertFalse(result["successful"])
        self.assertIn(
            "Redemption is blocked for Pos Member", result["payload"]["message"]
        )
        # Earning is still allowed.
        result = self.env["pos.order"].validate_coupon_programs(
            {str(self.card().id): 5.0}, []
        )
        self.assertTrue(result["successful"])
