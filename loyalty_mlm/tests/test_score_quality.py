from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon


@tagged("post_install", "-at_install")
class TestScoreQuality(LoyaltyMlmPosCommon):
    """The score quality report: the nightly chain replayed as of a churn
    horizon (180 days) ago, against what the customers did since.

    ========  ==========================  ======================  ===========
    customer  orders before (days ago)    orders since            outcome
    ========  ==========================  ======================  ===========
    anna      400, 300, 200               100 (2 beans)           bought
    bram      350, 250                    none                    churned
    chloe     190                         10 (1 bean)             bought
    daan      500                         none                    churned
    eva       none                        50                      not scored
    ========  ==========================  ======================  ===========
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.beans = cls.env["product.product"].create(
            {
                "name": "Beans",
                "list_price": 100.0,
                "standard_price": 60.0,
                "taxes_id": False,
            }
        )
        Partner = cls.env["res.partner"]
        cls.anna, cls.bram, cls.chloe, cls.daan, cls.eva = Partner.create(
            [{"name": f"{name} Q"} for name in ("Anna", "Bram", "Chloe", "Daan", "Eva")]
        )
        # The report is a manager's (the monthly job runs as root).
        cls.user_manager = new_test_user(
            cls.env,
            login="mlm_quality_manager",
            groups="loyalty_mlm.group_loyalty_mlm_manager",
            company_id=cls.company.id,
            company_ids=[(6, 0, cls.company.ids)],
        )
        cls.user_loyalty = new_test_user(
            cls.env,
            login="mlm_quality_user",
            groups="loyalty_mlm.group_loyalty_mlm_user",
            company_id=cls.company.id,
            company_ids=[(6, 0, cls.company.ids)],
        )
        cls.Quality = cls.env["loyalty.mlm.score.quality"].with_user(cls.user_manager)

    def sell(self, partner, days_ago, qty=1):
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [
                    (0, 0, {"product_id": self.beans.id, "product_uom_qty": qty})
                ],
            }
        )
        order.action_confirm()
        order.date_order = fields.Datetime.now() - timedelta(days=days_ago)

    def make_story(self):
        for days in (400, 300, 200):
            self.sell(self.anna, days)
        self.sell(self.anna, 100, qty=2)
        for days in (350, 250):
            self.sell(self.bram, days)
        self.sell(self.chloe, 190)
        self.sell(self.chloe, 10)
        self.sell(self.daan, 500)
        self.sell(self.eva, 50)

    def test_report_measures_the_scores_of_then_against_what_happened(self):
        self.make_story()
        today = fields.Date.today()
        report = self.Quality._mlm_compute(self.company, today)
        self.assertEqual(
            (report.date, report.as_of, report.horizon_days),
            (today, today - timedelta(days=180), 180),
        )
        # Eva's first order is after the cut: not scored then.
        self.assertEqual(report.customer_count, 4)
        self.assertEqual(report.repurchase_rate, 50.0)
        self.assertEqual(report.observed_churn, 50.0)
        # Spend since: Anna 200, Chloe 100; the top 20% (0.8 customer) by
        # CLV is Anna, the most frequent: 0.8 x 200 / 300.
        self.assertAlmostEqual(report.clv_capture, 100 * 0.8 * 200 / 300, places=6)
        self.assertEqual(report.past_spend_capture, report.clv_capture)
        details = report.details
        self.assertEqual(sum(row["count"] for row in details["bands"]), 4)
        self.assertEqual(sum(row["count"] for row in details["stages"]), 4)
        self.assertEqual(sum(row["count"] for row in details["calibration"]), 4)
        # Daan (last order 320 days before the cut) was in Winback then and
        # did not come back.
        winback = [row for row in details["stages"] if row["label"] == "winback"]
        self.assertEqual(winback, [{"label": "winback", "count": 1, "rate": 0.0}])
        self.assertTrue(report.summary.startswith("Churn risk ranks "))
        self.assertIn("<table", report.details_html)

    def test_no_customers_yet(self):
        report = self.Quality._mlm_compute(self.company)
        self.assertEqual(
            (report.customer_count, report.summary),
            (0, "No customers to check yet."),
        )
        # The monthly job leaves such a company without a report.
        self.assertEqual(
            self.Quality._mlm_compute(self.company, skip_empty=True), self.Quality
        )

    def test_monthly_job_reports_each_company(self):
        self.make_story()
        before = self.Quality.search_count([("company_id", "=", self.company.id)])
        self.assertEqual(self.Quality._cron_compute_score_quality(self.company), 1)
        self.assertEqual(
            self.Quality.search_count([("company_id", "=", self.company.id)]),
            before + 1,
        )

    def test_managers_only(self):
        with self.assertRaises(AccessError):
            self.Quality.with_user(self.user_loyalty).action_mlm_check_now()
        with self.assertRaises(AccessError):
            self.Quality.with_user(self.user_loyalty).search([])
        action = self.Quality.action_mlm_check_now()
        report = self.Quality.browse(action["res_id"])
        self.assertEqual(report.company_id, self.company)


@tagged("post_install", "-at_install")
class TestScoreQualityDemo(LoyaltyMlmCommon):
    """The demo database ships a report computed at install."""

    def test_demo_report(self):
        if not self.env.ref("loyalty_mlm.res_partner_score_tf1_demo", False):
            self.skipTest("no demo data")
        reports = (
            self.env["loyalty.mlm.score.quality"]
            .with_user(self.user_manager)
            .search([("company_id", "=", self.env.ref("base.main_company").id)])
        )
        self.assertTrue(reports)
        report = reports[-1]
        self.assertGreater(report.customer_count, 0)
        self.assertTrue(report.summary.startswith("Churn risk "))
        self.assertGreater(report.churn_auc, 0.0)
