from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestLedgerSale(LoyaltyMlmCommon):
    """Every path that changes a member card's points, through real sale flows."""

    def test_confirm_earns_once_with_source(self):
        order = self.make_order(amount=120.0)
        order.action_confirm()
        card = self.card_of()
        self.assertEqual(card.points, 120.0)
        entries = self.ledger(card_id=card.id)
        self.assertEqual(entries.mapped("kind"), ["earn"])
        self.assertEqual(entries.points, 120.0)
        self.assertEqual(entries.source_ref, order)
        self.assertEqual(entries.partner_id, self.partner)
        self.assertEqual(entries.user_id, self.env.user)
        self.assertEqual(
            self.partner.mlm_member_since, fields.Date.context_today(self.partner)
        )
        self.assertLedgerInvariant()

    def test_batch_confirm_splits_per_order(self):
        first = self.make_order(amount=100.0)
        second = self.make_order(amount=50.0)
        other = self.make_order(partner=self.partner_b, amount=30.0)
        (first | second | other).action_confirm()
        entries = self.ledger(card_id=self.card_of().id)
        self.assertEqual(
            [(e.res_id, e.kind, e.points) for e in entries],
            [(first.id, "earn", 100.0), (second.id, "earn", 50.0)],
        )
        other_entry = self.ledger(card_id=self.card_of(self.partner_b).id)
        self.assertEqual((other_entry.res_id, other_entry.points), (other.id, 30.0))
        self.assertLedgerInvariant()

    def test_reward_claimed_on_order_posts_earn_and_redeem(self):
        self.make_order(amount=300.0).action_confirm()
        card = self.card_of()
        order = self.make_order(amount=50.0)
        self.claim_points(order, card)
        order.action_confirm()
        entries = self.ledger(res_model="sale.order", res_id=order.id)
        self.assertEqual(entries.mapped("kind"), ["earn", "redeem"])
        spent = -entries.filtered(lambda e: e.kind == "redeem").points
        earned = entries.filtered(lambda e: e.kind == "earn").points
        self.assertEqual(spent, 300.0)  # 3.00 off: 300 points at 0.01 each
        self.assertEqual(card.points, 300.0 - spent + earned)
        self.assertLedgerInvariant()

    def test_cancel_reverses_and_reconfirm_earns_once(self):
        order = self.make_order(amount=80.0)
        order.action_confirm()
        card = self.card_of()
        order._action_cancel()
        self.assertEqual(card.points, 0.0)
        reversal = self.ledger(card_id=card.id, kind="reversal")
        self.assertEqual((reversal.points, reversal.res_id), (-80.0, order.id))
        # The reversal takes back the lot that order earned.
        earn = self.ledger(card_id=card.id, kind="earn")
        self.assertEqual(earn.remaining, 0.0)
        order.action_draft()
        order._update_programs_and_rewards()
        order.action_confirm()
        self.assertEqual(card.points, 80.0)
        self.assertEqual(len(self.ledger(card_id=card.id, kind="earn")), 2)
        self.assertEqual(sum(self.ledger(card_id=card.id).mapped("points")), 80.0)
        self.assertLedgerInvariant()

    def test_cancel_gives_back_spent_points(self):
        self.make_order(amount=200.0).action_confirm()
        card = self.card_of()
        order = self.make_order(amount=50.0)
        self.claim_points(order, card)
        order.action_confirm()
        balance = card.points
        order._action_cancel()
        entries = self.ledger(res_model="sale.order", res_id=order.id, kind="reversal")
        earned = self.ledger(res_model="sale.order", res_id=order.id, kind="earn")
        self.assertEqual(sorted(entries.mapped("points")), [-earned.points, 200.0])
        self.assertEqual(card.points, balance - earned.points + 200.0)
        self.assertLedgerInvariant()

    def test_reward_line_changed_on_confirmed_order(self):
        self.make_order(amount=500.0).action_confirm()
        card = self.card_of()
        order = self.make_order(amount=40.0)
        order.action_confirm()
        before = card.points
        self.claim_points(order, card)  # reward line created on a confirmed order
        redeem = self.ledger(res_id=order.id, kind="redeem")
        self.assertEqual(redeem.points, card.points - before)
        self.assertLess(redeem.points, 0)
        # Native code forbids deleting confirmed lines; lowering the cost of
        # the reward line gives points back.
        line = order.order_line.filtered("is_reward_line")
        line.points_cost = -redeem.points - 100
        giveback = self.ledger(res_id=order.id, kind="reversal")
        self.assertEqual(giveback.points, 100.0)
        self.assertEqual(card.points, before + redeem.points + 100)
        self.assertLedgerInvariant()

    def test_programme_applied_to_a_confirmed_order(self):
        self.partner._mlm_enroll(self.company)
        card = self.card_of()
        self.program.active = False
        order = self.make_order(amount=100.0)
        order.action_confirm()
        self.assertEqual(card.points, 0.0)
        # The programme becomes applicable after confirmation: native code
        # adds the order's points straight to the card.
        self.program.active = True
        order._update_programs_and_rewards()
        self.assertEqual(card.points, 100.0)
        entry = self.ledger(card_id=card.id)
        self.assertEqual(
            (entry.kind, entry.points, entry.res_id), ("earn", 100.0, order.id)
        )
        self.assertLedgerInvariant()

    def test_native_update_balance_wizard(self):
        self.partner._mlm_enroll(self.company)
        card = self.card_of()
        wizard = self.env["loyalty.card.update.balance"].create(
            {"card_id": card.id, "new_balance": 42.0, "description": "Goodwill"}
        )
        wizard.action_update_card_point()
        entry = self.ledger(card_id=card.id, kind="adjustment")
        self.assertEqual((entry.points, entry.reason), (42.0, "Goodwill"))
        self.assertEqual(entry.source_ref, card)
        self.assertLedgerInvariant()

    def test_unattributed_change_is_still_posted(self):
        self.partner._mlm_enroll(self.company)
        card = self.card_of()
        with self.assertLogs(
            "odoo.addons.loyalty_mlm.models.loyalty_mlm_ledger", "WARNING"
        ):
            card.points = 7.0
        entry = self.ledger(card_id=card.id)
        self.assertEqual((entry.kind, entry.points), ("adjustment", 7.0))
        self.assertEqual(entry.reason, "Unattributed change")
        self.assertLedgerInvariant()

    def test_other_programmes_are_not_in_the_ledger(self):
        other = self.env["loyalty.program"].create(
            {"name": "Coupons", "program_type": "coupons"}
        )
        card = self.env["loyalty.card"].create(
            {"program_id": other.id, "partner_id": self.partner.id, "points": 5}
        )
        card.points = 3
        self.assertFalse(self.ledger(card_id=card.id))


@tagged("post_install", "-at_install")
class TestLedgerRules(LoyaltyMlmCommon):
    def test_append_only(self):
        self.make_order(amount=10.0).action_confirm()
        entry = self.ledger(partner_id=self.partner.id)
        for ledger in (entry, entry.sudo()):
            with self.assertRaises(UserError):
                ledger.write({"points": 99.0})
            with self.assertRaises(UserError):
                ledger.unlink()
        self.assertEqual(entry.points, 10.0)

    def test_one_member_card_never_two(self):
        self.partner._mlm_enroll(self.company)
        self.partner._mlm_enroll(self.company)  # idempotent
        self.assertEqual(len(self.card_of()), 1)
        with self.assertRaises(ValidationError):
            self.env["loyalty.card"].create(
                {"program_id": self.program.id, "partner_id": self.partner.id}
            )

    def test_enroll_button_and_auto_enroll_setting(self):
        self.partner.action_mlm_enroll()
        self.assertEqual(len(self.card_of()), 1)
        self.assertEqual(
            self.partner.mlm_member_since, fields.Date.context_today(self.partner)
        )
        self.company.mlm_auto_enroll = False
        # The order earns nothing (no qualifying amount), so nothing enrols it.
        order = self.make_order(partner=self.partner_b, amount=0.0)
        order.action_confirm()
        self.assertFalse(self.partner_b.mlm_member_since)
        self.company.mlm_auto_enroll = True
        order = self.make_order(partner=self.partner_b, amount=0.0)
        order.action_confirm()
        self.assertEqual(len(self.card_of(self.partner_b)), 1)

    def test_adjust_wizard_manager_only_with_reason(self):
        self.partner._mlm_enroll(self.company)
        Wizard = self.env["loyalty.mlm.adjust.wizard"]
        with self.assertRaises(AccessError):
            Wizard.with_user(self.user_loyalty).create(
                {"partner_id": self.partner.id, "points": 5, "reason": "x"}
            )
        wizard = Wizard.with_user(self.user_manager).create(
            {"partner_id": self.partner.id, "points": 25, "reason": "Complaint"}
        )
        wizard.action_apply()
        entry = self.ledger(partner_id=self.partner.id, kind="adjustment")
        self.assertEqual((entry.points, entry.reason), (25.0, "Complaint"))
        self.assertEqual(entry.user_id, self.user_manager)
        self.assertIn("Complaint", self.partner.message_ids[0].body)
        with self.assertRaises(UserError):
            Wizard.with_user(self.user_manager).create(
                {"partner_id": self.partner.id, "points": 5, "reason": "  "}
            ).action_apply()
        self.assertLedgerInvariant()

    def test_access_per_group(self):
        self.make_order(amount=10.0).action_confirm()
        Ledger = self.env["loyalty.mlm.ledger"]
        mine = [("partner_id", "=", self.partner.id)]
        self.assertEqual(len(Ledger.with_user(self.user_loyalty).search(mine)), 1)
        with self.assertRaises(AccessError):
            Ledger.with_user(self.user_plain).search([])
        for user in (self.user_loyalty, self.user_manager):
            with self.assertRaises(AccessError):
                Ledger.with_user(user).create(
                    {"points": 1, "kind": "adjustment", "company_id": self.company.id}
                )

    def test_negative_balance_blocks_redemption(self):
        earning = self.make_order(amount=300.0)
        earning.action_confirm()
        card = self.card_of()
        spending = self.make_order(amount=10.0)
        self.claim_points(spending, card)
        spending.action_confirm()
        spent = -self.ledger(res_id=spending.id, kind="redeem").points
        earning._action_cancel()  # takes back 300 although some were spent
        self.assertEqual(card.points, -spent + 10.0)
        self.assertTrue(self.partner.mlm_redemption_blocked)
        debt = self.ledger(card_id=card.id, kind="reversal")
        self.assertEqual(debt.points, -300.0)
        self.assertEqual(debt.unallocated, spent - 10.0)
        order = self.make_order(amount=10.0)
        result = order._apply_program_reward(self.reward, card)
        self.assertIn("Redemption is blocked", result["error"])
        # New points repay the debt first; redemption reopens once positive.
        self.make_order(amount=1000.0).action_confirm()
        self.assertEqual(debt.unallocated, 0.0)
        self.partner.invalidate_recordset(["mlm_redemption_blocked"])
        self.assertFalse(self.partner.mlm_redemption_blocked)
        self.assertLedgerInvariant()

    def test_opening_balance_when_programme_is_chosen(self):
        program = self.env["loyalty.program"].create(
            {"name": "Old Loyalty", "program_type": "loyalty"}
        )
        card = self.env["loyalty.card"].create(
            {"program_id": program.id, "partner_id": self.partner.id, "points": 64}
        )
        self.company.mlm_program_id = program
        entry = self.ledger(card_id=card.id)
        self.assertEqual((entry.kind, entry.points), ("opening", 64.0))
        self.assertLedgerInvariant()

    def test_reconcile_reports_mismatch(self):
        self.make_order(amount=10.0).action_confirm()
        card = self.card_of()
        self.env.flush_all()  # the ORM must not write its cached value back
        self.env.cr.execute(
            "UPDATE loyalty_card SET points = 99 WHERE id = %s", [card.id]
        )
        card.invalidate_recordset(["points"])
        mismatches = self.env["loyalty.mlm.ledger"]._cron_check_ledger()
        self.assertEqual(mismatches, {card.id: (99.0, 10.0)})
        self.assertTrue(card.mlm_ledger_mismatch)


@tagged("post_install", "-at_install")
class TestLedgerFifo(LoyaltyMlmCommon):
    """Earn / redeem / expire sequences with the expected remainder per lot."""

    def setUp(self):
        super().setUp()
        self.company.mlm_points_validity_months = 12
        self.partner._mlm_enroll(self.company)
        self.card = self.card_of()

    def earn(self, day, points):
        with freeze_time(day):
            self.make_order(amount=points).action_confirm()
        return self.ledger(card_id=self.card.id, kind="earn")[-1]

    def spend(self, day, points, reason="Redeemed at the counter"):
        with freeze_time(day):
            self.card.with_context(
                mlm_ledger_source=("sale.order", 0, "earn", "redeem", reason)
            ).points -= points

    def test_fifo_consumption_and_expiry(self):
        lot1 = self.earn("2025-01-10", 100)
        lot2 = self.earn("2025-03-10", 50)
        lot3 = self.earn("2025-06-10", 70)
        self.assertEqual(str(lot1.expiry_date), "2026-01-10")
        self.spend("2025-07-01", 120)
        self.assertEqual(
            [lot1.remaining, lot2.remaining, lot3.remaining], [0.0, 30.0, 70.0]
        )
        self.spend("2025-08-01", 20)
        self.assertEqual([lot2.remaining, lot3.remaining], [10.0, 70.0])
        with freeze_time("2026-03-11"):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()
        expired = self.ledger(card_id=self.card.id, kind="expire")
        self.assertEqual(
            [(e.expired_lot_id, e.points) for e in expired], [(lot2, -10.0)]
        )
        self.assertEqual([lot2.remaining, lot3.remaining], [0.0, 70.0])
        self.assertEqual(self.card.points, 70.0)
        with freeze_time("2026-03-12"):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()  # idempotent
        self.assertEqual(len(self.ledger(card_id=self.card.id, kind="expire")), 1)
        with freeze_time("2026-06-11"):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()
        self.assertEqual(self.card.points, 0.0)
        self.assertLedgerInvariant()

    def test_expiry_is_set_based_and_leaves_no_chatter(self):
        """Many cards in one call: one entry and allocation per lot, the
        card lowered by the same total, no message or tracking value per
        card (the ledger is the record), nothing posted twice."""
        partners = self.env["res.partner"].create(
            [{"name": f"Expiring {index}"} for index in range(5)]
        )
        for partner in partners:
            with freeze_time("2025-01-10"):
                self.make_order(partner=partner, amount=40).action_confirm()
                self.make_order(partner=partner, amount=25).action_confirm()
        cards = self.env["loyalty.card"].search([("partner_id", "in", partners.ids)])
        self.env.flush_all()
        messages = self.env["mail.message"].search_count([])
        trackings = self.env["mail.tracking.value"].search_count([])
        with freeze_time("2026-02-01"), self.assertQueryCount(5):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()
        self.assertEqual(cards.mapped("points"), [0.0] * 5)
        expired = self.ledger(kind="expire").filtered(lambda e: e.card_id in cards)
        self.assertEqual(sorted(expired.mapped("points")), [-40.0] * 5 + [-25.0] * 5)
        self.assertEqual(expired.consumes_ids.lot_id, expired.expired_lot_id)
        self.assertEqual(set(expired.expired_lot_id.mapped("remaining")), {0.0})
        self.assertEqual(
            expired[0].reason,
            f"Points earned on {expired[0].expired_lot_id.date.date()} expired",
        )
        self.assertEqual(self.env["mail.message"].search_count([]), messages)
        self.assertEqual(self.env["mail.tracking.value"].search_count([]), trackings)
        with freeze_time("2026-02-02"):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()
        self.assertEqual(
            len(self.ledger(kind="expire").filtered(lambda e: e.card_id in cards)), 10
        )
        self.assertLedgerInvariant()

    def test_debt_repaid_over_several_earnings(self):
        """Earnings look the card's debts up only while the balance is below
        zero, and repay them oldest first until it is not."""
        lot = self.earn("2025-01-10", 100)
        self.spend("2025-02-01", 150)
        debt = self.ledger(card_id=self.card.id, kind="redeem")
        self.assertEqual([lot.remaining, debt.unallocated], [0.0, 50.0])

        def earn(points):
            # At the register (a sale order refuses a card below zero).
            self.card.with_context(
                mlm_ledger_source=("pos.order", 0, "earn", "redeem", "")
            ).points += points
            return self.ledger(card_id=self.card.id, kind="earn")[-1]

        first = earn(20)
        self.assertEqual([first.remaining, debt.unallocated], [0.0, 30.0])
        second = earn(40)
        self.assertEqual([second.remaining, debt.unallocated], [10.0, 0.0])
        third = earn(5)
        self.assertEqual([second.remaining, third.remaining], [10.0, 5.0])
        self.assertEqual(self.card.points, 15.0)
        self.assertLedgerInvariant()

    def test_redeem_prefers_unexpired_lots(self):
        lot1 = self.earn("2025-01-10", 100)
        lot2 = self.earn("2026-01-05", 100)
        # lot1 expired on 2026-01-10 but the daily job has not run yet.
        self.spend("2026-01-20", 150)
        self.assertEqual([lot1.remaining, lot2.remaining], [50.0, 0.0])
        self.assertLedgerInvariant()

    def test_never_expire_when_validity_is_zero(self):
        self.company.mlm_points_validity_months = 0
        lot = self.earn("2020-01-01", 10)
        self.assertFalse(lot.expiry_date)
        self.env["loyalty.mlm.ledger"]._cron_expire_points()
        self.assertEqual(self.card.points, 10.0)

    def test_expiring_soon_on_contact(self):
        self.earn(datetime.now() - timedelta(days=350), 40)
        self.earn(datetime.now() - timedelta(days=100), 25)
        # Non-stored: computed per request; drop what the flow above cached.
        self.partner.invalidate_recordset(["mlm_points_expiring_soon"])
        self.assertEqual(self.partner.mlm_points_expiring_soon, 40.0)


@tagged("post_install", "-at_install")
class TestLedgerSurfaces(LoyaltyMlmCommon):
    def test_points_statement_report(self):
        self.make_order(amount=150.0).action_confirm()
        self.card_of()._mlm_adjust(-20.0, "Broken cup goodwill reversal")
        lines = self.env["loyalty.mlm.ledger"]._mlm_statement_entries(self.partner)
        self.assertEqual([line["balance"] for line in lines], [150.0, 130.0])
        html, _format = (
            self.env["ir.actions.report"]
            .with_user(self.user_loyalty)
            ._render_qweb_html(
                "loyalty_mlm.loyalty_mlm_statement_report", self.partner.ids
            )
        )
        html = html.decode()
        self.assertIn("Points statement", html)
        self.assertIn("Broken cup goodwill reversal", html)
        self.assertIn("130.0", html)

    def test_smart_button_opens_member_ledger(self):
        self.make_order(amount=10.0).action_confirm()
        action = self.partner.with_user(self.user_loyalty).action_mlm_open_ledger()
        self.assertEqual(action["res_model"], "loyalty.mlm.ledger")
        self.assertEqual(action["domain"], [("partner_id", "=", self.partner.id)])
        self.assertEqual(self.partner.with_user(self.user_loyalty).mlm_points, 10.0)

    def test_check_balances_button(self):
        self.make_order(amount=10.0).action_confirm()
        Ledger = self.env["loyalty.mlm.ledger"]
        result = Ledger.with_user(self.user_manager).action_mlm_check_ledger()
        self.assertEqual(result["params"]["type"], "success")
        with self.assertRaises(UserError):
            Ledger.with_user(self.user_loyalty).action_mlm_check_ledger()

    def test_partner_merge_moves_points_with_source(self):
        self.make_order(amount=30.0).action_confirm()
        self.make_order(partner=self.partner_b, amount=20.0).action_confirm()
        wizard = self.env["base.partner.merge.automatic.wizard"].create({})
        wizard._merge((self.partner | self.partner_b).ids, self.partner_b)
        card = self.card_of(self.partner_b)
        self.assertEqual(card.points, 50.0)
        merged = self.ledger(kind="adjustment", res_id=self.partner_b.id)
        self.assertEqual(sorted(merged.mapped("points")), [-30.0, 30.0])
        self.assertEqual(merged.mapped("reason")[0], "Contacts merged into Bram Member")
        self.assertLedgerInvariant()

    def test_salesperson_posts_through_the_sale_flow(self):
        salesman = new_test_user(
            self.env, login="mlm_salesman", groups="sales_team.group_sale_salesman"
        )
        self.assertTrue(salesman.has_group("loyalty_mlm.group_loyalty_mlm_user"))
        order = self.make_order(amount=40.0)
        order.user_id = salesman  # "own documents only"
        order.with_user(salesman).action_confirm()
        entry = self.ledger(res_id=order.id, kind="earn")
        self.assertEqual((entry.points, entry.user_id), (40.0, salesman))
        with self.assertRaises(AccessError):
            self.env["loyalty.mlm.ledger"].with_user(salesman).create(
                {"points": 1, "kind": "adjustment", "company_id": self.company.id}
            )

    def test_company_rule(self):
        self.make_order(amount=10.0).action_confirm()
        other = self.env["res.company"].create({"name": "Other Shop"})
        outsider = new_test_user(
            self.env,
            login="mlm_outsider",
            groups="loyalty_mlm.group_loyalty_mlm_user",
            company_id=other.id,
            company_ids=[(6, 0, other.ids)],
        )
        mine = [("partner_id", "=", self.partner.id)]
        self.assertFalse(
            self.env["loyalty.mlm.ledger"].with_user(outsider).search(mine)
        )
        self.assertEqual(
            len(
                self.env["loyalty.mlm.ledger"].with_user(self.user_loyalty).search(mine)
            ),
            1,
        )
