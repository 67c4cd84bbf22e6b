from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import format_date

from ..hooks import post_init_hook
from .common import LATE_EVENING, MORNING, LoyaltyMlmCommon


class TreatmentCase(LoyaltyMlmCommon):
    """Customers put straight into a stage with stored scores (as the nightly
    refresh leaves them), and the treatment job run as ir.cron runs it.

    ==========  =====================================================
    salesman    salesperson of the customers (gets the activities)
    winback     the shipped "Winback coupon" programme
    ==========  =====================================================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Treatment = cls.env["loyalty.mlm.treatment"]
        cls.stages = cls.env["loyalty.mlm.stage"]._by_code()
        cls.salesman = new_test_user(
            cls.env, login="mlm_treat_sales", groups="sales_team.group_sale_salesman"
        )
        cls.winback = cls.env.ref("loyalty_mlm.loyalty_program_winback_coupon")
        cls.tag = cls.env["res.partner.category"].create({"name": "Treated"})
        # No control group here (test_control_groups.py tests it): every
        # matched customer is treated.
        cls.Treatment.with_context(active_test=False).search([]).mlm_control_share = 0
        # Only the customers a test builds have a stage (not the demo ones).
        cls.env["res.partner"].search([("mlm_stage_id", "!=", False)]).write(
            {"mlm_stage_id": False}
        )

    def setUp(self):
        super().setUp()
        # The job is triggered once per transaction: tests share one.
        self.env.cr.precommit.data.pop("loyalty_mlm.treatments_triggered", None)

    def customer(
        self, name, stage, segment=None, quadrant=None, churn=0, member=True, **vals
    ):
        """A customer in `stage` (a code) with stored scores; the stage move
        leaves its treatments to the job (as a bulk nightly move does)."""
        partner = self.env["res.partner"].create(
            {
                "name": name,
                "email": f"{name.lower().replace(' ', '.')}@example.com",
                "customer_rank": 1,
                "user_id": self.salesman.id,
                **vals,
            }
        )
        if member:
            partner._mlm_enroll(self.company)
        if segment or quadrant or churn:
            self.env["loyalty.mlm.partner.score"].create(
                {
                    "partner_id": partner.id,
                    "company_id": self.company.id,
                    "score_date": fields.Date.today(),
                    "usage_segment": segment or False,
                    "quadrant": quadrant or False,
                    "churn_risk": churn,
                }
            )
            self.env.flush_all()
            self.env["loyalty.mlm.partner.score"]._mlm_scores_invalidate()
        self.stages[stage].with_context(mlm_defer_treatments=True)._mlm_move(
            partner, "manual"
        )
        return partner

    def run_job(self, **kwargs):
        return self.Treatment._cron_mlm_treatments(**kwargs)

    def logs(self, partner=None, rule=None):
        # Scoped to the given customers: the demo data has treatment logs too.
        domain = []
        if partner:
            domain.append(("partner_id", "in", partner.ids))
        if rule:
            domain.append(("treatment_id", "=", rule.id))
        return self.env["loyalty.mlm.treatment.log"].search(domain, order="id")

    def mails(self, partner):
        return self.env["mail.mail"].search(
            [
                ("model", "=", "res.partner"),
                ("res_id", "=", partner.id),
                ("recipient_ids", "in", partner.ids),
            ],
            order="id",
        )


class OwnRulesCase(TreatmentCase):
    """The shipped rules are archived: each test builds its own."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Treatment.search([]).active = False
        cls.template = cls.env.ref("loyalty_mlm.mail_template_mlm_treatment_offer")

    def rule(self, **vals):
        return self.Treatment.create(
            {
                "name": "Test rule",
                "stage_ids": [(6, 0, self.stages["growth"].ids)],
                "trigger": "periodic",
                "cooldown_days": 10,
                "bonus_points": 25,
                "mlm_control_share": 0,
                **vals,
            }
        )


@tagged("post_install", "-at_install")
class TestTreatmentActions(OwnRulesCase):
    def test_each_action_type(self):
        """Late in the UTC evening: the user's day is already tomorrow."""
        with self.clock(*LATE_EVENING):
            self.check_each_action_type()

    def test_each_action_type_morning(self):
        with self.clock(*MORNING):
            self.check_each_action_type()

    def check_each_action_type(self):
        rule = self.rule(
            mail_template_id=self.template.id,
            activity_type_id=self.env.ref("mail.mail_activity_data_call").id,
            activity_summary="Personal call",
            activity_deadline_days=3,
            bonus_points=50,
            coupon_program_id=self.winback.id,
            coupon_validity_days=60,
            tag_ids=[(6, 0, self.tag.ids)],
        )
        partner = self.customer("Anna Treated", "growth")
        self.assertEqual(self.run_job(), 1)
        # A periodic occasion is the run's UTC day (a technical key); the
        # coupon's validity and the activity's deadline count from the
        # user's date, the one they are shown in.
        utc_day = fields.Date.today()
        today = fields.Date.context_today(rule)
        log = self.logs(partner)
        self.assertEqual(len(log), 1)
        self.assertEqual(
            (log.treatment_id, log.stage_id, log.trigger, log.occasion),
            (
                rule,
                self.stages["growth"],
                "periodic",
                f"{self.company.id}:day:{utc_day.isoformat()}",
            ),
        )
        # Points: a ledger entry of kind treatment whose source is the log.
        entry = self.ledger(partner_id=partner.id, kind="treatment")
        self.assertEqual(
            (entry.points, entry.res_model, entry.res_id), (50.0, log._name, log.id)
        )
        self.assertEqual(log.ledger_ids, entry)
        self.assertEqual(self.card_of(partner).points, 50.0)
        # Coupon: a card of the programme for the customer, valid 60 days.
        coupon = log.coupon_id
        self.assertEqual(
            (
                coupon.program_id,
                coupon.partner_id,
                coupon.points,
                coupon.expiration_date,
            ),
            (self.winback, partner, 1.0, today + timedelta(days=60)),
        )
        # Tag, activity for the salesperson, mail with the coupon code.
        self.assertEqual(partner.category_id, self.tag)
        activity = log.activity_id
        self.assertEqual(
            (
                activity.res_id,
                activity.user_id,
                activity.summary,
                activity.date_deadline,
            ),
            (partner.id, self.salesman, "Personal call", today + timedelta(days=3)),
        )
        self.assertEqual(partner.activity_ids, activity)
        mail = self.mails(partner)
        self.assertEqual(log.mail_id, mail)
        self.assertEqual(mail.subject, "An offer for your next order")
        self.assertIn(coupon.code, mail.body_html)
        self.assertEqual(
            log.summary.splitlines(),
            [
                "50.00 bonus points credited",
                f"Coupon {coupon.code} issued",
                "Tags added: Treated",
                f"Activity for {self.salesman.name} due "
                f"{format_date(self.env, today + timedelta(days=3))}",
                "Mail sent: Members: Offer of the moment",
            ],
        )
        self.assertLedgerInvariant()

    def test_missing_means_are_noted_not_failed(self):
        """No card, no salesperson, no email: the rest is done and the log says
        what could not be."""
        self.rule(
            mail_template_id=self.template.id,
            activity_type_id=self.env.ref("mail.mail_activity_data_call").id,
            bonus_points=10,
        )
        partner = self.customer("No Means", "growth", member=False, user_id=False)
        partner.email = False
        self.run_job()
        self.assertEqual(
            self.logs(partner).summary.splitlines(),
            [
                "No points: not a member",
                "No activity: no salesperson",
                "No mail: no email address",
            ],
        )

    def test_outcomes_in_the_readers_language(self):
        """What was done is stored as codes and values: the stored summary is
        English, a Dutch reader reads Dutch lines with Dutch dates, and logs
        of before the codes get theirs back (the upgrade step)."""
        self.env["res.lang"]._activate_lang("nl_NL")
        self.env["ir.module.module"]._load_module_terms(
            ["loyalty_mlm"], ["nl_NL"], overwrite=True
        )
        self.rule(
            mail_template_id=self.template.id,
            activity_type_id=self.env.ref("mail.mail_activity_data_call").id,
            activity_deadline_days=3,
            bonus_points=50,
        )
        partner = self.customer("Dutch Reader", "growth")
        # Triggered by a Dutch user: nothing is frozen in his language.
        self.Treatment.with_context(lang="nl_NL")._cron_mlm_treatments()
        log = self.logs(partner)
        deadline = log.activity_id.date_deadline
        self.assertEqual(
            [code for code, _values in log.summary_lines],
            ["points", "activity", "mail"],
        )
        self.assertEqual(log.summary.splitlines()[0], "50.00 bonus points credited")
        template_nl = self.template.with_context(lang="nl_NL").name
        self.assertEqual(
            log.with_context(lang="nl_NL").summary_display.splitlines(),
            [
                "50,00 bonuspunten bijgeschreven",
                f"Activiteit voor {self.salesman.name}, uiterlijk "
                f"{deadline.strftime('%d-%m-%Y')}",
                f"Mail verstuurd: {template_nl}",
            ],
        )
        # A log of before the codes, written by a Dutch user.
        Log = self.env["loyalty.mlm.treatment.log"]
        old_text = (
            "50 bonuspunten bijgeschreven\n"
            f"Activiteit voor {self.salesman.name}, uiterlijk 05-01-2026\n"
            "Mail verstuurd: Leden: Aanbod"
        )
        log.write({"summary_lines": False, "summary": old_text})
        self.assertEqual(log.summary_display, old_text)
        Log._mlm_backfill_summary_lines()
        self.assertEqual(
            log.with_context(lang="en_US").summary_display.splitlines(),
            [
                "50 bonus points credited",
                f"Activity for {self.salesman.name} due 01/05/2026",
                "Mail sent: Leden: Aanbod",
            ],
        )
        # A line nothing matches: the log keeps its text.
        log.write({"summary_lines": False, "summary": "Typed by hand"})
        Log._mlm_backfill_summary_lines()
        self.assertEqual(
            (log.summary_lines, log.summary_display),
            (False, "Typed by hand"),
        )

    def test_conditions(self):
        rule = self.rule(
            usage_segment="heavy",
            quadrant="true_friend",
            segment_match="any",
            churn_risk_min=40,
            churn_risk_max=80,
            stage_days_min=0,
        )
        heavy = self.customer("Heavy", "growth", "heavy", "barnacle", churn=50)
        friend = self.customer("Friend", "growth", "medium", "true_friend", churn=40)
        both_low_risk = self.customer(
            "Calm", "growth", "heavy", "true_friend", churn=39
        )
        other = self.customer("Other", "growth", "medium", "barnacle", churn=50)
        wrong_stage = self.customer("Elsewhere", "retention", "heavy", churn=50)
        matched = self.Treatment._mlm_rules(self.company)._mlm_match(self.company)
        self.assertEqual(matched[rule], {heavy.id, friend.id})
        rule.segment_match = "all"
        matched = self.Treatment._mlm_rules(self.company)._mlm_match(self.company)
        self.assertEqual(matched[rule], set())
        rule.write({"segment_match": "any", "churn_risk_min": 0, "stage_days_min": 1})
        matched = self.Treatment._mlm_rules(self.company)._mlm_match(self.company)
        self.assertEqual(matched[rule], set())
        self.assertTrue(other and wrong_stage and both_low_risk)

    def test_first_match_wins_and_empty_rule_stops(self):
        nothing = self.rule(name="Strangers", quadrant="stranger", bonus_points=0)
        nothing.sequence = 1
        give = self.rule(name="Everyone in growth")
        stranger = self.customer("Stranger", "growth", "low", "stranger")
        friend = self.customer("Friend", "growth", "low", "true_friend")
        self.run_job()
        self.assertEqual(self.logs(stranger), self.env["loyalty.mlm.treatment.log"])
        self.assertEqual(self.logs(friend).treatment_id, give)
        self.assertEqual(stranger.mlm_treatment_id, nothing)
        self.assertEqual(stranger.mlm_next_action_status, "No action on purpose")

    def test_validation(self):
        with self.assertRaises(ValidationError):
            self.rule(churn_risk_min=80, churn_risk_max=20)
        with self.assertRaises(ValidationError):
            self.rule(trigger="periodic", cooldown_days=0)
        with self.assertRaises(ValidationError):
            self.rule(bonus_points=-5)
        with self.assertRaises(ValidationError):
            self.rule(coupon_program_id=self.program.id)  # the member programme

    def test_access(self):
        rule = self.rule()
        partner = self.customer("Seen", "growth")
        self.run_job()
        with self.assertRaises(AccessError):
            self.Treatment.with_user(self.user_loyalty).create({"name": "Mine"})
        with self.assertRaises(AccessError):
            rule.with_user(self.user_loyalty).write({"bonus_points": 1000})
        logs = self.env["loyalty.mlm.treatment.log"].with_user(self.user_loyalty)
        self.assertEqual(
            logs.search([("partner_id", "=", partner.id)]).treatment_id, rule
        )
        Treatment = self.Treatment.with_user(self.user_manager)
        Treatment.create({"name": "Managers configure", "trigger": "stage_entry"})


@tagged("post_install", "-at_install")
class TestTreatmentTriggers(OwnRulesCase):
    def test_stage_entry_on_a_real_stage_move(self):
        """A customer lapses: the stage refresh moves him to winback and his
        stage-entry treatment runs at once, once."""
        rule = self.rule(
            stage_ids=[(6, 0, self.stages["winback"].ids)],
            trigger="stage_entry",
            cooldown_days=0,
            coupon_program_id=self.winback.id,
        )
        partner = self.env["res.partner"].create({"name": "Lapsed", "customer_rank": 1})
        partner._mlm_enroll(self.company)
        order = self.make_order(partner=partner, amount=50.0)
        order.action_confirm()
        order.date_order = fields.Datetime.now() - timedelta(days=400)
        self.env["loyalty.mlm.stage"]._mlm_refresh_stages(partner, self.company)
        self.assertEqual(partner.mlm_stage_id, self.stages["winback"])
        move = partner.mlm_stage_history_ids.sorted("id")[-1:]
        log = self.logs(partner)
        self.assertEqual(
            (log.treatment_id, log.occasion),
            (rule, f"{self.company.id}:stage:{move.id}"),
        )
        self.assertEqual(log.coupon_id.program_id, self.winback)
        self.assertEqual(
            partner.mlm_next_action_status,
            f"Done on {format_date(self.env, log.date)}",
        )
        self.assertEqual(self.run_job(), 0)  # nothing left to do
        # Out of winback and back in: a new entry, a new treatment.
        self.stages["growth"]._mlm_move(partner, "manual")
        self.stages["winback"]._mlm_move(partner, "manual")
        self.assertEqual(len(self.logs(partner)), 2)
        # A cooldown keeps the next entries quiet.
        rule.cooldown_days = 30
        self.stages["growth"]._mlm_move(partner, "manual")
        self.stages["winback"]._mlm_move(partner, "manual")
        self.run_job()
        self.assertEqual(len(self.logs(partner)), 2)
        self.assertLedgerInvariant()

    def test_nightly_refresh_chains_the_job(self):
        cron = self.env.ref("loyalty_mlm.ir_cron_treatments")
        Trigger = self.env["ir.cron.trigger"]
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        while self.env["loyalty.mlm.partner.score"]._cron_refresh_scores():
            pass  # the stage step, then the trigger, come with the last call
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before + 1)

    def test_executed_rule_is_archived_not_deleted(self):
        rule = self.rule()
        self.customer("Kept", "growth")
        self.run_job()
        with self.assertRaises(UserError):
            rule.unlink()
        self.rule(name="Never ran").unlink()

    def test_bulk_move_is_left_to_the_job(self):
        self.rule(trigger="stage_entry", cooldown_days=0)
        partners = self.env["res.partner"].create(
            [{"name": f"Bulk {i}", "customer_rank": 1} for i in range(21)]
        )
        partners._mlm_enroll(self.company)
        cron = self.env.ref("loyalty_mlm.ir_cron_treatments")
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        self.stages["growth"]._mlm_move(partners, "manual")
        self.assertEqual(len(self.logs(partners)), 0)
        self.assertEqual(
            self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]),
            triggers + 1,
        )
        self.assertEqual(self.run_job(), 21)
        self.assertEqual(len(self.logs(partners)), 21)
        self.assertLedgerInvariant()

    def test_old_entries_are_not_replayed(self):
        """A rule created after a customer's stage entry waits for his next one."""
        partner = self.customer("Long ago", "growth")
        rule = self.rule(trigger="stage_entry", cooldown_days=0)
        rule.date_start = fields.Datetime.now() + timedelta(minutes=5)
        self.assertEqual(self.run_job(), 0)
        self.assertEqual(
            partner.mlm_next_action_status, "On the next entry into the stage"
        )

    def test_periodic_cooldown(self):
        self.rule(cooldown_days=10)
        partner = self.customer("Regular", "growth")
        start = fields.Datetime.now()
        self.assertEqual(self.run_job(), 1)
        self.assertEqual(self.run_job(), 0)  # the same day: nothing
        with freeze_time(start + timedelta(days=9)):
            self.assertEqual(self.run_job(), 0)  # within the cooldown
            self.assertEqual(
                partner.mlm_next_action_status.split(", ")[0][:8], "Done on "
            )
        with freeze_time(start + timedelta(days=10, seconds=1)):
            self.assertEqual(self.run_job(), 1)
            self.assertEqual(self.run_job(), 0)
        logs = self.logs(partner)
        self.assertEqual(len(logs), 2)
        self.assertEqual(len(set(logs.mapped("occasion"))), 2)
        self.assertEqual(self.card_of(partner).points, 50.0)
        self.assertLedgerInvariant()


@tagged("post_install", "-at_install")
class TestTreatmentRobustness(OwnRulesCase):
    def test_rerun_never_duplicates(self):
        rule = self.rule(
            mail_template_id=self.template.id, coupon_program_id=self.winback.id
        )
        partners = [self.customer(f"Twice {i}", "growth") for i in range(3)]
        self.assertEqual(self.run_job(), 3)
        self.assertEqual(self.run_job(), 0)
        # Even a run that planned before another claimed: the claim is taken.
        today = fields.Date.today().isoformat()
        for partner in partners:
            self.assertTrue(
                rule._mlm_fire(
                    self.company, partner.id, f"{self.company.id}:day:{today}"
                )
            )
            self.assertEqual(len(self.logs(partner)), 1)
            self.assertEqual(len(self.mails(partner)), 1)
            self.assertEqual(self.card_of(partner).points, 25.0)
        self.assertEqual(
            self.env["loyalty.card"].search_count(
                [
                    ("program_id", "=", self.winback.id),
                    ("partner_id", "in", [p.id for p in partners]),
                ]
            ),
            3,
        )
        self.assertLedgerInvariant()

    def test_crash_midway_then_rerun(self):
        """One customer's actions fail after his points were posted: his claim
        and points roll back with them, the others are treated, and the next
        run treats him once."""
        self.rule(mail_template_id=self.template.id, bonus_points=30)
        first, broken, last = (
            self.customer(name, "growth") for name in ("First", "Broken", "Last")
        )
        Treatment = type(self.Treatment)
        execute = Treatment._mlm_execute_batch

        def failing(rule, company, claimed):
            execute(rule, company, claimed)
            if broken in [partner for partner, _log in claimed]:
                raise RuntimeError("mail server exploded")

        # The batch fails as a whole, then each customer is tried alone.
        with (
            patch.object(Treatment, "_mlm_execute_batch", failing),
            self.assertLogs(
                "odoo.addons.loyalty_mlm.models.loyalty_mlm_treatment", "ERROR"
            ),
        ):
            self.assertEqual(self.run_job(), 2)
        self.assertEqual(self.logs(broken), self.env["loyalty.mlm.treatment.log"])
        self.assertEqual(self.card_of(broken).points, 0.0)
        self.assertEqual(self.mails(broken), self.env["mail.mail"])
        self.assertEqual(broken.mlm_next_action_status, "Due at the next run")
        self.assertLedgerInvariant()
        # Fixed: the rerun treats the broken one, and only him.
        self.assertEqual(self.run_job(), 1)
        for partner in (first, broken, last):
            self.assertEqual(len(self.logs(partner)), 1)
            self.assertEqual(len(self.mails(partner)), 1)
            self.assertEqual(self.card_of(partner).points, 30.0)
        self.assertLedgerInvariant()

    def test_the_time_budget_starts_after_the_plan(self):
        """The budget bounds how long a call holds the cards it credits; the
        plan locks nothing: a plan longer than the budget (18 s at 1,000,000
        customers) still leaves the call its budget of batches."""
        self.rule()
        for i in range(3):
            self.customer(f"Slow plan {i}", "growth")
        clock = [1000.0]
        plan = type(self.Treatment)._mlm_plan

        def slow_plan(treatment, *args, **kwargs):
            clock[0] += 60.0  # a plan of a minute; the batches take no time
            return plan(treatment, *args, **kwargs)

        module = "odoo.addons.loyalty_mlm.models.loyalty_mlm_treatment"
        with (
            patch(f"{module}.time.monotonic", side_effect=lambda: clock[0]),
            patch.object(type(self.Treatment), "_mlm_plan", slow_plan),
        ):
            self.assertEqual(self.run_job(batch_size=1, time_budget=10), 3)

    def test_batches_resume(self):
        self.rule()
        partners = [self.customer(f"Batch {i}", "growth") for i in range(5)]
        self.assertEqual(self.run_job(batch_size=2, time_budget=0), 2)
        self.assertEqual(self.run_job(batch_size=2, time_budget=0), 2)
        self.assertEqual(self.run_job(batch_size=2, time_budget=0), 1)
        self.assertEqual(self.run_job(batch_size=2, time_budget=0), 0)
        self.assertEqual(
            [len(self.logs(partner)) for partner in partners], [1, 1, 1, 1, 1]
        )
        self.assertLedgerInvariant()

    def test_plan_is_set_based(self):
        """Planning costs the same number of queries for 3 or 12 customers."""
        self.rule()
        self.rule(name="Second", stage_ids=[(6, 0, self.stages["retention"].ids)])
        for i in range(3):
            self.customer(f"Few {i}", "growth")
        self.Treatment._mlm_plan(self.company)
        with self.assertQueryCount(7):
            self.Treatment._mlm_plan(self.company)
        for i in range(9):
            self.customer(f"More {i}", "growth")
        self.Treatment._mlm_plan(self.company)
        with self.assertQueryCount(7):
            plan = self.Treatment._mlm_plan(self.company)
        self.assertEqual(sum(len(due) for _rule, due in plan), 12)


@tagged("post_install", "-at_install")
class TestNextBestAction(OwnRulesCase):
    def test_contact_and_lead_show_it(self):
        rule = self.rule(
            rationale="Grow them",
            coupon_program_id=self.winback.id,
            bonus_points=0,
        )
        partner = self.customer("Shown", "growth")
        self.assertEqual(
            (
                partner.mlm_treatment_id,
                partner.mlm_next_action,
                partner.mlm_next_action_status,
                partner.mlm_treatment_rationale,
            ),
            (rule, "Coupon: Winback Coupon", "Due at the next run", "Grow them"),
        )
        lead = self.env["crm.lead"].create({"name": "Deal", "partner_id": partner.id})
        self.run_job()
        partner.invalidate_recordset()
        lead.invalidate_recordset()
        self.assertEqual(lead.mlm_treatment_id, rule)
        self.assertEqual(lead.mlm_next_action_status, partner.mlm_next_action_status)
        self.assertTrue(lead.mlm_next_action_status.startswith("Done on "))
        self.assertEqual(lead.mlm_treatment_log_ids, self.logs(partner))
        # Sales staff read it all.
        as_user = partner.with_user(self.user_loyalty)
        self.assertEqual(as_user.mlm_treatment_id, rule)
        self.assertEqual(len(as_user.mlm_treatment_log_ids), 1)


@tagged("post_install", "-at_install")
class TestDefaultTreatments(TreatmentCase):
    """Each shipped rule fires for a customer built in its stage and segment."""

    def test_defaults_fire(self):
        """Late in the UTC evening: the user's day is already tomorrow."""
        with self.clock(*LATE_EVENING):
            self.check_defaults_fire()

    def test_defaults_fire_morning(self):
        with self.clock(*MORNING):
            self.check_defaults_fire()

    def check_defaults_fire(self):
        ref = self.env.ref
        table = [
            # name, stage, segment, quadrant, expected rule, expected lines
            ("Onboarding", "onboarding", None, "stranger", "treatment_onboarding"),
            ("Growth low", "growth", "low", "barnacle", "treatment_growth_low"),
            ("Growth heavy", "growth", "heavy", "barnacle", "treatment_growth_heavy"),
            (
                "Ambassador",
                "ambassadorship",
                "heavy",
                "true_friend",
                "treatment_ambassadorship",
            ),
            (
                "Retention heavy",
                "retention",
                "heavy",
                "barnacle",
                "treatment_retention_heavy",
            ),
            (
                "Retention friend",
                "retention",
                "medium",
                "true_friend",
                "treatment_retention_heavy",
            ),
            (
                "Retention low",
                "retention",
                "low",
                "barnacle",
                "treatment_retention_low",
            ),
            ("Winback", "winback", "low", "stranger", "treatment_winback"),
            ("Butterfly", "growth", "medium", "butterfly", "treatment_butterfly"),
            ("Stranger", "growth", "medium", "stranger", "treatment_stranger"),
        ]
        customers = {
            name: self.customer(name, stage, segment, quadrant)
            for name, stage, segment, quadrant, _rule in table
        }
        self.run_job()
        for name, _stage, _segment, _quadrant, xmlid in table:
            partner = customers[name]
            with self.subTest(name):
                rule = ref(f"loyalty_mlm.{xmlid}")
                self.assertEqual(partner.mlm_treatment_id, rule)
                log = self.logs(partner)
                if xmlid == "treatment_stranger":
                    self.assertEqual(log, self.env["loyalty.mlm.treatment.log"])
                    continue
                self.assertEqual(log.treatment_id, rule)
                self.assertEqual(bool(self.mails(partner)), bool(rule.mail_template_id))
        # What each one did, in particular:
        self.assertIn(
            "Thank you for your first order",
            self.mails(customers["Onboarding"]).body_html,
        )
        ambassador = customers["Ambassador"]
        self.assertIn(ambassador.mlm_referral_code, self.mails(ambassador).body_html)
        self.assertEqual(
            ambassador.category_id, ref("loyalty_mlm.res_partner_category_ambassador")
        )
        for name in ("Retention heavy", "Retention friend"):
            partner = customers[name]
            self.assertEqual(
                (partner.activity_ids.activity_type_id, partner.activity_ids.user_id),
                (ref("mail.mail_activity_data_call"), self.salesman),
            )
            self.assertEqual(
                partner.activity_ids.date_deadline,
                fields.Date.context_today(partner) + timedelta(days=3),
            )
            self.assertEqual(self.card_of(partner).points, 200.0)
        winback = customers["Winback"]
        coupon = self.logs(winback).coupon_id
        self.assertEqual(coupon.program_id, self.winback)
        self.assertIn(coupon.code, self.mails(winback).body_html)
        self.assertIn("why you stopped coming", self.mails(winback).body_html)
        self.assertEqual(
            self.logs(customers["Butterfly"]).coupon_id.program_id,
            ref("loyalty_mlm.loyalty_program_next_order_coupon"),
        )
        self.assertEqual(
            self.mails(customers["Growth heavy"]).subject, "Thank you, Growth heavy"
        )
        self.assertEqual(self.logs(customers["Growth heavy"]).coupon_id.id, False)
        self.assertEqual(
            customers["Stranger"].mlm_next_action_status, "No action on purpose"
        )
        self.assertLedgerInvariant()

    def test_dutch_customer_gets_dutch_mail(self):
        self.env["res.lang"]._activate_lang("nl_NL")
        self.env["ir.module.module"]._load_module_terms(
            ["loyalty_mlm"], ["nl_NL"], overwrite=True
        )
        self.env.invalidate_all()
        dutch = self.customer("Daan", "onboarding", lang="nl_NL")
        english = self.customer("Emma", "onboarding", lang="en_US")
        self.run_job()
        mail = self.mails(dutch)
        self.assertEqual(mail.subject, "Welkom, Daan: zo werken je punten")
        self.assertIn("Bedankt voor je eerste bestelling", mail.body_html)
        self.assertEqual(
            self.mails(english).subject, "Welcome, Emma: how your points work"
        )

    def test_install_backfill_sends_nothing(self):
        """Installing on a database with customers computes their stages: those
        are past entries, no welcome mail or winback coupon for them."""
        lapsed = self.env["res.partner"].create(
            {"name": "Lapsed Before", "email": "lb@example.com", "customer_rank": 1}
        )
        order = self.make_order(partner=lapsed, amount=50.0)
        order.action_confirm()
        order.date_order = fields.Datetime.now() - timedelta(days=400)
        post_init_hook(self.env)
        self.assertEqual(lapsed.mlm_stage_id, self.stages["winback"])
        self.run_job()
        winback = self.env.ref("loyalty_mlm.treatment_winback")
        self.assertEqual(
            self.logs(lapsed, winback), self.env["loyalty.mlm.treatment.log"]
        )
        self.assertEqual(lapsed.mlm_treatment_id, winback)
        self.assertEqual(
            lapsed.mlm_next_action_status, "On the next entry into the stage"
        )
