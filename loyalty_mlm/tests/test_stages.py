from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools.sql import column_exists

from ..models import loyalty_mlm_stage as stage_model
from .common import CLOCKS, LoyaltyMlmCommon, LoyaltyMlmPosCommon, post_migrate


class StageCase:
    """Helpers to build a customer with a real order history."""

    def customer(self, name, days_ago=()):
        """A customer whose confirmed sale orders are `days_ago` days old (on
        the user's calendar, at the current time of day)."""
        partner = self.env["res.partner"].create({"name": name, "customer_rank": 1})
        for days in days_ago:
            order = self.make_order(partner=partner, amount=50.0)
            order.action_confirm()
            order.date_order = self.days_ago(days)
        return partner

    def store_score(self, partner, **values):
        """A stored score row, as the nightly score refresh writes it."""
        self.env["loyalty.mlm.partner.score"].create(
            {"partner_id": partner.id, "company_id": self.env.company.id, **values}
        )

    def refresh(self, partners):
        return self.env["loyalty.mlm.stage"]._mlm_refresh_stages(
            partners, self.env.company
        )

    def last_move(self, partner):
        return partner.mlm_stage_history_ids.sorted("id")[-1:]


@tagged("post_install", "-at_install")
class TestStageRules(StageCase, LoyaltyMlmCommon):
    """Every rule boundary, one day inside and one day outside, from real
    confirmed orders (default thresholds: lapse 180 days, onboarding 90 days
    and fewer than 3 orders, order drop more than 50%). Days are counted on
    the user's calendar: the boundaries are checked at each of CLOCKS, where
    the user's date is ahead of, equal to and behind the UTC date."""

    # name: (order ages in days, expected stage, expected reason)
    RULE_TABLE = {
        "no order": ((), "acquisition", "no_order"),
        "lapsed 181": ((400, 181), "winback", "lapsed"),
        "lapsed 180": ((400, 180), "growth", "active"),
        "new 90": ((90,), "onboarding", "new_customer"),
        "new 91": ((91,), "growth", "active"),
        "new, 2 orders": ((20, 10), "onboarding", "new_customer"),
        "new, 3 orders": ((30, 20, 10), "growth", "active"),
        "drop 50%": ((500, 480, 450, 400, 100, 30), "growth", "active"),
        "drop 75%": ((500, 480, 450, 400, 30), "retention", "order_drop"),
    }

    def test_rule_boundaries(self):
        for clock in CLOCKS:
            with self.subTest(clock=clock), self.clock(*clock):
                self.check_rule_table(self.refresh)

    def test_rule_boundaries_nightly(self):
        """The nightly step (every customer of the company from one query)
        decides as the per-contact refresh does."""
        for clock in CLOCKS:
            with self.subTest(clock=clock), self.clock(*clock):
                self.check_rule_table(
                    lambda _partners: self.env[
                        "loyalty.mlm.stage"
                    ]._mlm_refresh_all_stages(self.env.company)
                )

    def check_rule_table(self, refresh):
        table = self.RULE_TABLE
        customers = {
            name: self.customer(name, days) for name, (days, _s, _r) in table.items()
        }
        refresh(self.env["res.partner"].concat(*customers.values()))
        for name, (_days, stage, reason) in table.items():
            partner = customers[name]
            with self.subTest(name):
                self.assertEqual(partner.mlm_stage_id.code, stage)
                self.assertEqual(self.last_move(partner).reason_code, reason)
                self.assertTrue(self.last_move(partner).automatic)

    def test_refresh_is_idempotent(self):
        partners = self.customer("A", (400, 200)) | self.customer("B", (20,))
        self.refresh(partners)
        moves = self.env["loyalty.mlm.stage.history"].search_count(
            [("partner_id", "in", partners.ids)]
        )
        self.assertEqual(self.refresh(partners), 0)
        self.assertEqual(
            self.env["loyalty.mlm.stage.history"].search_count(
                [("partner_id", "in", partners.ids)]
            ),
            moves,
        )

    def test_fresh_churn_score_puts_active_customer_in_retention(self):
        if "mlm_churn_risk" not in self.env["res.partner"]._fields:
            self.skipTest("segment scores not installed")
        partner = self.customer("At risk", (300, 120))
        today = fields.Date.context_today(partner)
        self.store_score(partner, churn_risk=70, score_date=today)
        self.refresh(partner)
        self.assertEqual(partner.mlm_stage_id.code, "retention")
        self.assertEqual(self.last_move(partner).reason_code, "churn_risk")
        other = self.customer("Safe", (300, 120))
        self.store_score(other, churn_risk=69, score_date=today)
        self.refresh(other)
        self.assertEqual(other.mlm_stage_id.code, "growth")

    def test_churn_risk_must_have_risen_since_the_last_order(self):
        """With the at-risk rise set (#18; 0 by default: the churn risk alone
        decides), a high churn risk alone is not enough: it must have risen
        that many points above the customer's own pattern, his churn risk
        right after his last order."""
        self.env.company.mlm_at_risk_rise = 10
        today = fields.Date.context_today(self.env.user)
        risen = self.customer("Risen", (300, 120))
        self.store_score(risen, churn_risk=70, churn_rise=10, score_date=today)
        always = self.customer("Always", (300, 120))
        self.store_score(always, churn_risk=90, churn_rise=9, score_date=today)
        self.refresh(risen | always)
        self.assertEqual(
            (risen.mlm_stage_id.code, always.mlm_stage_id.code),
            ("retention", "growth"),
        )
        self.env.company.mlm_at_risk_rise = 0
        self.refresh(always)
        self.assertEqual(always.mlm_stage_id.code, "retention")

    def test_manual_stage_with_lock(self):
        partner = self.customer("Key account", (400, 200))
        self.refresh(partner)
        self.assertEqual(partner.mlm_stage_id.code, "winback")
        growth = self.env.ref("loyalty_mlm.stage_growth")
        today = fields.Date.context_today(partner)
        wizard = (
            self.env["loyalty.mlm.stage.wizard"]
            .with_user(self.user_manager)
            .create(
                {
                    "partner_ids": [(6, 0, partner.ids)],
                    "stage_id": growth.id,
                    "reason": "Handled personally",
                    "locked_until": today + timedelta(days=10),
                }
            )
        )
        wizard.action_apply()
        move = self.last_move(partner)
        self.assertEqual(
            (move.to_stage_id, move.reason_code, move.automatic, move.user_id),
            (growth, "manual", False, self.user_manager),
        )
        self.assertEqual(move.reason, "Handled personally")
        self.refresh(partner)  # locked: the rules leave it alone
        self.assertEqual(partner.mlm_stage_id, growth)
        partner.mlm_stage_locked_until = today - timedelta(days=1)
        self.refresh(partner)
        self.assertEqual(partner.mlm_stage_id.code, "winback")
        self.assertEqual(self.last_move(partner).reason_code, "lapsed")

    def test_only_managers_set_stages_by_hand(self):
        partner = self.customer("Someone", (20,))
        growth = self.env.ref("loyalty_mlm.stage_growth")
        with self.assertRaises(UserError):
            partner.with_user(self.user_loyalty).mlm_stage_pick_id = growth
        partner.with_user(self.user_manager).mlm_stage_pick_id = growth
        self.assertEqual(partner.mlm_stage_id, growth)
        self.assertEqual(self.last_move(partner).reason, "Set from the contact form")

    def test_first_order_moves_to_onboarding_now(self):
        partner = self.env["res.partner"].create({"name": "Newcomer"})
        self.make_order(partner=partner, amount=20.0).action_confirm()
        self.assertEqual(partner.mlm_stage_id.code, "onboarding")
        self.assertEqual(self.last_move(partner).reason_code, "new_customer")

    def test_winback_customer_is_won_back_by_an_order(self):
        partner = self.customer("Lapsed", (500, 300, 250))
        self.refresh(partner)
        self.assertEqual(partner.mlm_stage_id.code, "winback")
        self.make_order(partner=partner, amount=30.0).action_confirm()
        self.assertEqual(partner.mlm_stage_id.code, "growth")
        move = self.last_move(partner)
        self.assertEqual(
            (move.from_stage_id.code, move.reason_code), ("winback", "won_back")
        )

    def test_nightly_step_reads_scores_referrals_and_locks(self):
        """What the nightly step reads besides orders: a fresh churn score, a
        stale one (older than the last order, ignored), successful referrals,
        a manual lock; contacts in their stage are not written again."""
        for clock in CLOCKS:
            with self.subTest(clock=clock), self.clock(*clock):
                self.check_nightly_step()

    def check_nightly_step(self):
        company = self.env.company
        today = fields.Date.context_today(self.env.user)
        at_risk = self.customer("At risk", (300, 120))
        self.store_score(at_risk, churn_risk=80, score_date=today)
        stale = self.customer("Stale score", (300, 120))
        self.store_score(stale, churn_risk=80, score_date=today - timedelta(days=121))
        ambassador = self.customer("Ambassador", (300, 120))
        company.mlm_ambassador_referrals = 1
        friend = self.env["res.partner"].create(
            {"name": "Referred friend", "mlm_referrer_id": ambassador.id}
        )
        friend.mlm_referral_date = today  # rewarded
        locked = self.customer("Locked", (400, 200))
        retention = self.env.ref("loyalty_mlm.stage_retention")
        locked.write(
            {
                "mlm_stage_id": retention.id,
                "mlm_stage_locked_until": today + timedelta(days=5),
            }
        )
        Stage = self.env["loyalty.mlm.stage"]
        Stage._mlm_refresh_all_stages(company)
        self.assertEqual(
            (
                at_risk.mlm_stage_id.code,
                stale.mlm_stage_id.code,
                ambassador.mlm_stage_id.code,
                locked.mlm_stage_id,
            ),
            ("retention", "growth", "ambassadorship", retention),
        )
        self.assertEqual(self.last_move(ambassador).reason_code, "referrals")
        self.assertEqual(Stage._mlm_refresh_all_stages(company), 0)

    def test_nightly_step_queries_do_not_grow_with_customers(self):
        """One query reads every customer: an unchanged night costs the same
        number of queries for 3 customers as for 12."""
        company = self.env.company
        Stage = self.env["loyalty.mlm.stage"]
        for count in (3, 12):
            for i in range(count):
                self.customer(f"Q{count}-{i}", (40, 20, 10))
            Stage._mlm_refresh_all_stages(company)  # moves them, warms caches
            self.env.invalidate_all()
            # The customers with what decides their stage (5: into a
            # temporary table, a cursor on it, one chunk, the end of it,
            # closed); the rest reads the company's thresholds, the stages
            # and the user's timezone.
            with self.assertQueryCount(9):
                self.assertEqual(Stage._mlm_refresh_all_stages(company), 0)

    def test_backfill_on_install(self):
        partners = self.customer("Old regular", (200, 100, 30)) | self.customer(
            "Old lapsed", (300,)
        )
        partners.write({"mlm_stage_id": False})
        self.env["loyalty.mlm.stage"]._mlm_refresh_all_stages()
        self.assertEqual(partners.mapped("mlm_stage_id.code"), ["growth", "winback"])

    def test_six_stages_are_kept(self):
        stages = self.env["loyalty.mlm.stage"].search([])
        self.assertEqual(
            stages.mapped("code"),
            [
                "acquisition",
                "onboarding",
                "growth",
                "ambassadorship",
                "retention",
                "winback",
            ],
        )
        with self.assertRaises(UserError):
            stages[0].unlink()
        stages[0].with_user(self.user_manager).name = "Werving"
        groups = self.env["res.partner"].read_group(
            [("id", "=", 0)], ["mlm_stage_id"], ["mlm_stage_id"]
        )
        self.assertEqual(len(groups), 6)  # every column, even empty


@tagged("post_install", "-at_install")
class TestStageBulkMoves(StageCase, LoyaltyMlmCommon):
    """A first assignment (install on an existing database) moves every
    customer at once: written set-based (issue #22), with the history rows
    and the ORM cache the per-contact writes gave."""

    def prospects(self, count, prefix="Prospect"):
        """`count` customers without orders: Acquisition is theirs."""
        return self.env["res.partner"].create(
            [{"name": f"{prefix} {i}", "customer_rank": 1} for i in range(count)]
        )

    def new_prospects(self, count):
        """`count` prospects without a stage yet, everyone else in his stage
        (and the caches a bulk move reads warm)."""
        self.prospects(25, "Warm-up")
        self.env["loyalty.mlm.stage"]._mlm_refresh_all_stages(self.env.company)
        return self.prospects(count)

    def test_first_assignment_queries_do_not_grow_with_customers(self):
        """The same number of queries to move 50 contacts as 500."""
        company = self.env.company
        Stage = self.env["loyalty.mlm.stage"]
        # Everyone else in place, and the caches a bulk move reads warm.
        self.prospects(25, "Warm-up")
        Stage._mlm_refresh_all_stages(company)
        for count in (50, 500):
            self.prospects(count, prefix=f"Q{count}")
            self.env.flush_all()
            self.env.invalidate_all()
            # The customers (5), the company's thresholds, the stages and the
            # user's time zone (as an unchanged night), one statement for the
            # stages and their history, and the treatment job asked to run
            # (3: a bulk move leaves the stage-entry treatments to it).
            with self.assertQueryCount(13):
                self.assertEqual(Stage._mlm_refresh_all_stages(company), count)

    def test_nightly_step_reads_customers_a_chunk_at_a_time(self):
        """The nightly step reads, decides and moves a chunk of customers at
        a time (memory bounded by the chunk): chunks of 7 move the same 30
        customers to the same stages as one chunk, with one more read per
        chunk."""
        company = self.env.company
        Stage = self.env["loyalty.mlm.stage"]
        prospects = self.new_prospects(30)
        winback = self.env.ref("loyalty_mlm.stage_winback")
        prospects[:10].write({"mlm_stage_id": winback.id})
        self.env.flush_all()
        self.env.invalidate_all()
        with patch.object(stage_model, "STAGE_READ_CHUNK", 7):
            self.assertEqual(Stage._mlm_refresh_all_stages(company), 30)
        self.assertEqual(set(prospects.mapped("mlm_stage_id.code")), {"acquisition"})
        self.assertEqual(Stage._mlm_refresh_all_stages(company), 0)

    def test_bulk_moves_are_written_in_batches(self):
        """One statement per batch of moves, whatever the target stages:
        memory and statement size are bounded by the batch."""
        company = self.env.company
        Stage = self.env["loyalty.mlm.stage"]
        prospects = self.new_prospects(50)
        winback = self.env.ref("loyalty_mlm.stage_winback")
        prospects[:25].write({"mlm_stage_id": winback.id})  # won back: 2 groups
        self.env.flush_all()
        self.env.invalidate_all()
        with patch.object(stage_model, "MOVE_BATCH_SIZE", 20):
            with self.assertQueryCount(15):  # 2 more batches
                self.assertEqual(Stage._mlm_refresh_all_stages(company), 50)
        self.assertEqual(
            self.env["loyalty.mlm.stage.history"].search_count(
                [("partner_id", "in", prospects.ids)]
            ),
            50,
        )

    def test_a_long_stage_step_is_finished_by_its_job(self):
        """A stage step longer than the score job's budget (a first
        assignment on a large database) stops after a chunk of customers and
        the stage job finishes it, a chunk per call when time is short: the
        same stages as in one go, each contact moved once."""
        company = self.env.company
        Stage = self.env["loyalty.mlm.stage"]
        prospects = self.new_prospects(30)
        cron = self.env.ref("loyalty_mlm.ir_cron_stages")
        triggers = self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)])
        with patch.object(stage_model, "STAGE_READ_CHUNK", 10):
            # The score job's last call, its time spent: one chunk.
            self.env["loyalty.mlm.partner.score"]._cron_refresh_scores(
                companies=company, time_budget=0
            )
            self.assertLess(len(prospects.filtered("mlm_stage_id")), 30)
            self.assertTrue(
                self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)])
                - triggers
            )
            # The stage job: a chunk per call, until every contact is done.
            calls = 0
            while calls < 50:
                calls += 1
                Stage._cron_refresh_stages(time_budget=0)
                self.env.invalidate_all()
                if len(prospects.filtered("mlm_stage_id")) == len(prospects):
                    break
        self.assertGreater(calls, 1)
        self.assertEqual(set(prospects.mapped("mlm_stage_code")), {"acquisition"})
        # Shared prospects: every company's (each moved once in each).
        for each in self.env["res.company"].search([]):
            self.assertEqual(
                self.env["loyalty.mlm.stage.history"].search_count(
                    [("partner_id", "in", prospects.ids), ("company_id", "=", each.id)]
                ),
                30,
            )
        # Its nightly run (a safety net, its own transaction) finds nothing:
        # it starts nothing.
        self.env.cr.precommit.data.pop("loyalty_mlm.treatments_triggered", None)
        treatments = self.env.ref("loyalty_mlm.ir_cron_treatments")
        Trigger = self.env["ir.cron.trigger"]
        before = Trigger.search_count([("cron_id", "=", treatments.id)])
        self.assertEqual(Stage._cron_refresh_stages(), 0)
        self.assertEqual(
            Trigger.search_count([("cron_id", "=", treatments.id)]), before
        )

    def test_bulk_move_history_and_fields(self):
        """Each contact gets his history row (from, to, date, reason,
        automatic, by whom, company), his stage and stage date in the company
        only; what the ORM had cached about him is read again."""
        with self.clock(*CLOCKS[1]):
            self.check_bulk_move()

    def check_bulk_move(self):
        company = self.env.company
        other = self.env["res.company"].create({"name": "Other Shop"})
        Stage = self.env["loyalty.mlm.stage"]
        Stage._mlm_refresh_all_stages(company)
        winback = self.env.ref("loyalty_mlm.stage_winback")
        growth = self.env.ref("loyalty_mlm.stage_growth")
        acquisition = self.env.ref("loyalty_mlm.stage_acquisition")
        new, lapsed = self.prospects(30, "New"), self.prospects(30, "Lapsed")
        lapsed.write({"mlm_stage_id": winback.id})
        # Another company's stage of the same contacts stays as it is.
        lapsed.with_company(other).write({"mlm_stage_id": growth.id})
        partners = new | lapsed
        # Cached before the move: the stage, its code, the history.
        self.assertEqual(new.mapped("mlm_stage_code"), [False] * 30)
        self.assertEqual(lapsed.mapped("mlm_stage_code"), ["winback"] * 30)
        self.assertEqual(len(partners.mlm_stage_history_ids), 0)
        now = fields.Datetime.now()
        self.assertEqual(Stage._mlm_refresh_all_stages(company), 60)
        self.assertEqual(partners.mapped("mlm_stage_code"), ["acquisition"] * 60)
        self.assertEqual(set(partners.mapped("mlm_stage_date")), {now})
        self.assertEqual(lapsed.with_company(other).mapped("mlm_stage_id"), growth)
        for moved, from_stage, reason in (
            (new, False, "no_order"),
            (lapsed, winback, "won_back"),
        ):
            history = moved.mlm_stage_history_ids
            self.assertEqual(history.partner_id, moved)
            self.assertEqual(
                {
                    (
                        move.from_stage_id or False,
                        move.to_stage_id,
                        move.date,
                        move.reason_code,
                        move.reason,
                        move.automatic,
                        move.user_id,
                        move.company_id,
                    )
                    for move in history
                },
                {
                    (
                        from_stage,
                        acquisition,
                        now,
                        reason,
                        "",
                        True,
                        self.env.user,
                        company,
                    )
                },
            )
        self.assertEqual(Stage._mlm_refresh_all_stages(company), 0)

    def test_upgrade_drops_the_history_log_columns(self):
        """A move says when and by whom in its date and user: the stage and
        tier histories keep no log columns (two foreign-key checks fewer per
        row, issue #22); the 18.0.1.6.0 upgrade drops the old ones."""
        cr = self.env.cr
        tables = ("loyalty_mlm_stage_history", "loyalty_mlm_tier_history")
        for table in tables:
            self.assertFalse(column_exists(cr, table, "create_uid"))
            cr.execute(
                f"ALTER TABLE {table} ADD COLUMN create_uid int4"
                " REFERENCES res_users(id), ADD COLUMN write_date timestamp"
            )
        post_migrate("18.0.1.6.0").migrate(cr, "18.0.1.5.0")
        for table in tables:
            self.assertFalse(column_exists(cr, table, "create_uid"))
            self.assertFalse(column_exists(cr, table, "write_date"))

    def test_first_assignment_is_dated_by_the_order_history(self):
        """On install (backfill), a move is dated by the last order it stands
        for (winback: the day the lapse began), a contact without orders by
        the day of the run."""
        company = self.env.company
        Stage = self.env["loyalty.mlm.stage"]
        with self.clock(*CLOCKS[1]):
            regular = self.customer("Regular", (200, 100, 30))
            lapsed = self.customer("Lapsed", (300,))
            prospect = self.env["res.partner"].create(
                {"name": "Prospect", "customer_rank": 1}
            )
            now = fields.Datetime.now()
            today = fields.Date.context_today(self.env.user)
            lapse = company.mlm_lapse_days
            Stage.with_context(mlm_stage_backfill=True)._mlm_refresh_all_stages(company)
            for partner, code, day in (
                (regular, "growth", today - timedelta(days=30)),
                (lapsed, "winback", today - timedelta(days=300 - lapse - 1)),
            ):
                with self.subTest(partner.name):
                    when = fields.Datetime.to_datetime(day)
                    self.assertEqual(partner.mlm_stage_code, code)
                    self.assertEqual(partner.mlm_stage_date, when)
                    self.assertEqual(self.last_move(partner).date, when)
            self.assertEqual(prospect.mlm_stage_date, now)
            self.assertEqual(self.last_move(prospect).date, now)


@tagged("post_install", "-at_install")
class TestStagePos(LoyaltyMlmPosCommon):
    def test_first_paid_pos_order_moves_to_onboarding(self):
        self.sync([(self.product, 1)])
        self.assertEqual(self.member.mlm_stage_id.code, "onboarding")


@tagged("post_install", "-at_install")
class TestStageSurfaces(StageCase, LoyaltyMlmCommon):
    def test_stage_on_orders_and_leads(self):
        partner = self.customer("Lapsed lead", (400, 200))
        self.refresh(partner)
        lead = self.env["crm.lead"].create(
            {"name": "Come back?", "partner_id": partner.id, "type": "opportunity"}
        )
        order = self.make_order(partner=partner, amount=10.0)
        self.assertEqual(order.mlm_stage_id.code, "winback")
        self.assertEqual(lead.mlm_stage_id.code, "winback")
        found = self.env["crm.lead"].search([("mlm_stage_id.code", "=", "winback")])
        self.assertIn(lead, found)
