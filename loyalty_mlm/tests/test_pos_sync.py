from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import LoyaltyMlmPosCommon


@tagged("post_install", "-at_install")
class TestPosSync(LoyaltyMlmPosCommon):
    """Retries and tampering at the register's order sync."""

    def earn_payload(self, card):
        return {
            str(card.id): {
                "points": 30.0,
                "program_id": self.program.id,
                "coupon_id": card.id,
                "partner_id": self.member.id,
            }
        }

    def test_order_synced_twice_earns_once(self):
        data = self.create_ui_order_data([(self.product, 3)], customer=self.member)
        first = self.env["pos.order"].sync_from_ui([data])
        order = self.env["pos.order"].browse(first["pos.order"][0]["id"])
        order.confirm_coupon_programs(self.earn_payload(self.card()))
        # The register retries both calls (network error, offline queue).
        self.env["pos.order"].sync_from_ui([data])
        again = order.confirm_coupon_programs(self.earn_payload(self.card()))
        self.assertEqual(
            self.env["pos.order"].search_count([("uuid", "=", data["uuid"])]), 1
        )
        self.assertEqual(self.card().points, 30.0)
        self.assertEqual(len(self.entries(order)), 1)
        self.assertEqual(again["coupon_updates"][0]["points"], 30.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(self.card()), {})

    def test_new_card_created_once_on_retry(self):
        order = self.sync([(self.product, 2)])
        # The member got a card at payment; the register thinks it is new.
        self.card().sudo().unlink()
        payload = {
            "-1": {
                "points": 20.0,
                "program_id": self.program.id,
                "coupon_id": -1,
                "partner_id": self.member.id,
            }
        }
        first = order.confirm_coupon_programs(payload)
        again = order.confirm_coupon_programs(payload)
        self.assertEqual(len(self.card()), 1)
        self.assertEqual(self.card().points, 20.0)
        self.assertEqual(again["coupon_updates"], first["coupon_updates"])

    def test_tampered_discount_is_refused(self):
        self.member._mlm_enroll(self.company)
        self.card()._mlm_adjust(500.0, "Opening")
        before = self.env["pos.order"].search_count([])
        data = self.create_ui_order_data(
            [(self.product, 1), self.reward_line(100.0, 0.0)], customer=self.member
        )
        # 100 points at 0.01 allow 1.00 off; the payload claims 5.00.
        data["lines"][1][2].update(
            price_unit=-5.0, price_subtotal=-5.0, price_subtotal_incl=-5.0
        )
        with self.assertRaisesRegex(UserError, "more than the member programme allows"):
            self.env["pos.order"].sync_from_ui([data])
        self.assertEqual(self.env["pos.order"].search_count([]), before)
        self.assertEqual(self.card().points, 500.0)

    def test_spending_more_points_than_the_balance_is_refused(self):
        self.member._mlm_enroll(self.company)
        self.card()._mlm_adjust(50.0, "Opening")
        data = self.create_ui_order_data(
            [(self.product, 1), self.reward_line(80.0, 0.0)], customer=self.member
        )
        data["lines"][1][2].update(
            price_unit=-0.8, price_subtotal=-0.8, price_subtotal_incl=-0.8
        )
        with self.assertRaisesRegex(UserError, "has 50.0 points, fewer than the 80.0"):
            self.env["pos.order"].sync_from_ui([data])
        self.assertEqual(self.card().points, 50.0)

    def test_honest_partial_redemption_passes(self):
        self.member._mlm_enroll(self.company)
        self.card()._mlm_adjust(500.0, "Opening")
        data = self.create_ui_order_data(
            [(self.product, 1), self.reward_line(120.0, 0.0)], customer=self.member
        )
        data["lines"][1][2].update(
            price_unit=-1.2, price_subtotal=-1.2, price_subtotal_incl=-1.2
        )
        result = self.env["pos.order"].sync_from_ui([data])
        self.assertEqual(len(result["pos.order"]), 1)
