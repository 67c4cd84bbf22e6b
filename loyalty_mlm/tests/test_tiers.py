from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
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

    def review_with_values(self, values):
        """The nightly review, with `values` ({partner id: qualification
        value}; 0 for the others) as the members' 12-month figures."""
        Tier = self.env["loyalty.mlm.tier"]
        with patch.object(
            type(Tier),
            "_mlm_tier_values",
            lambda self, company, partner_ids, today=None: {
                pid: values.get(pid, 0.0) for pid in partner_ids
            },
        ):
            Tier._cron_review()

    def clear_tiers(self):
        """Forget every tier of the company (as before any review)."""
        self.env.flush_all()
        key = str(self.company.id)
        self.env.cr.execute(
            """UPDATE res_partner
                  SET mlm_tier_id = mlm_tier_id - %(key)s,
                      mlm_tier_below_since = mlm_tier_below_since - %(key)s""",
            {"key": key},
        )
        self.env.cr.execute(
            "DELETE FROM loyalty_mlm_tier_history WHERE company_id = %s",
            (self.company.id,),
        )
        self.env["res.partner"].invalidate_model(
            ["mlm_tier_id", "mlm_tier_below_since", "mlm_tier_history_ids"]
        )

    def test_review_queries_per_batch(self):
        """A review costs a fixed number of queries per batch, whatever the
        batch size: the first review, where every member moves, in batches
        of 4 and in one batch."""
        partners = self.env["res.partner"].create(
            [{"name": f"Member {i}"} for i in range(11)]
        )
        partners._mlm_enroll(self.company)
        Tier = self.env["loyalty.mlm.tier"]
        members = len(Tier._mlm_programme_member_ids(self.company))
        self.assertGreaterEqual(members, 11)
        Tier._cron_review()  # the ladder and the company in the caches
        for batch_size in (4, members):
            self.clear_tiers()
            batches = -(-members // batch_size)
            # companies; per batch: its members (one more read finds no
            # more when the last batch is full), qualification, current
            # tiers (and whom the catch-up must see), one statement for all
            # the moves
            pages = members // batch_size + 1
            with self.assertQueryCount(1 + pages + 3 * batches):
                Tier._cron_review(batch_size=batch_size)
            self.assertEqual({self.tier_of(p) for p in partners}, {self.bronze})
            self.assertEqual(
                self.env["loyalty.mlm.tier.history"].search_count(
                    [("company_id", "=", self.company.id)]
                ),
                members,
            )

    def test_review_moves_in_one_batch(self):
        """Every decision of the review in one batch, written in bulk: first
        tier, upgrade, back above (grace stopped), below (grace starts),
        downgrade after the grace, kept during the grace, archived tier."""
        Tier = self.env["loyalty.mlm.tier"]
        old = Tier.create({"name": "Old", "threshold": 300.0, "multiplier": 1.1})
        names = ["new", "up", "back", "below", "down", "grace", "archived"]
        members = {
            name: self.env["res.partner"].create({"name": f"Member {name}"})
            for name in names
        }
        for partner in members.values():
            partner._mlm_enroll(self.company)
        self.clear_tiers()
        today = fields.Date.context_today(Tier)
        for name, tier, below_days in (
            ("up", self.bronze, None),
            ("back", self.silver, 10),
            ("below", self.gold, None),
            ("down", self.gold, 40),
            ("grace", self.silver, 5),
            ("archived", old, None),
        ):
            self.set_tier(members[name], tier)
            if below_days:
                members[name].with_company(self.company).sudo().write(
                    {"mlm_tier_below_since": today - timedelta(days=below_days)}
                )
        old.active = False
        values = {
            members["new"].id: 600.0,
            members["up"].id: 1600.0,
            members["back"].id: 600.0,
            members["below"].id: 100.0,
            members["down"].id: 600.0,
            members["grace"].id: 0.0,
            members["archived"].id: 0.0,
        }
        self.env.cr.execute(
            "DELETE FROM loyalty_mlm_tier_history WHERE company_id = %s",
            (self.company.id,),
        )
        messages = self.env["mail.message"].search_count([])
        self.review_with_values(values)
        # No invalidation here: the review's bulk write keeps the cache right.
        state = {
            name: (
                partner.with_company(self.company).mlm_tier_id.name,
                partner.with_company(self.company).mlm_tier_below_since,
            )
            for name, partner in members.items()
        }
        self.assertEqual(
            state,
            {
                "new": ("Silver", False),
                "up": ("Gold", False),
                "back": ("Silver", False),
                "below": ("Gold", today),
                "down": ("Silver", False),
                "grace": ("Silver", today - timedelta(days=5)),
                "archived": ("Bronze", False),
            },
        )
        rows = self.env["loyalty.mlm.tier.history"].search(
            [("partner_id", "in", [p.id for p in members.values()])]
        )
        history = {
            h.partner_id.name.split()[-1]: (
                h.from_tier_id.name or False,
                h.to_tier_id.name,
                h.reason_code,
                h.metric,
            )
            for h in rows
        }
        self.assertEqual(
            history,
            {
                "new": (False, "Silver", "start", 600.0),
                "up": ("Bronze", "Gold", "upgrade", 1600.0),
                "down": ("Gold", "Silver", "downgrade", 600.0),
                "archived": ("Old", "Bronze", "start", 0.0),
            },
        )
        self.assertEqual((rows.user_id, rows.company_id), (self.env.user, self.company))
        self.assertEqual(
            [p.mlm_tier_history_ids.to_tier_id.name for p in members.values()][:2],
            ["Silver", "Gold"],
        )
        # The tier fields are not tracked: the history says it, no chatter.
        self.assertEqual(self.env["mail.message"].search_count([]), messages)

    def test_review_thresholds_round_as_qualifying(self):
        """The review reaches a threshold exactly as _mlm_qualifying does
        (float_compare to the cent), values near a threshold included."""
        Tier = self.env["loyalty.mlm.tier"]
        values = [-0.01, -0.004, 0.0, 499.99, 499.994, 499.995, 499.996, 500.004]
        values += [1499.999, 1500.0, 2000.0]
        partners = self.env["res.partner"].create(
            [{"name": f"Member {value}"} for value in values]
        )
        partners._mlm_enroll(self.company)
        self.clear_tiers()
        by_partner = dict(zip(partners.ids, values, strict=True))
        self.review_with_values(by_partner)
        ladder = Tier._mlm_ladder(self.company)
        self.assertEqual(
            [self.tier_of(partner).name for partner in partners],
            [ladder._mlm_qualifying(value).name for value in values],
        )
        self.assertIn(False, [self.tier_of(partner).name for partner in partners])

    def test_review_catches_up_members_only_when_due(self):
        """The catch-up (referral code, welcome bonus) gets the members it has
        work for, and only them."""
        self.company.mlm_welcome_bonus = 50.0
        partners = self.env["res.partner"].create(
            [{"name": f"Member {i}"} for i in range(3)]
        )
        partners._mlm_enroll(self.company)
        self.assertTrue(all(partners.mapped("mlm_referral_code")))
        self.env["loyalty.mlm.tier"]._cron_review()
        # A code lost (an import, a direct write): given back at night.
        partners[0].sudo().mlm_referral_code = False
        Bonus = type(self.env["loyalty.mlm.bonus"])
        seen = []
        on_member = Bonus._mlm_on_member

        def spy(self, members, company):
            seen.append(set(members.ids))
            return on_member(self, members, company)

        with patch.object(Bonus, "_mlm_on_member", spy):
            self.env["loyalty.mlm.tier"]._cron_review()
        self.assertEqual(seen, [{partners[0].id}])
        self.assertTrue(partners[0].mlm_referral_code)
        self.assertEqual(
            self.env["loyalty.mlm.ledger"].search_count(
                [("partner_id", "in", partners.ids), ("kind", "=", "welcome")]
            ),
            3,
        )

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
