from datetime import date, timedelta

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged

from ..tools import kpi as kpi_tools
from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestGoals(LoyaltyMlmCommon):
    """Goals measured from monthly snapshots written by the test.

    ==========  ==================  ===========================================
    month 2025  retention (all)     what the goal "+20% retention" sees
    ==========  ==================  ===========================================
    January     0.40                baseline (target 0.40 + 20% = 0.48)
    February    0.42                25% of the way, 28 of 149 days: on track
    March       0.40                0% after 59 days (expected 40%): at risk
    April       0.49                target reached: achieved
    ==========  ==================  ===========================================

    The goal runs from 1 February (the day after the baseline month) to the
    deadline of 30 June; each closed month is dated at its last day.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Goal = cls.env["loyalty.mlm.goal"]
        cls.Snapshot = cls.env["loyalty.mlm.kpi.snapshot"]
        # The install's backfill wrote snapshots of the last 24 months: the
        # tests write their own.
        cls.Snapshot.search([]).unlink()
        cls.stage = cls.env["loyalty.mlm.stage"].search([], limit=1)
        cls.other_company = cls.env["res.company"].create({"name": "Other Shop"})

    def snap(self, month, company=None, **values):
        period = kpi_tools.Period.month(2025, month)
        return self.Snapshot.create(
            {
                "company_id": (company or self.company).id,
                "period_kind": "month",
                "date_start": period.start,
                "date_end": period.last_day,
                "date_computed": period.last_day,
                "is_closed": True,
                "dimension": "all",
                **values,
            }
        )

    def make_goal(self, company=None, **values):
        return self.Goal.create(
            {
                "name": "+20% retention",
                "company_id": (company or self.company).id,
                "user_id": self.user_manager.id,
                "kpi": "retention_rate",
                "baseline_date": date(2025, 1, 15),
                "target_type": "percent",
                "target": 20.0,
                "deadline": date(2025, 6, 30),
                **values,
            }
        )

    def activities(self, goal):
        return self.env["mail.activity"].search(
            [("res_model", "=", goal._name), ("res_id", "=", goal.id)]
        )

    # -- baseline and target --------------------------------------------------

    def test_baseline_and_target_values(self):
        self.snap(1, retention_rate=0.40, members_active=200)
        goal = self.make_goal()
        self.assertEqual(goal.baseline_start, date(2025, 1, 1))
        self.assertEqual(goal.baseline_end, date(2025, 1, 31))
        self.assertEqual(goal.date_start, date(2025, 2, 1))
        self.assertTrue(goal.has_baseline)
        self.assertAlmostEqual(goal.baseline_value, 0.40)
        self.assertAlmostEqual(goal.target_value, 0.48)
        self.assertEqual(goal.baseline_display, "40.0 %")
        self.assertEqual(goal.target_display, "48.0 %")

        absolute = self.make_goal(
            name="250 active members",
            kpi="members_active",
            target_type="absolute",
            target=250.0,
        )
        self.assertAlmostEqual(absolute.baseline_value, 200.0)
        self.assertAlmostEqual(absolute.target_value, 250.0)
        self.assertEqual(absolute.target_display, "250")

        # A baseline typed by hand wins over the snapshot.
        goal.write({"baseline_manual": True, "baseline_manual_value": 0.5})
        self.assertAlmostEqual(goal.baseline_value, 0.5)
        self.assertAlmostEqual(goal.target_value, 0.6)

    def test_baseline_written_later_is_picked_up(self):
        goal = self.make_goal()
        self.assertFalse(goal.has_baseline)
        self.assertFalse(goal.has_target)
        self.assertFalse(goal.status)
        self.assertEqual(
            goal.measure_note, "No snapshot with this KPI for the baseline period."
        )
        # The backfill writes the snapshots after the goal was saved.
        self.snap(1, retention_rate=0.40)
        self.snap(2, retention_rate=0.42)
        self.Goal._mlm_update_goals(self.company, today=date(2025, 3, 1))
        self.assertTrue(goal.has_baseline)
        self.assertAlmostEqual(goal.target_value, 0.48)
        self.assertEqual(goal.status, "on_track")
        self.assertFalse(goal.measure_note)

    def test_undefined_baseline_has_no_status(self):
        # Nobody ordered in December: retention undefined, not 0%.
        self.snap(1, retention_rate=0.0, undefined_kpis="retention_rate")
        goal = self.make_goal()
        self.assertFalse(goal.has_baseline)
        self.Goal._mlm_update_goals(self.company, today=date(2025, 3, 1))
        self.assertFalse(goal.status)

    # -- status ---------------------------------------------------------------

    def test_status_on_track_at_risk_achieved(self):
        self.snap(1, retention_rate=0.40)
        self.snap(2, retention_rate=0.42)
        goal = self.make_goal()
        # The running month (March, computed on the 10th) is not measured.
        running = kpi_tools.Period.month(2025, 3)
        self.Snapshot.create(
            {
                "company_id": self.company.id,
                "period_kind": "month",
                "date_start": running.start,
                "date_end": running.last_day,
                "date_computed": date(2025, 3, 10),
                "dimension": "all",
                "retention_rate": 0.10,
            }
        )
        self.Goal._mlm_update_goals(self.company, today=date(2025, 3, 11))
        self.assertEqual(goal.status, "on_track")
        self.assertAlmostEqual(goal.current_value, 0.42)
        self.assertAlmostEqual(goal.progress, 25.0)
        self.assertAlmostEqual(goal.expected, 25.5)  # 100 x 38 / 149 days
        self.assertEqual(goal.last_measured, date(2025, 2, 28))
        self.assertFalse(self.activities(goal))

        # March closes at 0.40: back at the baseline after 59 of 149 days.
        self.Snapshot.search([("date_start", "=", running.start)]).write(
            {"date_computed": running.last_day, "retention_rate": 0.40}
        )
        self.Goal._mlm_update_goals(self.company, today=date(2025, 4, 1))
        self.assertEqual(goal.status, "at_risk")
        self.assertAlmostEqual(goal.progress, 0.0)
        activity = self.activities(goal)
        self.assertEqual(len(activity), 1)
        self.assertEqual(activity.user_id, self.user_manager)
        self.assertEqual(
            activity.activity_type_id, self.env.ref("mail.mail_activity_data_todo")
        )
        self.assertEqual(activity.summary, "Goal at risk: +20% retention")
        self.assertIn("Retention rate is 40.0 %", str(activity.note))
        self.assertIn("about 43.2 %", str(activity.note))

        # Still at risk the next night: no second activity.
        self.Goal._mlm_update_goals(self.company, today=date(2025, 4, 2))
        self.assertEqual(goal.status, "at_risk")
        self.assertEqual(len(self.activities(goal)), 1)

        self.snap(4, retention_rate=0.49)
        self.Goal._mlm_update_goals(self.company, today=date(2025, 5, 1))
        self.assertEqual(goal.status, "achieved")
        self.assertAlmostEqual(goal.progress, 112.5)
        self.assertEqual(goal.current_display, "49.0 %")

    def test_at_risk_activity_in_the_responsible_language(self):
        self.env["res.lang"]._activate_lang("nl_NL")
        self.env["ir.module.module"]._load_module_terms(
            ["loyalty_mlm"], ["nl_NL"], overwrite=True
        )
        self.env.invalidate_all()
        self.user_manager.lang = "nl_NL"
        self.snap(1, retention_rate=0.40)
        self.snap(2, retention_rate=0.40)
        goal = self.make_goal()
        goal.with_context(lang="nl_NL").name = "+20% klantbehoud"
        self.Goal._mlm_update_goals(self.company, today=date(2025, 3, 20))
        self.assertEqual(goal.status, "at_risk")
        activity = self.activities(goal)
        self.assertEqual(activity.summary, "Doel in gevaar: +20% klantbehoud")
        self.assertIn("Klantbehoud is 40,0 %", str(activity.note))
        self.assertIn("om 48,0 % te halen tegen 30-06-2025", str(activity.note))

    def test_status_missed_after_deadline(self):
        self.snap(1, retention_rate=0.40)
        for month in range(2, 8):
            self.snap(month, retention_rate=0.44)
        goal = self.make_goal()
        self.Goal._mlm_update_goals(self.company, today=date(2025, 7, 15))
        self.assertEqual(goal.status, "missed")
        # July (after the deadline) does not count; June's value does.
        self.assertEqual(goal.last_measured, date(2025, 6, 30))
        self.assertAlmostEqual(goal.progress, 50.0)

    def test_lower_is_better_and_scope(self):
        self.snap(1, churned=10)
        self.snap(2, churned=6)
        goal = self.make_goal(
            name="-30% churn", kpi="churned", target=-30.0, deadline=date(2025, 3, 31)
        )
        self.assertAlmostEqual(goal.target_value, 7.0)
        self.Goal._mlm_update_goals(self.company, today=date(2025, 3, 2))
        self.assertEqual(goal.status, "achieved")
        # A stage's own snapshots measure a goal scoped on that stage.
        stage_rows = {
            "dimension": "stage",
            "stage_id": self.stage.id,
        }
        self.snap(1, retention_rate=0.20, **stage_rows)
        self.snap(2, retention_rate=0.30, **stage_rows)
        scoped = self.make_goal(scope="stage", stage_id=self.stage.id)
        self.assertAlmostEqual(scoped.baseline_value, 0.20)
        self.Goal._mlm_update_goals(self.company, today=date(2025, 3, 2))
        self.assertEqual(scoped.status, "achieved")

    def test_archived_goals_are_not_measured(self):
        self.snap(1, retention_rate=0.40)
        self.snap(2, retention_rate=0.30)
        goal = self.make_goal()
        # Measured at creation on the real today: long past the deadline.
        self.assertEqual(goal.status, "missed")
        goal.action_archive()
        self.assertEqual(goal.status, "missed")  # kept as it was
        measured = self.Goal._mlm_update_goals(self.company, today=date(2025, 3, 2))
        self.assertNotIn(goal, measured)
        self.assertEqual(goal.status, "missed")
        self.assertFalse(self.activities(goal))

    # -- constraints ----------------------------------------------------------

    def test_programme_kpi_only_on_all_customers(self):
        with self.assertRaisesRegex(ValidationError, "whole programme only"):
            self.make_goal(kpi="redemption_rate", scope="stage", stage_id=self.stage.id)
        with self.assertRaisesRegex(ValidationError, "choose one"):
            self.make_goal(scope="stage")
        self.assertEqual(self.make_goal(kpi="redemption_rate").scope, "all")

    def test_percent_of_zero_baseline_refused(self):
        self.snap(1, retention_rate=0.0)
        with self.assertRaisesRegex(ValidationError, "baseline of 0"):
            self.make_goal()
        goal = self.make_goal(target_type="absolute", target=0.1)
        self.assertAlmostEqual(goal.target_value, 0.1)
        with self.assertRaisesRegex(ValidationError, "baseline of 0"):
            goal.target_type = "percent"

    def test_dates_checked(self):
        with self.assertRaisesRegex(ValidationError, "after its baseline period"):
            self.make_goal(deadline=date(2025, 1, 31))
        with self.assertRaisesRegex(ValidationError, "before its deadline"):
            self.make_goal(date_start=date(2025, 7, 1))
        with self.assertRaisesRegex(ValidationError, "finite"):
            self.make_goal(target=float("inf"))
        with self.assertRaisesRegex(ValidationError, "finite"):
            self.make_goal(baseline_manual=True, baseline_manual_value=float("nan"))

    # -- access ---------------------------------------------------------------

    def test_access(self):
        goal = self.make_goal()
        as_user = goal.with_user(self.user_loyalty)
        self.assertEqual(as_user.name, "+20% retention")
        with self.assertRaises(AccessError):
            as_user.write({"target": 30.0})
        with self.assertRaises(AccessError):
            as_user.action_refresh()
        with self.assertRaises(AccessError):
            self.Goal.with_user(self.user_loyalty).create(
                {"name": "x", "kpi": "churned", "target": 1, "deadline": "2030-01-01"}
            )
        with self.assertRaises(AccessError):
            goal.with_user(self.user_plain).read(["name"])

        as_manager = goal.with_user(self.user_manager)
        as_manager.write({"target": 30.0})
        self.assertAlmostEqual(goal.target, 30.0)
        self.assertTrue(as_manager.action_refresh())

        # Company fence: another company's goals stay out of sight.
        other = self.make_goal(company=self.other_company, name="Other goal")
        self.assertFalse(
            self.Goal.with_user(self.user_manager).search([("id", "=", other.id)])
        )
        with self.assertRaises(AccessError):
            other.with_user(self.user_manager).read(["name"])

    # -- speed ----------------------------------------------------------------

    def test_update_queries_do_not_grow_with_goals(self):
        """3 goals and 30 goals of one company cost the same queries."""
        small, large = self.env["res.company"].create(
            [{"name": "Small Shop"}, {"name": "Large Shop"}]
        )
        manager = new_test_user(
            self.env,
            login="mlm_goal_bulk",
            groups="loyalty_mlm.group_loyalty_mlm_manager",
            company_id=small.id,
            company_ids=[(6, 0, (small | large).ids)],
        )
        counts = []
        for company, goals_count in ((small, 3), (large, 30)):
            self.snap(1, company=company, retention_rate=0.40)
            self.snap(2, company=company, retention_rate=0.44)
            self.Goal.create(
                [
                    {
                        "name": f"Goal {index}",
                        "company_id": company.id,
                        "user_id": manager.id,
                        "kpi": "retention_rate",
                        "baseline_date": date(2025, 1, 15),
                        "target_type": "percent",
                        "target": 20.0 + index,
                        "deadline": date(2025, 6, 30),
                    }
                    for index in range(goals_count)
                ]
            )
            # Warm the caches; after the deadline nothing changes (missed).
            self.Goal._mlm_update_goals(company, today=date(2025, 7, 15))
            self.env.flush_all()
            self.env.invalidate_all()
            start = self.env.cr.sql_log_count
            goals = self.Goal._mlm_update_goals(company, today=date(2025, 3, 1))
            self.env.flush_all()
            counts.append(self.env.cr.sql_log_count - start)
            self.assertEqual(len(goals), goals_count)
            self.assertEqual(set(goals.mapped("status")), {"on_track"})
            # Three months later every goal turns at risk: one activity each,
            # created in one batch; Odoo's assignment mail to the responsible
            # costs about 12 queries per activity (rare: goals turning at
            # risk), so that run is only counted, not compared.
            start = self.env.cr.sql_log_count
            self.Goal._mlm_update_goals(company, today=date(2025, 6, 1))
            self.env.flush_all()
            counts.append(self.env.cr.sql_log_count - start)
            self.assertEqual(set(goals.mapped("status")), {"at_risk"})
            self.assertEqual(
                len(goals.activity_ids.filtered(lambda a: a.user_id == manager)),
                goals_count,
            )
        self.assertEqual(counts[0], counts[2], counts)

    # -- views, menu, demo ------------------------------------------------------

    def test_views_and_menu(self):
        views = self.Goal.with_user(self.user_loyalty).get_views(
            [(False, "list"), (False, "form"), (False, "search")]
        )["views"]
        self.assertIn('widget="progressbar"', views["list"]["arch"])
        self.assertIn(
            'name="action_refresh"',
            self.Goal.get_views([(False, "form")])["views"]["form"]["arch"],
        )
        menu = self.env.ref("loyalty_mlm.menu_reporting_goals")
        self.assertEqual(menu.parent_id, self.env.ref("loyalty_mlm.menu_reporting"))
        visible = (
            self.env["ir.ui.menu"].with_user(self.user_loyalty)._visible_menu_ids()
        )
        self.assertIn(menu.id, visible)
        digest_form = (
            self.env["digest.digest"]
            .with_user(self.user_manager)
            .get_views([(False, "form")])["views"]["form"]["arch"]
        )
        self.assertIn('name="kpi_loyalty_mlm_retention"', digest_form)

    def test_demo_goals(self):
        goal = self.env.ref(
            "loyalty_mlm.loyalty_mlm_goal_retention_demo", raise_if_not_found=False
        )
        if not goal:
            self.skipTest("Installed without demo data.")
        self.assertEqual(goal.kpi, "retention_rate")
        self.assertEqual((goal.target_type, goal.target), ("percent", 20.0))
        self.assertEqual(goal.user_id, self.env.ref("base.user_admin"))
        self.assertEqual(goal.period_kind, "month")
        # Baseline: the month before the install; deadline: six months on.
        self.assertEqual(goal.date_start, goal.baseline_end + timedelta(days=1))
        self.assertGreater((goal.deadline - goal.baseline_end).days, 180)
        names = set(
            self.Goal.search(
                [("company_id", "=", self.env.ref("base.main_company").id)]
            ).mapped("name")
        )
        self.assertTrue(
            {
                "+20% retention",
                "+15% average order value (members)",
                "+10% repeat purchases",
            }
            <= names
        )
