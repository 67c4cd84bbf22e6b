import base64
import math
import pathlib
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import ChromeBrowser
from odoo.tools import config

from ..models.loyalty_mlm_kpi_snapshot import KPI_FORMAT, KPI_SELECTION
from ..tools import kpi as kpi_tools
from .common import LoyaltyMlmCommon
from .test_pos_ui import SCREENSHOT_SIGNAL

MODEL = "loyalty.mlm.kpi.snapshot"

STAGE_DISTRIBUTION = {
    "acquisition": 184,
    "onboarding": 142,
    "growth": 486,
    "ambassadorship": 121,
    "retention": 203,
    "winback": 112,
}
STAGE_FLOW = [
    [None, "acquisition", 48],
    ["acquisition", "onboarding", 31],
    ["onboarding", "growth", 27],
    ["onboarding", "winback", 3],
    ["growth", "ambassadorship", 9],
    ["growth", "retention", 22],
    ["growth", "winback", 4],
    ["ambassadorship", "growth", 2],
    ["retention", "winback", 14],
    ["winback", "growth", 7],
]
SEGMENT_GRID = [
    ["heavy", "true_friend", 168, 48210.5],
    ["heavy", "butterfly", 74, 19875.0],
    ["heavy", "barnacle", 21, 3120.0],
    ["heavy", "stranger", 9, 1480.0],
    ["medium", "true_friend", 131, 17340.0],
    ["medium", "butterfly", 96, 11210.0],
    ["medium", "barnacle", 88, 6015.0],
    ["medium", "stranger", 57, 3870.0],
    ["low", "true_friend", 42, 2104.0],
    ["low", "butterfly", 65, 2860.0],
    ["low", "barnacle", 139, 3275.0],
    ["low", "stranger", 210, 2380.0],
]


def month_rows(env, company, months=13, scale=1.0, today=None):
    """One "all" snapshot per month, the current one (to date) last.

    Demo-like figures that grow month after month (i = 0 is the oldest);
    the row of 12 months ago has no won-back figure (undefined)."""
    today = today or fields.Date.context_today(env["res.users"])
    period = kpi_tools.Period.containing(today, "month")
    periods = [period]
    while len(periods) < months:
        periods.insert(0, periods[0].previous())
    vals_list = []
    for i, month in enumerate(periods):
        members = round((980 + 22 * i) * scale)
        clv_count = round((820 + 18 * i) * scale)
        outstanding = 742000.0 + 9500 * i
        vals_list.append(
            {
                "company_id": company.id,
                "period_kind": "month",
                "date_start": month.start,
                "date_end": month.last_day,
                "date_computed": min(today, month.last_day),
                "is_closed": month.last_day < today,
                "dimension": "all",
                "customers": members + 380,
                "members_total": members,
                "members_new": round(40 + 0.6 * i + 6 * math.sin(i / 2)),
                "members_active": round(members * (0.6 + 0.004 * i)),
                "active_customers": round(members * (0.6 + 0.004 * i)) + 305,
                "participation_rate": members / (members + 380),
                "member_revenue_share": 0.62 + 0.005 * i,
                "retention_rate": 0.55 + 0.003 * i + 0.012 * math.sin(i / 1.7),
                "repeat_purchase_rate": 0.38 + 0.006 * i,
                "aov_members": 61.5 + 0.75 * i,
                "aov_non_members": 46.0 + 0.25 * i + 0.8 * math.sin(i),
                "clv_sum": clv_count * (405.0 + 6 * i),
                "clv_count": clv_count,
                "average_clv": 405.0 + 6 * i,
                "redemption_rate": 0.31 + 0.007 * i,
                "breakage_rate": 0.094 - 0.002 * i,
                "points_earned": 52000.0 + 1400 * i + 2500 * (i % 3),
                "points_spent": 19500.0 + 900 * i,
                "points_expired": 4200.0 - 150 * i,
                "points_outstanding": outstanding,
                "points_liability": outstanding / 100,
                "churned": round(17 - 0.2 * i + 3 * math.sin(i / 1.3)),
                "won_back": round(6 + 0.15 * i + 2 * math.sin(i / 1.5)),
                "undefined_kpis": "won_back" if i == months - 13 else False,
                "stage_distribution": STAGE_DISTRIBUTION,
                "stage_flow": STAGE_FLOW,
                "segment_grid": SEGMENT_GRID,
            }
        )
    return env[MODEL].create(vals_list)


@tagged("post_install", "-at_install")
class TestCockpit(LoyaltyMlmCommon):
    """The cockpit's data and drill-downs, read from snapshots made here.

    ==========  ===========================================================
    rows        13 month snapshots ("all") of the main company, the current
                month last (to date); 12 months ago has won_back undefined
    company_b   a second company with its own rows (never shown in A)
    ==========  ===========================================================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Snapshot = cls.env[MODEL]
        cls.Cockpit = cls.env["loyalty.mlm.cockpit"]
        cls.Snapshot.search([]).unlink()
        cls.today = fields.Date.context_today(cls.Snapshot)
        cls.rows = month_rows(cls.env, cls.company, today=cls.today)
        cls.current = cls.rows[-1]
        cls.period = kpi_tools.Period.containing(cls.today, "month")

    def cockpit(self, user=None, **kwargs):
        return self.Cockpit.with_user(user or self.user_loyalty).get_cockpit_data(
            **kwargs
        )

    def kpi(self, data, code):
        return next(k for k in data["kpis"] if k["code"] == code)

    # -- the dict -------------------------------------------------------

    def test_labels_follow_kpi_selection(self):
        labels = self.Cockpit._mlm_kpi_labels()
        self.assertEqual(list(labels.items()), KPI_SELECTION)

    def test_current_month(self):
        data = self.cockpit()
        self.assertTrue(data["has_data"])
        self.assertFalse(data["can_compute"])
        self.assertEqual(
            data["period"]["date_start"], fields.Date.to_string(self.period.start)
        )
        self.assertEqual(
            data["period"]["date_end"], fields.Date.to_string(self.period.last_day)
        )
        self.assertFalse(data["period"]["next_start"])
        self.assertEqual(
            data["period"]["previous_start"],
            fields.Date.to_string(self.period.previous().start),
        )
        self.assertFalse(data["period"]["is_closed"])
        self.assertEqual(data["company"]["id"], self.company.id)
        self.assertEqual(data["company"]["currency"]["id"], self.company.currency_id.id)
        self.assertEqual(
            [k["code"] for k in data["kpis"]], [c for c, _l in KPI_SELECTION]
        )
        members = self.kpi(data, "members_total")
        self.assertEqual(members["value"], 1244)
        self.assertEqual(members["previous"], 1222)
        self.assertEqual(members["last_year"], 980)
        self.assertEqual(members["change_previous"], 22)
        self.assertAlmostEqual(members["relative_previous"], 22 / 1222)
        self.assertEqual(members["change_last_year"], 264)
        self.assertEqual(members["format"], KPI_FORMAT["members_total"])
        self.assertEqual(members["direction"], 1)
        self.assertEqual(members["label"], "Members")
        self.assertEqual(members["spark"], [980 + 22 * i for i in range(1, 13)])
        churned = self.kpi(data, "churned")
        self.assertEqual(churned["direction"], -1)
        # 12 months ago had no won-back figure: None (a dash), never 0.
        won_back = self.kpi(data, "won_back")
        self.assertIsNone(won_back["last_year"])
        self.assertIsNone(won_back["change_last_year"])
        self.assertEqual(won_back["value"], self.current.won_back)
        self.assertAlmostEqual(
            self.kpi(data, "retention_rate")["value"], self.current.retention_rate
        )

    def test_undefined_is_none(self):
        self.current.undefined_kpis = "retention_rate,aov_non_members"
        data = self.cockpit()
        retention = self.kpi(data, "retention_rate")
        self.assertIsNone(retention["value"])
        self.assertIsNone(retention["change_previous"])
        self.assertIsNone(retention["spark"][-1])
        self.assertIsNone(self.kpi(data, "aov_non_members")["value"])
        self.assertEqual(self.kpi(data, "members_total")["value"], 1244)

    def test_spark_gaps(self):
        """A period without a snapshot is None in the sparkline; before the
        first row too."""
        self.rows[5].unlink()
        data = self.cockpit()
        spark = self.kpi(data, "members_total")["spark"]
        self.assertEqual(len(spark), 12)
        self.assertIsNone(spark[4])
        self.assertEqual(spark[-1], 1244)
        quarter = self.cockpit(period_kind="quarter")
        self.assertFalse(quarter["has_data"])
        self.assertEqual(self.kpi(quarter, "members_total")["spark"], [None] * 12)

    def test_previous_month(self):
        previous = self.period.previous()
        data = self.cockpit(date_start=fields.Date.to_string(previous.start))
        self.assertEqual(
            data["period"]["next_start"], fields.Date.to_string(self.period.start)
        )
        self.assertTrue(data["period"]["is_closed"])
        self.assertEqual(self.kpi(data, "members_total")["value"], 1222)
        # Any day of the period will do.
        same = self.cockpit(date_start=fields.Date.to_string(previous.last_day))
        self.assertEqual(same["period"], data["period"])

    def test_funnel_flow_grid_points(self):
        data = self.cockpit()
        self.assertEqual(
            [(s["code"], s["count"]) for s in data["funnel"]],
            [
                ("acquisition", 184),
                ("onboarding", 142),
                ("growth", 486),
                ("ambassadorship", 121),
                ("retention", 203),
                ("winback", 112),
            ],
        )
        growth = self.env.ref("loyalty_mlm.stage_growth")
        self.assertEqual(data["funnel"][2]["stage_id"], growth.id)
        self.assertEqual(data["funnel"][2]["name"], growth.name)
        flow = data["flow"]
        self.assertEqual([r["from"] for r in flow["rows"]][:2], ["new", "acquisition"])
        self.assertEqual(len(flow["stages"]), 6)
        self.assertEqual(
            flow["rows"][0]["cells"][0], {"to": "acquisition", "count": 48}
        )
        self.assertEqual(flow["rows"][0]["total"], 48)
        growth_row = next(r for r in flow["rows"] if r["from"] == "growth")
        self.assertEqual(growth_row["total"], 9 + 22 + 4)
        self.assertEqual(flow["total"], sum(m[2] for m in STAGE_FLOW))
        grid = data["grid"]
        self.assertEqual(
            [q["code"] for q in grid["quadrants"]],
            ["true_friend", "butterfly", "barnacle", "stranger"],
        )
        self.assertEqual(
            [r["segment"] for r in grid["rows"]], ["heavy", "medium", "low"]
        )
        self.assertEqual(
            grid["rows"][2]["cells"][3],
            {"quadrant": "stranger", "customers": 210, "revenue": 2380.0},
        )
        points = data["points"]
        self.assertEqual(len(points), 12)
        self.assertEqual(
            points[-1]["date_start"], fields.Date.to_string(self.period.start)
        )
        self.assertEqual(points[-1]["earned"], 52000.0 + 1400 * 12)
        self.assertEqual(points[-1]["liability"], (742000.0 + 9500 * 12) / 100)
        self.assertTrue(all(p["has_data"] for p in points))

    def test_points_months_under_a_quarter(self):
        """The points chart shows months whatever the period kind."""
        data = self.cockpit(period_kind="year")
        self.assertEqual(
            data["points"][-1]["date_start"][:7], self.today.strftime("%Y-12")
        )
        quarter = self.cockpit(period_kind="quarter")
        self.assertEqual(
            quarter["points"][-1]["date_start"],
            fields.Date.to_string(
                kpi_tools.Period.containing(
                    kpi_tools.Period.containing(self.today, "quarter").last_day, "month"
                ).start
            ),
        )

    def test_no_data(self):
        self.rows.unlink()
        data = self.cockpit(user=self.user_manager)
        self.assertFalse(data["has_data"])
        self.assertTrue(data["can_compute"])
        self.assertEqual(self.kpi(data, "members_total")["value"], None)
        self.assertEqual([s["count"] for s in data["funnel"]], [0] * 6)
        self.assertEqual(data["flow"]["total"], 0)
        self.assertFalse(any(p["has_data"] for p in data["points"]))

    def test_goals(self):
        if "loyalty.mlm.goal" not in self.env:
            self.skipTest("loyalty.mlm.goal is not on this branch")
        goal = self.env["loyalty.mlm.goal"].create(
            {
                "name": "Retain more",
                "kpi": "retention_rate",
                "company_id": self.company.id,
                "target_type": "absolute",
                "target": 0.7,
                "baseline_date": self.today - timedelta(days=40),
                "deadline": self.today + timedelta(days=90),
            }
        )
        goals = self.cockpit()["goals"]
        mine = [g for g in goals if g["id"] == goal.id]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["kpi"], "retention_rate")
        self.assertEqual(mine[0]["format"], "percent")

    # -- arguments and access -------------------------------------------

    def test_bad_arguments(self):
        for kwargs in (
            {"period_kind": "decade"},
            {"period_kind": "custom"},
            {"period_kind": ["month"]},
            {"date_start": "2026-13-01"},
            {"date_start": "yesterday"},
            {"date_start": 20260101},
            {"date_start": "0001-01-01"},
        ):
            with self.subTest(**kwargs), self.assertRaises(UserError):
                self.cockpit(**kwargs)

    def test_access(self):
        with self.assertRaises(AccessError):
            self.cockpit(user=self.user_plain)
        with self.assertRaises(AccessError):
            self.Cockpit.with_user(self.user_plain).action_open_kpi(
                "members_total", "month", False
            )
        with self.assertRaises(AccessError):
            self.Snapshot.with_user(self.user_loyalty).action_backfill()

    def test_multi_company(self):
        company_b = self.env["res.company"].create({"name": "Shop B"})
        rows_b = month_rows(self.env, company_b, months=2, scale=3.0, today=self.today)
        self.user_loyalty.company_ids |= company_b
        data = self.cockpit()
        self.assertEqual(self.kpi(data, "members_total")["value"], 1244)
        data_b = (
            self.Cockpit.with_user(self.user_loyalty)
            .with_context(allowed_company_ids=[company_b.id, self.company.id])
            .get_cockpit_data()
        )
        self.assertEqual(data_b["company"]["id"], company_b.id)
        self.assertEqual(
            self.kpi(data_b, "members_total")["value"], rows_b[-1].members_total
        )
        # B's rows never fill A's gaps: only two months in B.
        self.assertEqual(self.kpi(data_b, "members_total")["spark"][:10], [None] * 10)

    # -- queries ----------------------------------------------------------

    def test_query_count(self):
        """Snapshots only: as many queries for 10 customers as for 1,000."""
        stage = self.env.ref("loyalty_mlm.stage_growth")
        for customers in (10, 1000):
            partners = self.env["res.partner"].create(
                [
                    {"name": f"Cockpit {customers} {n}", "mlm_member_since": self.today}
                    for n in range(customers)
                ]
            )
            partners.write({"mlm_stage_id": stage.id})
            self.current.write(
                {
                    "members_total": len(partners),
                    "stage_distribution": {"growth": len(partners)},
                }
            )
            snapshot = self.Cockpit.with_user(self.user_loyalty)
            self.env.invalidate_all()
            snapshot.get_cockpit_data()  # warm the ormcaches (rules, groups)
            self.env.invalidate_all()
            # user, partner, snapshots (search, read), stages (search, read),
            # the goals and their responsibles (4), company, its partner,
            # currency, the latest results and the NPS answers (issue #16).
            with self.assertQueryCount(15):
                data = snapshot.get_cockpit_data()
            self.assertEqual(self.kpi(data, "members_total")["value"], customers)

    # -- drill-down ---------------------------------------------------------

    def open(self, code, filters=None, kind="month", day=False):
        return self.Cockpit.with_user(self.user_loyalty).action_open_kpi(
            code, kind, day, filters
        )

    def test_open_members(self):
        first, last = self.period.start, self.period.last_day
        action = self.open("members_total")
        self.assertEqual(action["res_model"], "res.partner")
        self.assertEqual(action["views"][0][1], "list")
        self.assertEqual(
            action["domain"],
            [
                ("mlm_member_since", "!=", False),
                ("mlm_member_since", "<=", fields.Date.to_string(last)),
            ],
        )
        new = self.open("members_new")
        self.assertEqual(
            new["domain"][-1], ("mlm_member_since", ">=", fields.Date.to_string(first))
        )
        # The domain runs and finds the members who joined this month.
        partner = self.env["res.partner"].create(
            {"name": "Joined today", "mlm_member_since": self.today}
        )
        self.assertIn(partner, self.env["res.partner"].search(new["domain"]))

    def test_open_active_members(self):
        customer = self.env["res.partner"].create(
            {
                "name": "Active shopper",
                "mlm_member_since": self.today - timedelta(days=400),
            }
        )
        order = self.env["sale.order"].create(
            {
                "partner_id": customer.id,
                "order_line": [(0, 0, {"product_id": self.product.id})],
            }
        )
        order.action_confirm()
        idle = self.env["res.partner"].create(
            {"name": "Idle member", "mlm_member_since": self.today}
        )
        action = self.open("members_active")
        active = self.env["res.partner"].search(action["domain"])
        self.assertIn(customer, active)
        self.assertNotIn(idle, active)
        # With sales rights: the orders; without: the customers who ordered.
        Cockpit = self.Cockpit.with_user(self.user_manager)
        orders = Cockpit.action_open_kpi("aov_members", "month", False)
        self.assertEqual(orders["res_model"], "sale.order")
        found = self.env["sale.order"].search(orders["domain"])
        self.assertIn(order, found)
        others = Cockpit.action_open_kpi("aov_non_members", "month", False)
        self.assertNotIn(order, self.env["sale.order"].search(others["domain"]))
        buyers = self.open("retention_rate")
        self.assertEqual(buyers["res_model"], "res.partner")
        buyers = self.env["res.partner"].search(buyers["domain"])
        self.assertIn(customer, buyers)
        self.assertNotIn(idle, buyers)

    def test_open_stage_flow_grid_points(self):
        growth = self.env.ref("loyalty_mlm.stage_growth")
        winback = self.env.ref("loyalty_mlm.stage_winback")
        stage = self.open("stage", {"stage_id": growth.id})
        self.assertEqual(stage["domain"], [("mlm_stage_id", "=", growth.id)])
        flow = self.open("flow", {"from": "winback", "to": "growth"})
        self.assertEqual(flow["res_model"], "loyalty.mlm.stage.history")
        self.assertEqual(
            flow["domain"][-2:],
            [("from_stage_id", "=", winback.id), ("to_stage_id", "=", growth.id)],
        )
        new = self.open("flow", {"from": "new", "to": "acquisition"})
        self.assertIn(("from_stage_id", "=", False), new["domain"])
        grid = self.open("grid", {"segment": "heavy", "quadrant": "true_friend"})
        self.assertEqual(
            grid["domain"],
            [("mlm_usage_segment", "=", "heavy"), ("mlm_quadrant", "=", "true_friend")],
        )
        points = self.open("points_month", {"month": "2026-03-15", "kind": "expired"})
        self.assertEqual(points["res_model"], "loyalty.mlm.ledger")
        self.assertEqual(points["domain"][-1], ("kind", "in", ["expire"]))
        self.assertEqual(points["domain"][0], ("company_id", "=", self.company.id))
        liability = self.open("points_liability")
        self.assertEqual(liability["res_model"], "loyalty.card")
        churned = self.open("churned")
        self.assertIn(("to_stage_id", "=", winback.id), churned["domain"])
        won_back = self.open("won_back")
        self.assertIn(("from_stage_id", "=", winback.id), won_back["domain"])
        for code, _label in KPI_SELECTION:
            with self.subTest(code=code):
                action = self.open(code)
                # Every drill-down's domain is valid on its model.
                self.env[action["res_model"]].search_count(action["domain"])

    def test_open_bad_arguments(self):
        for code, filters in (
            ("revenue", None),
            ("drop table", None),
            (None, None),
            ("stage", {"stage_id": 0}),
            ("stage", None),
            ("flow", {"from": "growth", "to": "nowhere"}),
            ("grid", {"segment": "heavy", "quadrant": "friend"}),
            ("points_month", {"month": "soon"}),
            ("points_month", {"month": "2026-01-01", "kind": "stolen"}),
            ("members_total", ["not", "a", "dict"]),
        ):
            with self.subTest(code=code, filters=filters), self.assertRaises(UserError):
                self.open(code, filters)
        with self.assertRaises(UserError):
            self.open("members_total", kind="fortnight")


def cockpit_screenshot_paths():
    """The run's screenshots folder, and docs/ of the repo when it is there
    (the README shows it)."""
    paths = [pathlib.Path(config["screenshots"]) / "loyalty_mlm" / "cockpit.png"]
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs"
    if docs.is_dir():
        paths.append(docs / "cockpit.png")
    return paths


def _console_with_screenshot(original):
    """ChromeBrowser's console handler, plus: on SCREENSHOT_SIGNAL, capture
    the page into cockpit_screenshot_paths() and tell the tour to go on."""

    def handle(browser, type, args=None, **kwargs):  # pylint: disable=redefined-builtin
        original(browser, type, args=args, **kwargs)
        if not args or browser._from_remoteobject(args[0]) != SCREENSHOT_SIGNAL:
            return

        def save(future):
            png = base64.b64decode(future.result()["data"])
            for path in cockpit_screenshot_paths():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)
            browser._websocket_send(
                "Runtime.evaluate",
                params={
                    "expression": "document.body.classList.add('o_mlm_screenshot_done')"
                },
            )

        browser._websocket_send(
            "Page.captureScreenshot", with_future=True
        ).add_done_callback(save)

    return handle


@tagged("post_install", "-at_install")
class TestCockpitUi(HttpCase):
    """A Loyalty Manager opens the cockpit in Chromium; the screenshot of the
    current month goes to the README."""

    # Tall enough for the whole cockpit in one screenshot.
    browser_size = "1440x1640"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager = new_test_user(
            cls.env,
            login="mlm_cockpit_manager",
            groups="loyalty_mlm.group_loyalty_mlm_manager,sales_team.group_sale_manager",
        )
        cls.env[MODEL].search([]).unlink()
        cls.env.company.name = "Green Grocer"
        month_rows(cls.env, cls.env.company)
        # The demo goals, measured over the half year the rows cover.
        today = fields.Date.context_today(cls.env["res.users"])
        goals = cls.env["loyalty.mlm.goal"].search(
            [("company_id", "=", cls.env.company.id)]
        )
        goals.write(
            {
                "baseline_date": today - timedelta(days=190),
                "deadline": today + timedelta(days=150),
            }
        )
        goals._mlm_update_goals(cls.env.company)

    def test_cockpit_tour(self):
        paths = cockpit_screenshot_paths()
        paths[0].unlink(missing_ok=True)
        handler = _console_with_screenshot(ChromeBrowser._handle_console)
        with patch.object(ChromeBrowser, "_handle_console", handler):
            self.start_tour(
                "/odoo/action-loyalty_mlm.loyalty_mlm_dashboard_action",
                "loyalty_mlm_cockpit_tour",
                login="mlm_cockpit_manager",
            )
        self.assertEqual(paths[0].read_bytes()[:4], b"\x89PNG")
