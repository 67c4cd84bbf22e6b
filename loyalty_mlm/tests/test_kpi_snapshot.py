from datetime import date, datetime

from odoo.exceptions import AccessError
from odoo.tests import tagged

from ..tools import kpi as kpi_tools
from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon

# A fixed history in October 2015 and before (years before any demo
# order), measured as of 31 October
# (the nightly run of 1 November), in Brussels: summer time ends on 25
# October, so local midnights are 22:00 UTC before and 23:00 UTC after.
TZ = "Europe/Brussels"
NIGHT = date(2015, 11, 1)
# The backfill (an install, a click) counts today too: the same cut.
TODAY = date(2015, 10, 31)
OCTOBER = kpi_tools.Period.month(2015, 10)
SEPTEMBER = kpi_tools.Period.month(2015, 9)


@tagged("post_install", "-at_install")
class TestKpiSnapshot(LoyaltyMlmCommon):
    """The snapshots' KPIs on real sale orders, against a hand computation
    and against tools/kpi.py's reference functions."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.partner_id.tz = TZ
        cls.company.mlm_welcome_bonus = 0.0
        cls.company.mlm_point_value = 0.01
        cls.env["loyalty.mlm.treatment"].search([]).active = False
        cls.env["loyalty.mlm.campaign"].search([]).active = False
        Partner = cls.env["res.partner"]
        cls.chloe, cls.daan, cls.eva, cls.finn = Partner.create(
            [{"name": n} for n in ("Chloe K", "Daan K", "Eva K", "Finn K")]
        )
        cls.bram = cls.partner_b
        cls.anna = cls.partner
        # (customer, UTC moment, amount)
        cls.history = [
            (cls.anna, datetime(2015, 9, 10, 10, 0), 100.0),
            (cls.anna, datetime(2015, 10, 5, 10, 0), 200.0),
            (cls.anna, datetime(2015, 10, 20, 10, 0), 50.0),
            (cls.bram, datetime(2015, 9, 20, 10, 0), 80.0),
            # 00:30 on 1 October in Brussels: October there, September in UTC.
            (cls.daan, datetime(2015, 9, 30, 22, 30), 40.0),
            (cls.eva, datetime(2014, 11, 15, 10, 0), 30.0),
            (cls.eva, datetime(2015, 10, 25, 10, 0), 60.0),
        ]
        for partner, when, amount in cls.history:
            cls._confirm(partner, when, amount)
        # Cancelled: counts for nothing.
        cancelled = cls._confirm(cls.finn, datetime(2015, 10, 7, 10, 0), 70.0)
        cancelled.with_context(mlm_ledger_date=datetime(2015, 10, 8))._action_cancel()
        cls.env["loyalty.card"]._mlm_enroll(cls.chloe, cls.company)
        # Who is a member since when (the orders above enrolled everyone on
        # the day the test runs).
        (cls.bram | cls.daan | cls.eva | cls.finn).mlm_member_since = False
        cls.anna.mlm_member_since = date(2015, 9, 15)
        cls.chloe.mlm_member_since = date(2015, 10, 10)
        # Anna redeems 100 points, Eva's 20 oldest points expire.
        cls._post(cls.anna, -100.0, "redeem", datetime(2015, 10, 21, 9, 0))
        cls._post(cls.eva, -20.0, "expire", datetime(2015, 10, 30, 9, 0))
        stage = {
            code: cls.env.ref(f"loyalty_mlm.stage_{code}")
            for code in ("onboarding", "growth", "winback")
        }
        cls.env["loyalty.mlm.stage.history"].search([]).unlink()
        cls.env["loyalty.mlm.stage.history"].create(
            [
                cls._move(cls.anna, stage["onboarding"], stage["growth"], 5),
                cls._move(cls.bram, stage["growth"], stage["winback"], 12),
                cls._move(cls.eva, stage["winback"], stage["growth"], 25),
                # A first assignment is not a churn.
                cls._move(cls.finn, False, stage["winback"], 26),
            ]
        )
        cls.Snapshot = cls.env["loyalty.mlm.kpi.snapshot"]
        cls.Snapshot.search([]).unlink()  # the install's backfill

    @classmethod
    def _confirm(cls, partner, when, amount):
        order = cls.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [
                    (0, 0, {"product_id": cls.product.id, "price_unit": amount})
                ],
            }
        )
        order._update_programs_and_rewards()
        order.with_context(mlm_ledger_date=when).action_confirm()
        order.date_order = when
        return order

    @classmethod
    def _post(cls, partner, points, kind, when):
        card = cls.env["loyalty.card"].search(
            [("partner_id", "=", partner.id), ("program_id", "=", cls.program.id)]
        )
        card.sudo().with_context(
            mlm_ledger_date=when, mlm_ledger_source=(False, 0, kind, kind, "test")
        ).points += points

    @classmethod
    def _move(cls, partner, from_stage, to_stage, october_day):
        return {
            "partner_id": partner.id,
            "from_stage_id": from_stage.id if from_stage else False,
            "to_stage_id": to_stage.id,
            "date": datetime(2015, 10, october_day, 12, 0),
            "reason_code": "manual",
            "company_id": cls.company.id,
        }

    def _row(self, period, dimension="all"):
        rows = self.Snapshot.search(
            [
                ("company_id", "=", self.company.id),
                ("period_kind", "=", period.kind),
                ("date_start", "=", period.start),
                ("dimension", "=", dimension),
            ]
        )
        self.assertEqual(len(rows), 1 if dimension == "all" else len(rows))
        return rows

    # -- tests ---------------------------------------------------------------

    def test_october_by_hand(self):
        """Every KPI of October, computed by hand from the story above."""
        self.Snapshot._cron_snapshots(companies=self.company, today=NIGHT)
        row = self._row(OCTOBER)
        self.assertEqual(row.date_end, date(2015, 10, 31))
        self.assertEqual(row.date_computed, date(2015, 10, 31))
        self.assertTrue(row.is_closed)
        kpi = row._mlm_kpi_value
        # Members: Anna (since 15/9) and Chloe (since 10/10, no order).
        self.assertEqual(kpi("members_total"), 2)
        self.assertEqual(kpi("members_new"), 1)
        # Active (an order in the 90 days to 31/10): Anna, Bram, Daan, Eva.
        self.assertEqual(kpi("active_customers"), 4)
        self.assertEqual(kpi("members_active"), 1)
        self.assertAlmostEqual(kpi("participation_rate"), 1 / 4)
        # October (local days): Anna 200 + 50, Daan 40, Eva 60.
        self.assertEqual(row.orders, 4)
        self.assertAlmostEqual(row.revenue, 350.0)
        self.assertEqual(row.member_orders, 2)
        self.assertAlmostEqual(row.member_revenue, 250.0)
        self.assertAlmostEqual(kpi("member_revenue_share"), 250 / 350)
        self.assertAlmostEqual(kpi("aov_members"), 125.0)
        self.assertAlmostEqual(kpi("aov_non_members"), 50.0)
        # September: Anna and Bram (Daan's order is October here); of them
        # Anna ordered again in October.
        self.assertEqual((row.ordered_before, row.retained), (2, 1))
        self.assertAlmostEqual(kpi("retention_rate"), 0.5)
        # 12 months to 31/10: Anna 3, Bram 1, Daan 1, Eva 2 orders.
        self.assertEqual((row.buyers_12m, row.repeat_buyers), (4, 2))
        self.assertAlmostEqual(kpi("repeat_purchase_rate"), 0.5)
        # Points: earned in October 200 + 50 + 40 + 60, in 12 months also
        # Anna's 100, Bram's 80 and Eva's 30; 100 redeemed, 20 expired.
        self.assertAlmostEqual(row.points_earned, 350.0)
        self.assertAlmostEqual(row.points_spent, 100.0)
        self.assertAlmostEqual(row.points_expired, 20.0)
        self.assertAlmostEqual(row.points_earned_12m, 560.0)
        self.assertAlmostEqual(kpi("redemption_rate"), 100 / 560)
        self.assertAlmostEqual(kpi("breakage_rate"), 20 / 560)
        # Outstanding: Anna 250, Bram 80, Daan 40, Eva 70; 0.01 a point.
        self.assertAlmostEqual(row.points_outstanding, 440.0)
        self.assertAlmostEqual(kpi("points_liability"), 4.40)
        # Bram churned; Eva was won back; Finn's first assignment is neither.
        self.assertEqual((kpi("churned"), kpi("won_back")), (1, 1))
        self.assertEqual(
            row.stage_flow,
            [
                [None, "winback", 1],
                ["growth", "winback", 1],
                ["onboarding", "growth", 1],
                ["winback", "growth", 1],
            ],
        )
        self.assertEqual(len(row.segment_grid), 12)

    def test_matches_reference_functions(self):
        """The SQL's customer KPIs equal tools/kpi.py's on the same orders."""
        self.Snapshot._mlm_backfill(self.company, today=TODAY)
        orders = [
            kpi_tools.Order(
                partner.id, kpi_tools.local_date(when, TZ), amount, is_refund=False
            )
            for partner, when, amount in self.history
        ]
        since = {self.anna.id: date(2015, 9, 15), self.chloe.id: date(2015, 10, 10)}
        for period in (OCTOBER, SEPTEMBER, kpi_tools.Period.quarter(2015, 3)):
            rows = kpi_tools.aggregate_orders(orders, period, since)
            expected = kpi_tools.compute_kpis(period, rows)
            row = self._row(period)
            for code in (
                "members_total",
                "members_new",
                "members_active",
                "active_customers",
                "participation_rate",
                "member_revenue_share",
                "retention_rate",
                "repeat_purchase_rate",
                "aov_members",
                "aov_non_members",
            ):
                with self.subTest(period=period.kind, kpi=code):
                    value = row._mlm_kpi_value(code)
                    if expected[code] is None:
                        self.assertIsNone(value)
                    else:
                        self.assertAlmostEqual(value, expected[code])

    def test_undefined_is_not_zero(self):
        """A company without orders: rates have no value, counts are 0."""
        other = self.env["res.company"].create({"name": "Empty Co"})
        self.Snapshot._cron_snapshots(companies=other, today=NIGHT)
        row = self.Snapshot.search(
            [
                ("company_id", "=", other.id),
                ("period_kind", "=", "month"),
                ("dimension", "=", "all"),
            ]
        )
        self.assertEqual(len(row), 1)
        self.assertEqual(row._mlm_kpi_value("members_total"), 0)
        for code in ("retention_rate", "aov_members", "redemption_rate", "average_clv"):
            self.assertIsNone(row._mlm_kpi_value(code), code)

    def test_backfill(self):
        """The backfill writes the closed months (and quarters, years,
        weeks) from the orders and the ledger; September as a hand check."""
        self.Snapshot._mlm_backfill(self.company, today=TODAY)
        months = self.Snapshot.search(
            [
                ("company_id", "=", self.company.id),
                ("period_kind", "=", "month"),
                ("dimension", "=", "all"),
            ]
        )
        self.assertEqual(len(months), 25)  # 24 closed + October
        self.assertEqual(min(months.mapped("date_start")), date(2013, 10, 1))
        row = self._row(SEPTEMBER)
        self.assertTrue(row.is_closed)
        # Anna 100 (before she joined) and Bram 80; Daan's order is October.
        self.assertEqual((row.orders, row.revenue), (2, 180.0))
        self.assertEqual((row.member_orders, row.member_revenue), (0, 0.0))
        self.assertEqual(row.members_total, 1)
        self.assertAlmostEqual(row.points_earned, 180.0)
        # Outstanding at the end of September: Anna 100, Bram 80, Eva 30.
        self.assertAlmostEqual(row.points_outstanding, 210.0)
        # Stage distribution at the end of October from the history.
        self.assertFalse(
            self.Snapshot.search_count(
                [
                    ("period_kind", "=", "week"),
                    ("dimension", "!=", "all"),
                    ("is_closed", "=", True),
                ]
            )
        )
        # Run twice: the same rows, no duplicates.
        count = self.Snapshot.search_count([])
        self.Snapshot._mlm_backfill(self.company, today=TODAY)
        self.assertEqual(self.Snapshot.search_count([]), count)

    def test_dimension_rows_add_up(self):
        """The rows per segment add up to the whole, for additive figures."""
        self.env["loyalty.mlm.partner.score"].with_context(
            mlm_scores_only=True
        )._cron_refresh_scores(companies=self.company)
        self.Snapshot._cron_snapshots(companies=self.company, today=NIGHT)
        whole = self._row(OCTOBER)
        segments = self._row(OCTOBER, "segment")
        self.assertTrue(segments)
        scored = sum(segments.mapped("customers"))
        self.assertEqual(scored, whole.customers)
        self.assertTrue(all(row._mlm_kpi_value("churned") is None for row in segments))
        # Average CLV: the mean of the company's scored customers' CLV.
        scores = self.env["loyalty.mlm.partner.score"].search(
            [("company_id", "=", self.company.id)]
        )
        self.assertTrue(scores)
        self.assertAlmostEqual(
            whole._mlm_kpi_value("average_clv"),
            sum(scores.mapped("clv")) / len(scores),
            places=2,
        )
        # Stage distribution: the contacts' current stages, every stage.
        self.assertEqual(
            sum(whole.stage_distribution.values()),
            self.env["res.partner"].search_count(
                [
                    ("mlm_stage_id", "!=", False),
                    ("company_id", "in", [False, self.company.id]),
                ]
            ),
        )

    def test_backfill_button_is_for_managers(self):
        with self.assertRaises(AccessError):
            self.Snapshot.with_user(self.user_loyalty).action_backfill()
        self.assertTrue(self.Snapshot.with_user(self.user_manager).action_backfill())

    def test_history_views(self):
        """The KPI History opens for a Loyalty User, months of the company
        first; a user outside the app cannot read it."""
        action = self.env.ref("loyalty_mlm.loyalty_mlm_kpi_snapshot_action")
        Snapshot = self.Snapshot.with_user(self.user_loyalty)
        views = Snapshot.get_views(
            [(False, kind) for kind in ("graph", "pivot", "list", "search")]
        )
        self.assertEqual(set(views["views"]), {"graph", "pivot", "list", "search"})
        self.Snapshot._mlm_backfill(self.company, today=TODAY)
        groups = Snapshot.read_group(
            [("period_kind", "=", "month"), ("dimension", "=", "all")],
            ["revenue:sum"],
            ["date_start:year"],
        )
        self.assertEqual(
            {g["date_start:year"]: g["revenue"] for g in groups}["2015"], 530.0
        )
        self.assertIn("search_default_month", action.context)
        with self.assertRaises(AccessError):
            self.Snapshot.with_user(self.user_plain).search([])


@tagged("post_install", "-at_install")
class TestKpiSnapshotPos(LoyaltyMlmPosCommon):
    """Paid POS orders count, a POS refund lowers the revenue of its day
    without being an order, and a walk-in order is revenue of nobody."""

    def test_pos_orders_and_refunds(self):
        self.company.partner_id.tz = "UTC"
        bought = self.sync([(self.product, 3)])
        refund = self.sync(
            [
                {
                    "product": self.product,
                    "quantity": -1,
                    "refunded_orderline_id": bought.lines[0].id,
                }
            ]
        )
        data = self.create_ui_order_data([(self.product, 2)], customer=False)
        result = self.env["pos.order"].sync_from_ui([data])
        walk_in = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        for order, day in ((bought, 10), (refund, 12), (walk_in, 14)):
            order.date_order = datetime(2015, 10, day, 12, 0)
        self.member.mlm_member_since = date(2015, 10, 1)
        Snapshot = self.env["loyalty.mlm.kpi.snapshot"]
        Snapshot._cron_snapshots(companies=self.company, today=NIGHT)
        row = Snapshot.search(
            [
                ("company_id", "=", self.company.id),
                ("period_kind", "=", "month"),
                ("date_start", "=", OCTOBER.start),
                ("dimension", "=", "all"),
            ]
        )
        # Orders: the member's and the walk-in's; the refund is not one.
        self.assertEqual((row.orders, row.revenue), (2, 40.0))
        self.assertEqual((row.member_orders, row.member_revenue), (1, 20.0))
        self.assertEqual((row.active_customers, row.members_active), (1, 1))
        self.assertAlmostEqual(row._mlm_kpi_value("aov_members"), 20.0)
        self.assertAlmostEqual(row._mlm_kpi_value("aov_non_members"), 20.0)
        self.assertAlmostEqual(row._mlm_kpi_value("member_revenue_share"), 0.5)
