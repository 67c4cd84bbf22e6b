from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged
from odoo.tools import format_date

from .test_treatments import OwnRulesCase


@tagged("post_install", "-at_install")
class TestTreatmentBatch(OwnRulesCase):
    """The job treats the due customers of a rule together: one claim
    statement, one create or write per action for the whole batch."""

    def test_batch_outcomes(self):
        """A dozen customers in one batch: each gets exactly his own points,
        coupon, tags, activity and mail, or the line saying why not; the held
        out ones get nothing but their control log."""
        rule = self.rule(
            mail_template_id=self.template.id,
            activity_type_id=self.env.ref("mail.mail_activity_data_call").id,
            activity_summary="Batch call",
            activity_deadline_days=2,
            bonus_points=40,
            coupon_program_id=self.winback.id,
            coupon_validity_days=15,
            tag_ids=[(6, 0, self.tag.ids)],
            mlm_control_share=30,
        )
        # The hold-out is a stable hash of the contact's id (ids differ from
        # one database to another): customers are added until both groups
        # are there, and the two special ones are among the treated.
        everyone = []

        def customer(name, **vals):
            for attempt in range(50):
                partner = self.customer(f"{name} {attempt}", "growth", **vals)
                everyone.append(partner)
                if not rule._mlm_in_control(partner):
                    return partner
            raise AssertionError("no customer outside the control group")

        while len(everyone) < 8 or not any(map(rule._mlm_in_control, everyone)):
            customer("Batch Client")
        no_card = customer("Batch No Card", member=False)
        no_mail = customer("Batch No Mail", user_id=False)
        no_mail.email = False
        held = [p for p in everyone if rule._mlm_in_control(p)]
        treated = [p for p in everyone if p not in held]
        with patch.object(
            type(self.Treatment), "_mlm_fire", side_effect=AssertionError("no")
        ):
            # One batch: the per-customer path is never taken.
            self.assertEqual(self.run_job(), len(everyone))
        today = fields.Date.context_today(rule)
        for partner in held:
            log = self.logs(partner)
            self.assertEqual(
                (log.outcome, log.summary_lines), ("control", [["control", {}]])
            )
            self.assertFalse(self.mails(partner) or log.coupon_id or log.activity_id)
            self.assertFalse(self.ledger(partner_id=partner.id, kind="treatment"))
            self.assertFalse(partner.category_id)
        codes = set()
        for partner in treated:
            log = self.logs(partner)
            self.assertEqual(
                (log.outcome, log.treatment_id, log.stage_id),
                ("done", rule, self.stages["growth"]),
            )
            coupon = log.coupon_id
            self.assertEqual(
                (coupon.partner_id, coupon.program_id, coupon.expiration_date),
                (partner, self.winback, today + timedelta(days=15)),
            )
            codes.add(coupon.code)
            self.assertEqual(partner.category_id, self.tag)
            lines = [f"Coupon {coupon.code} issued", "Tags added: Treated"]
            if partner == no_card:
                lines.insert(0, "No points: not a member")
                self.assertFalse(self.ledger(partner_id=partner.id, kind="treatment"))
            else:
                lines.insert(0, "40.00 bonus points credited")
                entry = self.ledger(partner_id=partner.id, kind="treatment")
                self.assertEqual(
                    (entry.points, entry.res_model, entry.res_id, entry.reason),
                    (40.0, log._name, log.id, rule.name),
                )
                self.assertEqual(self.card_of(partner).points, 40.0)
            if partner == no_mail:
                lines += ["No activity: no salesperson", "No mail: no email address"]
                self.assertFalse(log.activity_id or log.mail_id)
            else:
                activity = log.activity_id
                self.assertEqual(
                    (
                        activity.res_id,
                        activity.user_id,
                        activity.summary,
                        activity.date_deadline,
                    ),
                    (partner.id, self.salesman, "Batch call", today + timedelta(2)),
                )
                mail = self.mails(partner)
                self.assertEqual(log.mail_id, mail)
                # His own coupon code (and points) in his mail, no one else's.
                self.assertIn(coupon.code, mail.body_html)
                self.assertEqual(
                    [code for code in codes if code in mail.body_html], [coupon.code]
                )
                lines += [
                    f"Activity for {self.salesman.name} due "
                    f"{format_date(self.env, today + timedelta(days=2))}",
                    "Mail sent: Members: Offer of the moment",
                ]
            self.assertEqual(log.summary.splitlines(), lines)
        self.assertEqual(len(codes), len(treated))
        self.assertLedgerInvariant()
        # A rerun finds nothing due, and nothing is posted twice.
        self.assertEqual(self.run_job(), 0)
        self.assertEqual(
            self.env["loyalty.mlm.ledger"].search_count(
                [
                    ("partner_id", "in", [p.id for p in everyone]),
                    ("kind", "=", "treatment"),
                ]
            ),
            len(treated) - 1,
        )

    def test_claimed_occasions_are_skipped(self):
        """Customers another run claimed meanwhile are left out of the batch:
        no second log, mail or points for them; the others are treated."""
        rule = self.rule(mail_template_id=self.template.id, bonus_points=10)
        partners = [self.customer(f"Raced {i}", "growth") for i in range(4)]
        plan = dict(rule._mlm_plan(self.company))
        due = plan[rule]
        self.assertEqual(set(due), {p.id for p in partners})
        first = partners[0]
        self.assertTrue(rule._mlm_fire(self.company, first.id, due[first.id]))
        self.assertEqual(rule._mlm_fire_batch(self.company, due), (4, 0))
        for partner in partners:
            self.assertEqual(len(self.logs(partner)), 1)
            self.assertEqual(len(self.mails(partner)), 1)
            self.assertEqual(self.card_of(partner).points, 10.0)
        self.assertLedgerInvariant()

    def test_failing_batch_falls_back_per_customer(self):
        """An action failing for one customer sinks the batch's savepoint
        only: the batch is redone customer by customer, the others are
        treated, the failing one is left whole for the next run."""
        self.rule(coupon_program_id=self.winback.id, bonus_points=20)
        partners = [self.customer(f"Fallback {i}", "growth") for i in range(4)]
        broken = partners[2]
        Treatment = type(self.Treatment)
        issue = Treatment._mlm_issue_coupons

        def failing(rule, customers):
            if broken in customers:
                raise RuntimeError("coupon sequence exhausted")
            return issue(rule, customers)

        with (
            patch.object(Treatment, "_mlm_issue_coupons", failing),
            self.assertLogs(
                "odoo.addons.loyalty_mlm.models.loyalty_mlm_treatment", "WARNING"
            ) as logged,
        ):
            self.assertEqual(self.run_job(), 3)
        self.assertEqual(
            [record.levelname for record in logged.records], ["WARNING", "ERROR"]
        )
        self.assertFalse(self.logs(broken))
        self.assertEqual(self.card_of(broken).points, 0.0)
        for partner in partners:
            if partner != broken:
                self.assertEqual(len(self.logs(partner).coupon_id), 1)
                self.assertEqual(self.card_of(partner).points, 20.0)
        self.assertLedgerInvariant()
        self.assertEqual(self.run_job(), 1)
        self.assertEqual(len(self.logs(broken).coupon_id), 1)
        self.assertEqual(self.card_of(broken).points, 20.0)
        self.assertLedgerInvariant()

    def test_queries_do_not_grow_with_the_batch(self):
        """Claiming and executing a batch costs the same number of queries
        for 5 customers as for 20: points, coupons and tags; points, tags and
        mails (the same mail values: one batch rendering)."""
        with_coupon = self.rule(
            name="Coupon",
            coupon_program_id=self.winback.id,
            tag_ids=[(6, 0, self.tag.ids)],
        )
        with_mail = self.rule(
            name="Mail",
            stage_ids=[(6, 0, self.stages["retention"].ids)],
            mail_template_id=self.template.id,
            tag_ids=[(6, 0, self.tag.ids)],
        )
        # Claim, points, coupons (their history), tags, logs; the same with
        # one batch rendering of the mail instead of the coupons.
        expected = {"Coupon": 30, "Mail": 32}
        counts = {}
        # The first batch warms the registry's caches (templates, models).
        for size in (3, 5, 20):
            for rule, stage in ((with_coupon, "growth"), (with_mail, "retention")):
                customers = [
                    self.customer(f"Count {rule.name} {size} {i}", stage)
                    for i in range(size)
                ]
                # The customers' referral codes exist already (a member's
                # first mail makes his), as after the first night.
                self.env["loyalty.mlm.referral"]._mlm_ensure_referral_codes(
                    self.env["res.partner"].union(*customers)
                )
                due = dict(rule._mlm_plan(self.company))[rule]
                self.assertEqual(len(due), size)
                self.env.flush_all()
                self.env.invalidate_all()
                before = self.env.cr.sql_log_count
                if size == 3:
                    self.assertEqual(rule._mlm_fire_batch(self.company, due), (3, 0))
                    continue
                with self.assertQueryCount(expected[rule.name]):
                    self.assertEqual(rule._mlm_fire_batch(self.company, due), (size, 0))
                counts[rule.name, size] = self.env.cr.sql_log_count - before
        self.assertEqual(counts["Coupon", 5], counts["Coupon", 20], counts)
        self.assertEqual(counts["Mail", 5], counts["Mail", 20], counts)
        self.assertEqual(len(self.logs(rule=with_coupon).coupon_id), 28)
        self.assertEqual(len(self.logs(rule=with_mail).mail_id), 28)
        self.assertLedgerInvariant()

    def test_one_plan_for_the_batches_of_a_call(self):
        """A call plans the company once and treats batch after batch of
        that plan within its time budget; without budget, one batch."""
        self.rule()
        partners = [self.customer(f"Budget {i}", "growth") for i in range(5)]
        Treatment = type(self.Treatment)
        plan, fire = Treatment._mlm_plan, Treatment._mlm_fire_batch
        calls = {"plan": 0, "batches": []}

        def planning(model, company, *args, **kwargs):
            if company == self.company:
                calls["plan"] += 1
            return plan(model, company, *args, **kwargs)

        def firing(rule, company, due):
            calls["batches"].append(sorted(due))
            return fire(rule, company, due)

        with (
            patch.object(Treatment, "_mlm_plan", planning),
            patch.object(Treatment, "_mlm_fire_batch", firing),
        ):
            self.assertEqual(self.run_job(batch_size=2, time_budget=0), 2)
            self.assertEqual(self.run_job(batch_size=2), 3)
        ids = sorted(p.id for p in partners)
        self.assertEqual(calls["plan"], 2)
        self.assertEqual(calls["batches"], [ids[:2], ids[2:4], ids[4:]])
        self.assertEqual([len(self.logs(p)) for p in partners], [1] * 5)
        self.assertLedgerInvariant()
