from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import LoyaltyMlmPosCommon


@tagged("post_install", "-at_install")
class TestPosTrust(LoyaltyMlmPosCommon):
    """The register's numbers are checked, not trusted: the server decides
    what an order earns and spends, on whose card."""

    def setUp(self):
        super().setUp()
        self.other = self.env["res.partner"].create({"name": "Other Member"})
        self.other._mlm_enroll(self.company)
        self.other_card = self.env["loyalty.card"].search(
            [("partner_id", "=", self.other.id)]
        )
        self.other_card._mlm_adjust(40.0, "Opening")

    def payload(self, card, points, **values):
        return {
            str(card.id): {
                "points": points,
                "program_id": card.program_id.id,
                "coupon_id": card.id,
                "partner_id": card.partner_id.id,
                **values,
            }
        }

    def test_earned_points_are_the_programme_rules(self):
        order = self.sync([(self.product, 3)])
        # The register claims a billion points for 30.00: the card gets 30.
        result = order.confirm_coupon_programs(self.payload(self.card(), 1e9))
        self.assertEqual(self.card().points, 30.0)
        self.assertEqual(result["mlm_receipt"]["earned"], 30.0)
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(order)], [("earn", 30.0)]
        )
        # A negative claim on an ordinary order takes nothing either.
        second = self.sync([(self.product, 1)])
        second.confirm_coupon_programs(self.payload(self.card(), -3000.0))
        self.assertEqual(self.card().points, 40.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})

    def test_category_rule_counts_on_the_server(self):
        organic = self.env["product.category"].create({"name": "Organic POS"})
        apple = self.create_product("Apple", organic, 5.0, tax_ids=False)
        self.program.rule_ids = [
            (
                0,
                0,
                {
                    "reward_point_mode": "unit",
                    "reward_point_amount": 2,
                    "product_category_id": organic.id,
                },
            )
        ]
        order = self.sync([(self.product, 1), (apple, 3)])
        result = order.confirm_coupon_programs(self.payload(self.card(), 0.0))
        # 25.00 at 1 point per unit of money, plus 2 per organic apple.
        self.assertEqual(result["mlm_receipt"]["earned"], 31.0)

    def test_other_members_card_is_refused(self):
        order = self.sync([(self.product, 3)])
        before = self.other_card.points
        with self.assertRaisesRegex(UserError, "belongs to another customer"):
            order.confirm_coupon_programs(self.payload(self.other_card, 30.0))
        self.assertEqual(self.other_card.points, before)
        self.assertFalse(order.mlm_points_confirmed)
        # The honest call still works afterwards.
        order.confirm_coupon_programs(self.payload(self.card(), 30.0))
        self.assertEqual(self.card().points, 30.0)

    def test_non_finite_and_huge_numbers_are_refused(self):
        order = self.sync([(self.product, 3)])
        for value in (float("nan"), float("inf"), -float("inf"), 1e15, "12", True):
            with self.subTest(value=value):
                with self.assertRaisesRegex(UserError, "not a valid number"):
                    order.confirm_coupon_programs(self.payload(self.card(), value))
        self.assertEqual(self.card().points, 0.0)
        for bad in ([], "x", {"x": {}}, {"1": "points"}):
            with self.subTest(bad=bad), self.assertRaises(UserError):
                order.confirm_coupon_programs(bad)

    def test_new_card_for_another_customer_is_refused(self):
        order = self.sync([(self.product, 3)])
        with self.assertRaisesRegex(UserError, "another customer"):
            order.confirm_coupon_programs(
                {
                    "-1": {
                        "points": 30.0,
                        "program_id": self.program.id,
                        "coupon_id": -1,
                        "partner_id": self.other.id,
                    }
                }
            )

    def test_negative_points_cost_is_refused(self):
        self.member._mlm_enroll(self.company)
        data = self.create_ui_order_data(
            [(self.product, 1), self.reward_line(-500.0, 0.0)], customer=self.member
        )
        with self.assertRaisesRegex(UserError, "not a valid number of points"):
            self.env["pos.order"].sync_from_ui([data])
        self.assertEqual(self.card().points, 0.0)
        data = self.create_ui_order_data(
            [(self.product, 1), self.reward_line(float("nan"), 0.0)],
            customer=self.member,
        )
        with self.assertRaisesRegex(UserError, "not a valid number of points"):
            self.env["pos.order"].sync_from_ui([data])

    def test_spend_is_taken_when_the_order_is_saved(self):
        self.member._mlm_enroll(self.company)
        self.card()._mlm_adjust(100.0, "Opening")
        order = self.sync([(self.product, 1), self.reward_line(100.0, 1.0)])
        # Taken at once, with the card locked: a second register now sees 0.
        self.assertEqual(self.card().points, 0.0)
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(order)], [("redeem", -100.0)]
        )
        data = self.create_ui_order_data(
            [(self.product, 1), self.reward_line(100.0, 1.0)], customer=self.member
        )
        with self.assertRaisesRegex(UserError, "has 0.0 points, fewer than the 100.0"):
            self.env["pos.order"].sync_from_ui([data])
        # The register's net figure (earned 10 - spent 100) counts the spend
        # once: the confirmation only earns (the member discount itself
        # earns nothing, as at the register).
        result = order.confirm_coupon_programs(
            self.payload(self.card(), -90.0, line_codes=["RWD"])
        )
        self.assertEqual(result["mlm_receipt"]["spent"], 100.0)
        self.assertEqual(result["mlm_receipt"]["earned"], 10.0)
        self.assertEqual(self.card().points, 10.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})

    def test_refunding_a_line_twice_takes_its_points_back_once(self):
        order = self.sync([(self.product, 3)])
        order.confirm_coupon_programs(self.payload(self.card(), 30.0))
        line = order.lines[0]
        refund_line = {
            "product": self.product,
            "quantity": -3,
            "refunded_orderline_id": line.id,
        }
        first = self.sync([refund_line])
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(first)], [("reversal", -30.0)]
        )
        # A hostile second refund of the same line takes nothing more.
        second = self.sync([refund_line])
        self.assertFalse(self.entries(second))
        self.assertEqual(self.card().points, 0.0)

    def test_partial_refunds_add_up_to_the_line(self):
        order = self.sync([(self.product, 3)])
        order.confirm_coupon_programs(self.payload(self.card(), 30.0))
        line = order.lines[0]
        for quantity, taken in ((-1, -10.0), (-1, -10.0), (-2, -10.0)):
            refund = self.sync(
                [
                    {
                        "product": self.product,
                        "quantity": quantity,
                        "refunded_orderline_id": line.id,
                    }
                ]
            )
            self.assertEqual(
                [(e.kind, e.points) for e in self.entries(refund)],
                [("reversal", taken)],
            )
        self.assertEqual(self.card().points, 0.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})

    def test_refund_after_merge_lands_on_the_surviving_card(self):
        order = self.sync([(self.product, 3)])
        order.confirm_coupon_programs(self.payload(self.card(), 30.0))
        old_card = self.card()
        wizard = self.env["base.partner.merge.automatic.wizard"].create({})
        wizard._merge((self.member | self.other).ids, self.other)
        self.assertEqual(old_card.mlm_merged_into_id, self.other_card)
        self.assertEqual(self.other_card.points, 70.0)
        data = self.create_ui_order_data(
            [
                {
                    "product": self.product,
                    "quantity": -3,
                    "refunded_orderline_id": order.lines[0].id,
                }
            ],
            customer=self.other,
        )
        result = self.env["pos.order"].sync_from_ui([data])
        refund = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        self.assertEqual(self.entries(refund).card_id, self.other_card)
        self.assertEqual(self.other_card.points, 40.0)
        self.assertEqual(old_card.with_context(active_test=False).points, 0.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})
