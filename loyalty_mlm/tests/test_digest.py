from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from ..tools import kpi as kpi_tools
from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestDigest(LoyaltyMlmCommon):
    """The member KPIs in Odoo's digest, read from the snapshots.

    ==============  ==========  =========  ==========  =========
    snapshot        active      retention  redemption  liability
    ==============  ==========  =========  ==========  =========
    this week       42          0.4567     0.25        1234.50
    last week       40          0.40       0.20        1000.00
    this month      57          0.5        0.30        1500.00
    ==============  ==========  =========  ==========  =========

    Columns: "last 24 hours" and "last 7 days" show this week, the latter
    compared with last week; "last 30 days" shows this month.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The digest's "now" is a UTC moment; its date picks the periods.
        today = fields.Date.today()
        Snapshot = cls.env["loyalty.mlm.kpi.snapshot"]
        Snapshot.search([]).unlink()  # the install's backfill
        for period, values in (
            (
                kpi_tools.Period.week(today),
                (42, 0.4567, 0.25, 1234.5),
            ),
            (
                kpi_tools.Period.week(today - timedelta(days=7)),
                (40, 0.40, 0.20, 1000.0),
            ),
            (
                kpi_tools.Period.containing(today, "month"),
                (57, 0.5, 0.30, 1500.0),
            ),
        ):
            active, retention, redemption, liability = values
            Snapshot.create(
                {
                    "company_id": cls.company.id,
                    "period_kind": period.kind,
                    "date_start": period.start,
                    "date_end": period.last_day,
                    "date_computed": today,
                    "dimension": "all",
                    "members_active": active,
                    "retention_rate": retention,
                    "redemption_rate": redemption,
                    "points_liability": liability,
                }
            )
        cls.digest = cls.env["digest.digest"].create(
            {
                "name": "Weekly Members",
                "company_id": cls.company.id,
                "periodicity": "weekly",
                "kpi_loyalty_mlm_active_members": True,
                "kpi_loyalty_mlm_retention": True,
                "kpi_loyalty_mlm_redemption": True,
                "kpi_loyalty_mlm_liability": True,
                "user_ids": [(6, 0, cls.user_manager.ids)],
            }
        )
        cls.user_manager.email = "manager@example.com"

    def kpis(self, user):
        return {
            kpi["kpi_name"]: kpi
            for kpi in self.digest._compute_kpis(self.company, user)
            if kpi["kpi_name"].startswith("kpi_loyalty_mlm")
        }

    def test_values_per_column(self):
        kpis = self.kpis(self.user_manager)
        retention = kpis["kpi_loyalty_mlm_retention"]
        self.assertEqual(retention["kpi_fullname"], "Member Retention (%)")
        self.assertEqual(retention["kpi_col1"]["value"], "45.67")
        self.assertEqual(retention["kpi_col2"]["value"], "45.67")
        self.assertEqual(retention["kpi_col3"]["value"], "50.00")
        # Last 7 days against the 7 days before: this week vs last week.
        self.assertEqual(retention["kpi_col2"]["margin"], 14.18)
        self.assertEqual(
            kpis["kpi_loyalty_mlm_active_members"]["kpi_col1"]["value"], 42
        )
        self.assertEqual(
            kpis["kpi_loyalty_mlm_active_members"]["kpi_col3"]["value"], 57
        )
        self.assertEqual(
            kpis["kpi_loyalty_mlm_redemption"]["kpi_col2"]["value"], "25.00"
        )
        liability = kpis["kpi_loyalty_mlm_liability"]["kpi_col1"]["value"]
        # Odoo's digest shortens amounts: 1234.50 in the company currency.
        self.assertIn("1.2k", liability)
        self.assertIn(self.company.currency_id.symbol, liability)
        self.assertEqual(
            kpis["kpi_loyalty_mlm_liability"]["kpi_action"],
            "loyalty_mlm.loyalty_mlm_dashboard_action"
            f"&menu_id={self.env.ref('loyalty_mlm.menu_root').id}",
        )

    def test_default_digest_has_them(self):
        default = self.env.ref("digest.digest_digest_default", raise_if_not_found=False)
        if not default:
            self.skipTest("The default digest was deleted.")
        self.assertTrue(default.kpi_loyalty_mlm_active_members)
        self.assertTrue(default.kpi_loyalty_mlm_retention)
        self.assertTrue(default.kpi_loyalty_mlm_redemption)
        self.assertTrue(default.kpi_loyalty_mlm_liability)

    def test_users_outside_the_app_do_not_get_them(self):
        self.assertEqual(self.kpis(self.user_plain), {})

    def test_mail_body(self):
        self.digest._action_send_to_user(self.user_manager)
        mail = self.env["mail.mail"].search(
            [("email_to", "ilike", "manager@example.com")], order="id desc", limit=1
        )
        body = str(mail.body_html)
        for label in (
            "Active Members",
            "Member Retention (%)",
            "Points Redemption (%)",
            "Points Liability",
        ):
            self.assertIn(label, body)
        for value in ("45.67", "50.00", "25.00", "30.00", ">42<", ">57<"):
            self.assertIn(value, body)

    def test_no_snapshot_reads_zero(self):
        company = self.env["res.company"].create({"name": "New Shop"})
        digest = self.digest.copy({"company_id": company.id})
        kpis = {
            kpi["kpi_name"]: kpi
            for kpi in digest._compute_kpis(company, self.user_manager)
        }
        self.assertEqual(kpis["kpi_loyalty_mlm_retention"]["kpi_col1"]["value"], "0.00")
