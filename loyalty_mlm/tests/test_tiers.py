from unittest.mock import patch

from freezegun import freeze_time

from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon


class TierMixin:
    def tier_of(self, partner):
        partner.invalidate_recordset(["mlm_tier_id", "mlm_tier_below_since"])
        return partner.with_company(self.company).mlm_tier_id

    def set_tier(self, partner, tier):
        self.env["loyalty.mlm.tier"]._mlm_tier_move(
            partner, self.company, tier, "upgrade", {}
        )

    def history(self, partner):
        return [
            (h.from_tier_id.name or False, h.to_tier_id.name or False, h.reason_code)
            for h in self.env["loyalty.mlm.tier.history"].search(
                [("partner_id", "=", partner.id)], order="id"
            )
        ]


@tagged("post_install", "-at_install")
class TestTiers(TierMixin, LoyaltyMlmCommon):
    """Tiers through real sale orders: Bronze 0, Silver 500 (x1.25), Gold 1500
    (x1.5) points earned over the last 12 months (the default ladder)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bronze = cls.env.ref("loyalty_mlm.loyalty_mlm_tier_bronze")
        cls.silver = cls.env.ref("loyalty_mlm.loyalty_mlm_tier_silver")
        cls.gold = cls.env.ref("loyalty_mlm.loyalty_mlm_tier_gold")
        cls.env["loyalty.mlm.tier"].search(
            [("id", "not in", (cls.bronze | cls.silver | cls.gold).ids)]
        ).active = False
        cls.env["loyalty.mlm.campaign"].search([]).active = False
        cls.company.write(
            {
                "mlm_tier_metric": "points",
                "mlm_tier_grace_days": 30,
                "mlm_welcome_bonus": 0.0,
            }
        )

    def test_default_ladder(self):
        ladder = self.env["loyalty.mlm.tier"]._mlm_ladder(self.company)
        self.assertEqual(
            [(t.name, t.threshold, t.multiplier) for t in ladder],
            [("Bronze", 0.0, 1.0), ("Silver", 500.0, 1.25), ("Gold", 1500.0, 1.5)],
        )

    def test_upgrade_on_the_qualifying_order(self):
        self.make_order(amount=300.0).action_confirm()
        self.assertEqual(self.tier_of(self.partner), self.bronze)
        qualifying = self.make_order(amount=250.0)
        qualifying.action_confirm()
        # This order makes 550 points: Silver at once, not at night. Its own
        # bonus is the tier the member had when ordering (Bronze: none).
        self.assertEqual(self.tier_of(self.partner), self.silver)
        self.assertFalse(self.ledger(res_id=qualifying.id, kind="tier_bonus"))
        self.assertEqual(
            self.history(self.partner),
            [(False, "Bronze", "start"), ("Bronze", "Silver", "upgrade")],
        )
        last = self.env["loyalty.mlm.tier.history"].search(
            [("partner_id", "=", self.partner.id)], limit=1
        )
        self.assertEqual(last.metric, 550.0)
        # The next order earns the Silver bonus: 25% of its points.
        order = self.make_order(amount=100.0)
        order.action_confirm()
        bonus = self.ledger(res_model="sale.order", res_id=order.id, kind="tier_bonus")
        self.assertEqual(
            (bonus.points, bonus.reason, bonus.source_ref),
            (25.0, "Silver tier bonus (x1.25)", order),
        )
        self.assertEqual(order.mlm_points_earned, 125.0)
        self.assertEqual(self.card_of().points, 675.0)
        self.assertLedgerInvariant()

    def test_tier_bonus_amounts_and_reversal_on_cancel(self):
        self.make_order(amount=1500.0).action_confirm()
        self.assertEqual(self.tier_of(self.partner), self.gold)
        card = self.card_of()
        order = self.make_order(amount=200.0)
        order.action_confirm()
        self.assertEqual(
            [(e.kind, e.points) for e in self.ledger(res_id=order.id)],
            [("earn", 200.0), ("tier_bonus", 100.0)],
        )
        self.assertEqual(card.points, 1800.0)
        order._action_cancel()
        self.assertEqual(
            [(e.kind, e.points) for e in self.ledger(res_id=order.id)],
            [
                ("earn", 200.0),
                ("tier_bonus", 100.0),
                ("reversal", -200.0),
                ("reversal", -100.0),
            ],
        )
        self.assertEqual(card.points, 1500.0)
        order.invalidate_recordset(["mlm_points_earned"])
        self.assertEqual(order.mlm_points_earned, 0.0)
        # Cancelling again changes nothing; confirming again earns both once.
        order._action_cancel()
        self.assertEqual(len(self.ledger(res_id=order.id)), 4)
        order.action_draft()
        order._update_programs_and_rewards()
        order.action_confirm()
        self.assertEqual(card.points, 1800.0)
        self.assertEqual(sum(self.ledger(res_id=order.id).mapped("points")), 300.0)
        self.assertLedgerInvariant()

    def test_downgrade_only_after_grace(self):
        cron = self.env["loyalty.mlm.tier"]
        with freeze_time("2025-01-10 10:00:00"):
            self.make_order(amount=600.0).action_confirm()
        self.assertEqual(self.tier_of(self.partner), self.silver)
        with freeze_time("2026-01-09 02:00:00"):  # still within 12 months
            cron._cron_review()
        self.assertEqual(self.tier_of(self.partner), self.silver)
        self.assertFalse(self.partner.with_company(self.company).mlm_tier_below_since)
        with freeze_time("2026-01-15 02:00:00"):  # below: the grace starts
            cron._cron_review()
        self.assertEqual(self.tier_of(self.partner), self.silver)
        self.assertEqual(
            str(self.partner.with_company(self.company).mlm_tier_below_since),
            "2026-01-15",
        )
        with freeze_time("2026-02-13 02:00:00"):  # 29 days: kept
            cron._cron_review()
        self.assertEqual(self.tier_of(self.partner), self.silver)
        with freeze_time("2026-02-14 02:00:00"):  # 30 days: down
            cron._cron_review()
        self.assertEqual(self.tier_of(self.partner), self.bronze)
        self.assertFalse(self.partner.with_company(self.company).mlm_tier_below_since)
        self.assertEqual(
            self.history(self.partner),
            [(False, "Silver", "start"), ("Silver", "Bronze", "downgrade")],
        )
        self.assertLedgerInvariant()

    def test_qualifying_again_during_grace_keeps_the_tier(self):
        cron = self.env["loyalty.mlm.tier"]
        with freeze_time("2025-01-10 10:00:00"):
            self.make_order(amount=600.0).action_confirm()
        with freeze_time("2026-01-15 02:00:00"):
            cron._cron_review()
        self.assertTrue(self.partner.with_company(self.company).mlm_tier_below_since)
        with freeze_time("2026-01-20 10:00:00"):
            self.make_order(amount=500.0).action_confirm()
        # Back at the threshold on the order: the grace period stops.
        self.assertEqual(self.tier_of(self.partner), self.silver)
        self.assertFalse(self.partner.with_company(self.company).mlm_tier_below_since)
        with freeze_time("2026-03-01 02:00:00"):
            cron._cron_review()
        self.assertEqual(self.tier_of(self.partner), self.silver)

    def test_cancellation_counts_against_qualification(self):
        order = self.make_order(amount=600.0)
        order.action_confirm()
        self.assertEqual(self.tier_of(self.partner), self.silver)
        order._action_cancel()
        self.partner.invalidate_recordset(["mlm_tier_value"])
        self.assertEqual(self.partner.with_company(self.company).mlm_tier_value, 0.0)
        # Down only at the review after the grace period, never at once.
        self.assertEqual(self.tier_of(self.partner), self.silver)

    def test_net_spend_metric(self):
        self.company.mlm_tier_metric = "spend"
        # Points do not count: an adjustment of 2000 points is no spend.
        self.partner._mlm_enroll(self.company)
        self.card_of()._mlm_adjust(2000.0, "Goodwill")
        self.make_order(amount=400.0).action_confirm()
        self.assertEqual(self.tier_of(self.partner), self.bronze)
        self.make_order(amount=100.0).action_confirm()
        self.assertEqual(self.tier_of(self.partner), self.silver)
        self.assertEqual(
            self.env["loyalty.mlm.tier"]._mlm_tier_values(
                self.company, self.partner.ids
            ),
            {self.partner.id: 500.0},
        )

    def test_review_is_set_based(self):
        partners = self.env["res.partner"].create(
            [{"name": f"Member {i}"} for i in range(10)]
        )
        partners._mlm_enroll(self.company)
        self.env["loyalty.mlm.tier"]._cron_review()
        # Warm, nothing to change: one query per step, whatever the number of
        # members (cards, ladder, qualification, current tiers).
        with self.assertQueryCount(4):
            self.env["loyalty.mlm.tier"]._cron_review()
        self.assertEqual({self.tier_of(partner) for partner in partners}, {self.bronze})

    def test_salesperson_confirms(self):
        salesman = new_test_user(
            self.env, login="mlm_tier_salesman", groups="sales_team.group_sale_salesman"
        )
        self.set_tier(self.partner, self.gold)
        order = self.make_order(amount=100.0)
        order.user_id = salesman  # salespeople work on their own orders
        order = order.with_user(salesman)
        order.action_confirm()
        # Native sale_loyalty lets only sales administrators cancel (it deletes
        # coupon point rows without sudo).
        order.with_user(self.env.user)._action_cancel()
        self.assertEqual(
            [(e.kind, e.points) for e in self.ledger(res_id=order.id)],
            [
                ("earn", 100.0),
                ("tier_bonus", 50.0),
                ("reversal", -100.0),
                ("reversal", -50.0),
            ],
        )
        self.assertLedgerInvariant()

    def test_confirm_bonus_step_query_count(self):
        """The bonus step of a confirmation costs a fixed number of queries."""
        self.set_tier(self.partner, self.gold)
        self.make_order(amount=10.0).action_confirm()
        order = self.make_order(amount=100.0)
        SaleOrder = type(self.env["sale.order"])
        with patch.object(SaleOrder, "_mlm_post_order_bonuses", lambda orders: None):
            order.action_confirm()
        # Gold: no qualification sum; the card not in debt: no open debts
        # lookup. Lock, card update, ledger insert.
        with self.assertQueryCount(3):
            order._mlm_post_order_bonuses()
        self.assertEqual(self.ledger(res_id=order.id, kind="tier_bonus").points, 50.0)
        self.assertLedgerInvariant()


@tagged("post_install", "-at_install")
class TestTiersPos(TierMixin, LoyaltyMlmPosCommon):
    """Tier bonus at the register and its reversal with a refund."""

    def confirm_points(self, order, points):
        card = self.card()
        return order.confirm_coupon_programs(
            {
                str(card.id): {
                    "points": points,
                    "program_id": self.program.id,
                    "coupon_id": card.id,
                    "partner_id": self.member.id,
                }
            }
        )

    def test_pos_tier_bonus_and_refund(self):
        gold = self.env.ref("loyalty_mlm.loyalty_mlm_tier_gold")
        self.member._mlm_enroll(self.company)
        self.set_tier(self.member, gold)
        order = self.sync([(self.product, 3)])
        result = self.confirm_points(order, 30.0)
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(order)],
            [("earn", 30.0), ("tier_bonus", 15.0)],
        )
        # The register shows the balance with the bonus.
        self.assertEqual(result["coupon_updates"][0]["points"], 45.0)
        # Refunding one bread of three takes back a third of both.
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
            [(e.kind, e.points) for e in self.entries(refund)], [("reversal", -15.0)]
        )
        self.assertEqual(self.card().points, 30.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(self.card()), {})

    def test_pos_upgrade_on_paid_order(self):
        self.member._mlm_enroll(self.company)
        order = self.sync([(self.product, 50)])
        self.confirm_points(order, 500.0)
        self.assertEqual(
            self.tier_of(self.member),
            self.env.ref("loyalty_mlm.loyalty_mlm_tier_silver"),
        )
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(self.card()), {})
