import math

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestCardGuards(LoyaltyMlmCommon):
    """Member cards change balance, holder and programme only through the
    ledger-aware paths; card and ledger agree to the last decimal."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.salesperson = new_test_user(
            cls.env, login="mlm_guard_sales", groups="sales_team.group_sale_salesman"
        )
        cls.sales_manager = new_test_user(
            cls.env, login="mlm_guard_sales_mgr", groups="sales_team.group_sale_manager"
        )
        cls.cashier = new_test_user(
            cls.env,
            login="mlm_guard_cashier",
            groups="base.group_user,point_of_sale.group_pos_user",
        )
        cls.partner._mlm_enroll(cls.company)
        cls.card = cls.env["loyalty.card"].search(
            [("partner_id", "=", cls.partner.id), ("program_id", "=", cls.program.id)]
        )
        cls.card._mlm_adjust(100.0, "Opening")
        cls.coupons = cls.env["loyalty.program"].create(
            {"name": "Coupons", "program_type": "coupons"}
        )

    def assertUnchanged(self, card, points, entries):
        card.invalidate_recordset()
        self.assertEqual(card.points, points)
        self.assertEqual(len(self.ledger(card_id=card.id)), entries)
        self.assertLedgerInvariant()

    # points ----------------------------------------------------------------

    def test_staff_cannot_write_points(self):
        entries = len(self.ledger(card_id=self.card.id))
        for user in (self.salesperson, self.sales_manager, self.cashier):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.card.with_user(user).write({"points": 5000.0})
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.card.with_user(user).points += 1
        self.assertUnchanged(self.card, 100.0, entries)

    def test_staff_cannot_use_the_balance_wizard(self):
        entries = len(self.ledger(card_id=self.card.id))
        for user in (self.salesperson, self.cashier):
            wizard = (
                self.env["loyalty.card.update.balance"]
                .with_user(user)
                .create(
                    {
                        "card_id": self.card.id,
                        "new_balance": 900.0,
                        "description": "Nice customer",
                    }
                )
            )
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                wizard.action_update_card_point()
        self.assertUnchanged(self.card, 100.0, entries)

    def test_manager_balance_wizard_reason_reaches_the_ledger(self):
        wizard = (
            self.env["loyalty.card.update.balance"]
            .with_user(self.user_manager)
            .create(
                {"card_id": self.card.id, "new_balance": 142.5, "description": "Gift"}
            )
        )
        wizard.action_update_card_point()
        entry = self.ledger(card_id=self.card.id)[-1]
        self.assertEqual(
            (entry.kind, entry.points, entry.reason, entry.user_id),
            ("adjustment", 42.5, "Gift", self.user_manager),
        )
        self.assertEqual(self.card.points, 142.5)
        self.assertLedgerInvariant()

    def test_staff_flows_still_move_points(self):
        # Sale order confirmation, redemption on a confirmed order, and
        # cancellation run as the salesperson; Odoo writes the card as them.
        order = self.make_order(amount=50.0)
        order.user_id = self.salesperson
        order.with_user(self.salesperson).action_confirm()
        self.assertEqual(self.card.points, 150.0)
        spend = self.make_order(amount=20.0)
        spend.user_id = self.salesperson
        spend.with_user(self.salesperson).action_confirm()
        self.assertEqual(self.card.points, 170.0)
        result = spend.with_user(self.salesperson)._apply_program_reward(
            self.reward, self.card
        )
        self.assertFalse(result.get("error"), result.get("error"))
        self.assertLess(self.card.points, 170.0)
        # Odoo lets only sales managers cancel orders with coupon points.
        spend.with_user(self.sales_manager)._action_cancel()
        order.with_user(self.sales_manager)._action_cancel()
        self.assertEqual(self.card.points, 100.0)
        self.assertLedgerInvariant()

    def test_negative_reward_cost_is_refused(self):
        order = self.make_order(amount=20.0)
        order.user_id = self.salesperson
        order.with_user(self.salesperson).action_confirm()
        line = order.order_line[:1]
        with self.assertRaises(ValidationError):
            line.with_user(self.salesperson).write(
                {"coupon_id": self.card.id, "points_cost": -3000.0}
            )
        self.assertEqual(self.card.points, 120.0)
        self.assertLedgerInvariant()

    def test_managers_and_server_code_may_write_points(self):
        self.card.with_user(self.user_manager).points = 80.0
        self.card.sudo().points += 20.0
        self.assertEqual(self.card.points, 100.0)
        self.assertLedgerInvariant()

    def test_creating_a_funded_member_card_needs_a_manager(self):
        Card = self.env["loyalty.card"]
        with self.assertRaises(AccessError):
            Card.with_user(self.sales_manager).create(
                {
                    "program_id": self.program.id,
                    "partner_id": self.partner_b.id,
                    "points": 777.0,
                }
            )
        self.assertFalse(self.card_of(self.partner_b))
        card = Card.create(
            {
                "program_id": self.program.id,
                "partner_id": self.partner_b.id,
                "points": 77.0,
            }
        )
        entry = self.ledger(card_id=card.id)
        self.assertEqual((entry.kind, entry.points), ("opening", 77.0))
        self.assertLedgerInvariant()

    def test_non_finite_or_huge_points_are_refused(self):
        entries = len(self.ledger(card_id=self.card.id))
        for value in (math.nan, math.inf, -math.inf, "abc", 2e9, -2e9):
            with self.subTest(value=value), self.assertRaises(ValidationError):
                self.card.write({"points": value})
        self.assertUnchanged(self.card, 100.0, entries)

    # holder and programme ---------------------------------------------------

    def test_holder_cannot_change(self):
        for user in (self.salesperson, self.user_manager, self.env.user):
            with self.subTest(user=user.login), self.assertRaises(UserError):
                self.card.with_user(user).write({"partner_id": self.partner_b.id})
        with self.assertRaises(UserError):
            self.card.sudo().partner_id = False
        self.assertEqual(self.card.partner_id, self.partner)

    def test_merge_moves_the_card(self):
        self.partner_b._mlm_enroll(self.company)
        wizard = self.env["base.partner.merge.automatic.wizard"]
        wizard._merge((self.partner | self.partner_b).ids, self.partner_b)
        card = self.card_of(self.partner_b)
        self.assertEqual(card.points, 100.0)
        self.assertLedgerInvariant()

    def test_member_card_stays_in_the_programme(self):
        with self.assertRaises(UserError):
            self.card.write({"program_id": self.coupons.id})
        self.assertEqual(self.card.program_id, self.program)

    def test_card_entering_the_programme_posts_an_opening(self):
        coupon = self.env["loyalty.card"].create(
            {"program_id": self.coupons.id, "partner_id": self.partner_b.id}
        )
        coupon.points = 777.0
        with self.assertRaises(AccessError):
            coupon.with_user(self.salesperson).write({"program_id": self.program.id})
        self.assertEqual(coupon.program_id, self.coupons)
        coupon.with_user(self.user_manager).write({"program_id": self.program.id})
        entry = self.ledger(card_id=coupon.id)
        self.assertEqual((entry.kind, entry.points), ("opening", 777.0))
        self.assertTrue(self.partner_b.mlm_member_since)
        self.assertLedgerInvariant()

    def test_card_entering_with_new_points_is_rounded(self):
        coupon = self.env["loyalty.card"].create(
            {"program_id": self.coupons.id, "partner_id": self.partner_b.id}
        )
        coupon.write({"program_id": self.program.id, "points": 10.005})
        self.assertEqual(coupon.points, 10.01)
        self.assertEqual(self.ledger(card_id=coupon.id).points, 10.01)
        self.assertLedgerInvariant()

    def test_programme_chosen_with_odd_balances(self):
        program = self.env["loyalty.program"].create(
            {"name": "Old Loyalty", "program_type": "loyalty"}
        )
        card = self.env["loyalty.card"].create(
            {"program_id": program.id, "partner_id": self.partner.id, "points": 64.005}
        )
        self.company.mlm_program_id = program
        self.assertEqual(card.points, 64.01)
        entries = self.ledger(card_id=card.id)
        self.assertEqual(set(entries.mapped("kind")), {"opening"})
        self.env.cr.execute(
            "SELECT SUM(points) FROM loyalty_mlm_ledger WHERE card_id = %s", [card.id]
        )
        self.assertEqual(float(self.env.cr.fetchone()[0]), 64.01)
        self.assertLedgerInvariant()

    def test_card_with_points_cannot_be_archived(self):
        with self.assertRaises(ValidationError) as error:
            self.card.with_user(self.user_manager).active = False
        self.assertIn("move the balance first", str(error.exception))
        self.assertTrue(self.card.active)
        self.card._mlm_adjust(-100.0, "Closing")
        self.card.active = False
        self.assertFalse(self.card.active)
        self.assertLedgerInvariant()

    # precision ----------------------------------------------------------------

    def test_card_and_ledger_agree_to_the_cent(self):
        card = self.card
        for _i in range(3):
            card.sudo().points += 1.005
        self.assertEqual(card.points, 103.03)
        entries = self.ledger(card_id=card.id)
        self.assertEqual(entries[-3:].mapped("points"), [1.01, 1.01, 1.01])
        card.sudo().points += 0.1
        card.sudo().points += 0.2
        self.assertEqual(card.points, 103.33)
        entries = len(self.ledger(card_id=card.id))
        card.sudo().points += 1e-9
        self.assertEqual(card.points, 103.33)
        self.assertEqual(len(self.ledger(card_id=card.id)), entries)
        card._mlm_post_points(0.004999, "adjustment", reason="Tiny")
        card._mlm_post_points(2.675, "adjustment", reason="Half")
        self.assertEqual(card.points, 106.01)
        self.env.flush_all()
        self.assertLedgerInvariant()
        # To the last digit in the database too, not only after rounding.
        self.env.cr.execute(
            "SELECT c.points::numeric = SUM(l.points) FROM loyalty_card c "
            "JOIN loyalty_mlm_ledger l ON l.card_id = c.id WHERE c.id = %s "
            "GROUP BY c.points",
            [card.id],
        )
        self.assertEqual(self.env.cr.fetchone()[0], True)

    def test_other_cards_keep_odoo_precision(self):
        coupon = self.env["loyalty.card"].create(
            {"program_id": self.coupons.id, "points": 1.005}
        )
        (coupon | self.card).sudo().write({"points": 3.3333})
        self.assertEqual(coupon.points, 3.3333)
        self.assertEqual(self.card.points, 3.33)
        self.assertLedgerInvariant()
