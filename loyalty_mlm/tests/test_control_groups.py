from datetime import timedelta

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from ..tools import uplift as uplift_tools
from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon, winback_promotion
from .test_campaigns import CampaignMixin
from .test_treatments import OwnRulesCase


def split_by_control(action, partners):
    """(treated, control) of `partners` for `action`."""
    control = partners.filtered(action._mlm_in_control)
    return partners - control, control


@tagged("post_install", "-at_install")
class TestControlAssignment(LoyaltyMlmCommon):
    def test_default_shares(self):
        self.assertEqual(
            self.env["loyalty.mlm.treatment"].create({"name": "R"}).mlm_control_share,
            10.0,
        )
        campaign = self.env["loyalty.mlm.campaign"].create(
            {
                "name": "C",
                "date_start": "2025-01-01 00:00:00",
                "date_end": "2025-01-02 00:00:00",
            }
        )
        self.assertEqual(campaign.mlm_control_share, 0.0)
        self.assertEqual(winback_promotion(self.env, self.company).mlm_control_share, 0)
        self.assertEqual(campaign.mlm_window_days, 60)

    def test_share_bounds(self):
        rule = self.env["loyalty.mlm.treatment"].create({"name": "R"})
        for share in (-1, 50.01, 100):
            with self.assertRaises(ValidationError):
                rule.mlm_control_share = share
        with self.assertRaises(ValidationError):
            rule.mlm_window_days = 0
        rule.mlm_control_share = 50
        self.assertEqual(rule.mlm_control_share, 50)

    def test_deterministic_and_share_on_10000_customers(self):
        rule = self.env["loyalty.mlm.treatment"].create(
            {"name": "R", "mlm_control_share": 10}
        )
        ids = range(1, 10001)
        first = [pid for pid in ids if rule._mlm_in_control(pid)]
        again = [pid for pid in ids if rule._mlm_in_control(pid)]
        self.assertEqual(first, again)
        # The same hash as the pure function, whatever the process.
        self.assertEqual(
            first,
            [
                pid
                for pid in ids
                if uplift_tools.in_control("loyalty.mlm.treatment", rule.id, pid, 10)
            ],
        )
        # Binomial(10000, 10%): sd = 30; within 4 sd.
        self.assertLessEqual(abs(len(first) - 1000), 120)
        rule.mlm_control_share = 0
        self.assertEqual([pid for pid in ids if rule._mlm_in_control(pid)], [])


@tagged("post_install", "-at_install")
class TestControlTreatment(OwnRulesCase):
    """A rule with every action type and half of its customers held out."""

    def test_control_customers_get_nothing(self):
        survey = self.env.ref("loyalty_mlm.survey_member_nps")
        rule = self.rule(
            mail_template_id=self.template.id,
            activity_type_id=self.env.ref("mail.mail_activity_data_call").id,
            bonus_points=50,
            coupon_program_id=self.winback.id,
            tag_ids=[(6, 0, self.tag.ids)],
            survey_id=survey.id,
            mlm_control_share=50,
        )
        partners = self.env["res.partner"]
        for i in range(12):
            partners |= self.customer(f"Customer {i}", "growth")
        treated, control = split_by_control(rule, partners)
        self.assertTrue(treated and control)
        self.assertEqual(self.run_job(), 12)
        for partner in control:
            log = self.logs(partner)
            self.assertEqual(
                (log.outcome, log.summary, log.coupon_id, log.activity_id, log.mail_id),
                (
                    "control",
                    "Control group: held out, nothing sent",
                    self.env["loyalty.card"],
                    self.env["mail.activity"],
                    self.env["mail.mail"],
                ),
            )
            self.assertEqual(
                len(self.ledger(partner_id=partner.id, kind="treatment")), 0
            )
            self.assertEqual(self.card_of(partner).points, 0.0)
            self.assertEqual(partner.category_id, self.env["res.partner.category"])
            self.assertEqual(partner.activity_ids, self.env["mail.activity"])
            self.assertEqual(self.mails(partner), self.env["mail.mail"])
            self.assertEqual(
                self.env["loyalty.card"].search_count(
                    [
                        ("partner_id", "=", partner.id),
                        ("program_id", "=", self.winback.id),
                    ]
                ),
                0,
            )
            self.assertEqual(
                self.env["survey.user_input"].search_count(
                    [("partner_id", "=", partner.id)]
                ),
                0,
            )
        for partner in treated:
            log = self.logs(partner)
            self.assertEqual(log.outcome, "done")
            self.assertEqual(self.card_of(partner).points, 50.0)
            self.assertEqual(partner.category_id, self.tag)
            self.assertEqual(len(log.coupon_id), 1)
            self.assertEqual(len(log.activity_id), 1)
            answer = self.env["survey.user_input"].search(
                [("partner_id", "=", partner.id)]
            )
            self.assertEqual(answer.survey_id, survey)
        # Held out once per occasion: the next run claims nothing new.
        self.assertEqual(self.run_job(), 0)
        self.assertEqual(len(self.logs(control)), len(control))

    def test_survey_action_sends_the_invitation(self):
        survey = self.env.ref("loyalty_mlm.survey_member_nps")
        rule = self.rule(bonus_points=0, survey_id=survey.id, mlm_control_share=0)
        partner = self.customer("Sara Survey", "growth")
        self.assertEqual(self.run_job(), 1)
        answer = self.env["survey.user_input"].search([("partner_id", "=", partner.id)])
        self.assertEqual((answer.survey_id, answer.state), (survey, "new"))
        self.assertIn(
            f"Survey sent: {survey.title}", self.logs(partner).summary.splitlines()
        )
        mail = self.env["mail.mail"].search([("recipient_ids", "in", partner.ids)])
        self.assertEqual(len(mail), 1)
        self.assertIn(answer.access_token, mail.body_html)
        self.assertEqual(rule.action_summary, f"Survey: {survey.title}")


@tagged("post_install", "-at_install")
class TestControlCampaign(CampaignMixin, LoyaltyMlmCommon):
    def test_control_member_earns_no_campaign_bonus(self):
        self.env["loyalty.mlm.campaign"].search([]).active = False
        self.env["loyalty.mlm.tier"].search([]).active = False
        self.company.mlm_welcome_bonus = 0.0
        campaign = self.campaign(mlm_control_share=50)
        members = self.env["res.partner"].create(
            [{"name": f"Member {i}"} for i in range(10)]
        )
        treated, control = split_by_control(campaign, members)
        self.assertTrue(treated and control)
        for partner in (treated[0], control[0]):
            with freeze_time("2025-06-07 10:00:00"):
                order = self.make_order(partner=partner)
                order.action_confirm()
            bonus = self.ledger(res_id=order.id, kind="campaign_bonus")
            self.assertEqual(
                bonus.mapped("points"), [] if partner in control else [100.0]
            )

    def test_campaign_review(self):
        """Per campaign day vs the same weekdays of the 4 weeks before.

        Saturday 6 to Sunday 14 June 2015, weekends: 4 days; before: the 8
        weekend days of 9 May to 5 June. Member orders of 100.00: two in the
        campaign, one on a Saturday before it, one on a Tuesday (not
        compared)."""
        self.env["loyalty.mlm.campaign"].search([]).active = False
        self.env["loyalty.mlm.tier"].search([]).active = False
        self.company.mlm_welcome_bonus = 0.0
        campaign = self.campaign(
            date_start="2015-06-06 00:00:00", date_end="2015-06-14 23:59:59"
        )
        for when in (
            "2015-05-12 10:00:00",
            "2015-05-16 10:00:00",
            "2015-06-06 10:00:00",
            "2015-06-13 10:00:00",
        ):
            with freeze_time(when):
                order = self.make_order(partner=self.partner)
                order.action_confirm()
        self.assertEqual(
            (
                campaign.review_bonus_points,
                campaign.review_members_reached,
                campaign.review_member_orders_during,
                campaign.review_member_revenue_during,
                campaign.review_member_orders_before,
                campaign.review_member_revenue_before,
                campaign.review_other_orders_during,
            ),
            (200.0, 1, 0.5, 50.0, 0.13, 12.5, 0.0),
        )


@tagged("post_install", "-at_install")
class TestControlProgrammeSale(LoyaltyMlmCommon):
    """A promotion for everybody but its control group."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.reward.required_points = 100000
        cls.promo = winback_promotion(
            cls.env, cls.company, mlm_stage_ids=False, mlm_control_share=50
        )
        partners = cls.env["res.partner"].create(
            [{"name": f"Shopper {i}"} for i in range(10)]
        )
        treated, control = split_by_control(cls.promo, partners)
        cls.treated, cls.control = treated[0], control[0]

    def test_control_share_makes_the_programme_targeted(self):
        self.assertEqual(self.promo.mlm_restricted, True)
        self.assertEqual(self.promo._is_partner_valid(self.treated), True)
        self.assertEqual(self.promo._is_partner_valid(self.control), False)

    def test_control_customer_is_refused_with_the_reason(self):
        order = self.make_order(self.control)
        order.action_open_reward_wizard()
        self.assertEqual(order.order_line.filtered("reward_id").ids, [])
        status = order._program_check_compute_points(self.promo)[self.promo]
        self.assertEqual(
            status["error"],
            f"{self.control.name} is in the control group of the programme "
            "Welcome back: held out to measure whether the programme works, so "
            "it does not apply to them.",
        )
        order.action_confirm()
        self.assertEqual(order.amount_untaxed, 100.0)

    def test_treated_customer_gets_the_promotion(self):
        order = self.make_order(self.treated)
        order.action_open_reward_wizard()
        order.action_confirm()
        self.assertEqual(order.amount_untaxed, 85.0)


@tagged("post_install", "-at_install")
class TestControlProgrammePos(LoyaltyMlmPosCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.promo = winback_promotion(
            cls.env, cls.company, mlm_stage_ids=False, mlm_control_share=50
        )
        partners = cls.env["res.partner"].create(
            [{"name": f"Shopper {i}"} for i in range(10)]
        )
        treated, control = split_by_control(cls.promo, partners)
        cls.treated, cls.control = treated[0], control[0]

    def promo_order(self, customer):
        reward = self.promo.reward_ids
        line = {
            "product": reward.discount_line_product_id,
            "quantity": 1,
            "is_reward_line": True,
            "reward_id": reward.id,
            "reward_identifier_code": "PROMO",
            "points_cost": 0,
            "price_unit": -1.5,
            "price_subtotal": -1.5,
            "price_subtotal_incl": -1.5,
        }
        data = self.create_ui_order_data([(self.product, 1), line], customer=customer)
        for key in ("price_unit", "price_subtotal", "price_subtotal_incl"):
            data["lines"][1][2][key] = -1.5
        data["amount_total"] = data["amount_paid"] = 8.5
        data["payment_ids"][0][2]["amount"] = 8.5
        return data

    def test_register_does_not_offer_it_to_the_control_group(self):
        self.assertEqual(
            (self.treated | self.control).read(["mlm_pos_program_ids"]),
            [
                {"id": self.treated.id, "mlm_pos_program_ids": [self.promo.id]},
                {"id": self.control.id, "mlm_pos_program_ids": False},
            ],
        )
        # The register learns who is held out, to say so on a promo code
        # as the server does.
        self.assertIn(
            "mlm_pos_control_program_ids",
            self.env["res.partner"]._load_pos_data_fields(self.config.id),
        )
        self.assertEqual(
            (self.treated | self.control).read(["mlm_pos_control_program_ids"]),
            [
                {"id": self.treated.id, "mlm_pos_control_program_ids": False},
                {"id": self.control.id, "mlm_pos_control_program_ids": [self.promo.id]},
            ],
        )

    def test_sync_refuses_the_control_customer(self):
        orders = self.env["pos.order"].search_count([])
        with self.assertRaises(UserError) as caught:
            self.env["pos.order"].sync_from_ui([self.promo_order(self.control)])
        self.assertEqual(
            str(caught.exception),
            f"{self.control.name} is in the control group of the programme "
            "Welcome back: held out to measure whether the programme works, so "
            "it does not apply to them. The order was not saved: remove the "
            "reward and validate the order again.",
        )
        self.assertEqual(self.env["pos.order"].search_count([]), orders)
        result = self.env["pos.order"].sync_from_ui([self.promo_order(self.treated)])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        self.assertEqual(order.amount_total, 8.5)


@tagged("post_install", "-at_install")
class TestActionResults(OwnRulesCase):
    """Results of a built population, computed exactly.

    12 customers treated 30 days ago by a rule holding out half of them; in
    the window, some ordered (100.00 each order) as the test says.
    """

    def test_results_of_a_built_population(self):
        Result = self.env["loyalty.mlm.action.result"]
        rule = self.rule(bonus_points=0, tag_ids=[(6, 0, self.tag.ids)])
        rule.mlm_control_share = 50
        partners = self.env["res.partner"]
        for i in range(12):
            partners |= self.customer(f"Customer {i}", "growth")
        self.run_job()
        now = fields.Datetime.now()
        logs = self.logs(partners)
        logs.write({"date": now - timedelta(days=30)})
        treated = logs.filtered(lambda log: log.outcome == "done").partner_id
        control = logs.filtered(lambda log: log.outcome == "control").partner_id
        self.assertEqual(len(treated) + len(control), 12)
        self.assertTrue(len(treated) >= 2 and len(control) >= 2)
        # Treated 30 days ago, window 20 days: orders 30 to 10 days ago count.
        # Treated: the first two order twice, the third once; control: the
        # first once. An order before the treatment does not count, nor one
        # after the window.
        plan = [
            (treated[0], 20),
            (treated[0], 15),
            (treated[1], 20),
            (treated[1], 12),
            (treated[2], 25),
            (control[0], 22),
            (treated[2], 40),  # before the treatment
            (control[1], 5),  # after a 20-day window
        ]
        for partner, days_ago in plan:
            when = now - timedelta(days=days_ago)
            order = self.make_order(partner=partner)
            order.with_context(mlm_ledger_date=when).action_confirm()
            order.date_order = when
        rule.mlm_window_days = 20
        rule.action_mlm_refresh_results()
        rows = Result.search([("res_model", "=", rule._name), ("res_id", "=", rule.id)])
        by_metric = {row.metric: row for row in rows}
        n1, n0 = len(treated), len(control)
        repeat = by_metric["repeat_rate"]
        expected = uplift_tools.rate_uplift(3, n1, 1, n0)
        self.assertEqual(
            (repeat.n_treated, repeat.n_control, repeat.is_primary),
            (n1, n0, True),
        )
        self.assertAlmostEqual(repeat.value_treated, 3 / n1, places=4)
        self.assertAlmostEqual(repeat.value_control, 1 / n0, places=4)
        self.assertAlmostEqual(repeat.ci_low, expected.low, places=4)
        self.assertAlmostEqual(repeat.ci_high, expected.high, places=4)
        self.assertEqual(repeat.verdict, uplift_tools.verdict(expected))
        orders = by_metric["orders"]
        treated_orders = [2, 2, 1] + [0] * (n1 - 3)
        control_orders = [1] + [0] * (n0 - 1)
        expected = uplift_tools.mean_uplift(treated_orders, control_orders)
        self.assertAlmostEqual(orders.value_treated, 5 / n1, places=4)
        self.assertAlmostEqual(orders.uplift, expected.diff, places=4)
        self.assertAlmostEqual(orders.ci_high, expected.high, places=4)
        revenue = by_metric["revenue"]
        self.assertAlmostEqual(revenue.value_treated, 500 / n1, places=4)
        self.assertAlmostEqual(revenue.value_control, 100 / n0, places=4)
        # Points earned: 1 point per 1.00 on the member programme.
        self.assertAlmostEqual(
            by_metric["points_earned"].value_treated, 500 / n1, places=4
        )
        # The form shows them; the verdict follows the repeat rate.
        self.assertEqual(rule.mlm_result_ids, rows)
        self.assertEqual(rule.mlm_verdict, repeat.verdict)
        # The cockpit's "Does it work?" lists the verdict figure.
        cockpit = self.env["loyalty.mlm.cockpit"].with_user(self.user_loyalty)
        listed = cockpit.get_cockpit_data()["results"]["actions"]
        mine = [item for item in listed if item["id"] == repeat.id]
        self.assertEqual(
            [(m["res_model"], m["res_id"], m["verdict"]) for m in mine],
            [(rule._name, rule.id, repeat.verdict)],
        )
        self.assertEqual(mine[0]["uplift"], round(repeat.uplift * 100, 1))
        # A refresh replaces the rows.
        rule.action_mlm_refresh_results()
        self.assertEqual(
            Result.search_count(
                [("res_model", "=", rule._name), ("res_id", "=", rule.id)]
            ),
            7,
        )

    def test_coupons_used_and_their_cost(self):
        """The coupons a rule issued: how many the treated used in their
        window, and what they took off, in the cost of the ROI."""
        Result = self.env["loyalty.mlm.action.result"]
        self.winback.active = True
        rule = self.rule(bonus_points=10, coupon_program_id=self.winback.id)
        rule.mlm_control_share = 50
        partners = self.env["res.partner"]
        for i in range(12):
            partners |= self.customer(f"Coupon customer {i}", "growth")
        self.run_job()
        now = fields.Datetime.now()
        logs = self.logs(partners)
        logs.write({"date": now - timedelta(days=30)})
        treated = logs.filtered(lambda log: log.outcome == "done")
        n1 = len(treated)
        n0 = len(logs) - n1
        self.assertTrue(n1 >= 2 and n0 >= 1)
        # Two treated customers use their coupon (15% off 100.00) 20 days ago.
        reward = self.winback.reward_ids
        for log in treated[:2]:
            order = self.make_order(partner=log.partner_id)
            # As the customer types the code at checkout.
            order._try_apply_code(log.coupon_id.code)
            result = order._apply_program_reward(reward, log.coupon_id)
            self.assertFalse(result.get("error"), result.get("error"))
            when = now - timedelta(days=20)
            order.with_context(mlm_ledger_date=when).action_confirm()
            order.date_order = when
        rule.mlm_window_days = 60
        rule.action_mlm_refresh_results()
        rows = Result.search([("res_model", "=", rule._name), ("res_id", "=", rule.id)])
        by_metric = {row.metric: row for row in rows}
        used = by_metric["coupons_used"]
        self.assertAlmostEqual(used.value_treated, 2 / n1, places=4)
        self.assertEqual(used.value_control, 0.0)
        # Cost: 10 bonus points a treated customer at 0.01, and 2 x 15.00.
        value = self.company.mlm_point_value
        self.assertAlmostEqual(by_metric["revenue"].cost, 10 * n1 * value + 30.0)
