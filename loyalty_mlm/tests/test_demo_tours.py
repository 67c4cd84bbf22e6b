"""The first screens of each demo login, on the demo data (`make demo`).

One tour per user (loyalty_mlm_demo_tours.js): the salesperson, in Dutch,
the admin, the cashier and the portal member. Their screenshots go to the
run's screenshots folder and to docs/ (the README shows them).
"""

import base64
import pathlib
import re
from contextlib import nullcontext
from unittest.mock import patch

from odoo.tests import HttpCase, tagged
from odoo.tests.common import ChromeBrowser
from odoo.tools import config

SIGNAL = re.compile(r"^loyalty_mlm:screenshot:(\w+)$")


def demo_screenshot_paths(name):
    """The run's screenshots folder, and docs/ of the repo when it is there."""
    paths = [pathlib.Path(config["screenshots"]) / "loyalty_mlm" / f"{name}.png"]
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs"
    if docs.is_dir():
        paths.append(docs / f"{name}.png")
    return paths


def _console_with_screenshots(original):
    """ChromeBrowser's console handler, plus: on `loyalty_mlm:screenshot:NAME`,
    capture the page into demo_screenshot_paths(NAME), then tell the tour to go
    on (body.o_mlm_shot_NAME)."""

    def handle(browser, type, args=None, **kwargs):  # pylint: disable=redefined-builtin
        original(browser, type, args=args, **kwargs)
        if not args:
            return
        match = SIGNAL.match(str(browser._from_remoteobject(args[0])))
        if not match:
            return
        name = match.group(1)

        def save(future):
            png = base64.b64decode(future.result()["data"])
            for path in demo_screenshot_paths(name):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)
            browser._websocket_send(
                "Runtime.evaluate",
                params={
                    "expression": f"document.body.classList.add('o_mlm_shot_{name}')"
                },
            )

        browser._websocket_send(
            "Page.captureScreenshot", with_future=True
        ).add_done_callback(save)

    return handle


def run_screenshot_tour(case, url, tour, login, shots=(), viewport=None):
    """Run `tour` from `url` as `login` in `case` (an HttpCase), taking the
    screenshots `shots` it asks for (see _console_with_screenshots); each
    must come out as a PNG. `viewport`: a context manager around the run
    (e.g. a phone's)."""
    for name in shots:
        for path in demo_screenshot_paths(name):
            path.unlink(missing_ok=True)
    handler = _console_with_screenshots(ChromeBrowser._handle_console)
    with (
        patch.object(ChromeBrowser, "_handle_console", handler),
        viewport or nullcontext(),
    ):
        case.start_tour(url, tour, login=login)
    for name in shots:
        png = demo_screenshot_paths(name)[0].read_bytes()
        case.assertEqual(png[:4], b"\x89PNG")


@tagged("post_install", "-at_install")
class TestDemoTours(HttpCase):
    """Runs on the demo data only: skipped in a database without it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.anna = cls.env.ref(
            "loyalty_mlm.res_partner_anna_demo", raise_if_not_found=False
        )
        if not cls.env.ref("loyalty_mlm.user_sales_demo", raise_if_not_found=False):
            cls.skipTest(cls, "no loyalty_mlm demo data in this database")

    def run_tour(self, url, tour, login, shots=()):
        run_screenshot_tour(self, url, tour, login, shots)

    def test_demo_data_tells_one_story(self):
        """One member balance, salespeople, the logins."""
        Program = self.env["loyalty.program"]
        member_programme = self.env.company.mlm_program_id
        self.assertEqual(
            Program.search([("program_type", "=", "loyalty")]), member_programme
        )
        self.assertFalse(Program.search([("program_type", "=", "next_order_coupons")]))
        members = self.env["res.partner"].search([("mlm_member_since", "!=", False)])
        self.assertFalse(members.filtered(lambda partner: not partner.user_id))
        self.assertEqual(
            self.env.ref("loyalty_mlm.user_portal_anna_demo").partner_id, self.anna
        )
        self.assertTrue(
            self.env.ref("loyalty_mlm.user_portal_anna_demo").has_group(
                "base.group_portal"
            )
        )

    def test_salesperson_in_dutch(self):
        self.run_tour(
            "/odoo", "loyalty_mlm_demo_sales", "sales", shots=["sales_members"]
        )

    def test_admin_set_stage(self):
        stage = self.anna.mlm_stage_id
        self.run_tour(
            "/odoo", "loyalty_mlm_demo_admin", "admin", shots=["admin_set_stage"]
        )
        self.assertEqual(self.anna.mlm_stage_id, stage)

    def test_admin_configuration_screens(self):
        """A treatment rule, the ledger, the treatments done and the member
        programme: nothing cut off, nothing shown twice."""
        rule = self.env.ref("loyalty_mlm.treatment_retention_heavy")
        self.assertEqual(rule.stage_days_max, 0)
        self.run_tour(
            f"/odoo/action-loyalty_mlm.loyalty_mlm_treatment_action/{rule.id}",
            "loyalty_mlm_demo_admin_treatment",
            "admin",
            shots=["admin_treatment"],
        )
        self.run_tour(
            "/odoo/action-loyalty_mlm.loyalty_mlm_ledger_action",
            "loyalty_mlm_demo_admin_ledger",
            "admin",
            shots=["admin_ledger"],
        )
        self.run_tour(
            "/odoo/action-loyalty_mlm.loyalty_mlm_treatment_log_action",
            "loyalty_mlm_demo_admin_treatment_log",
            "admin",
        )
        programme = self.env.company.mlm_program_id
        self.start_tour(
            f"/odoo/action-loyalty.loyalty_program_discount_loyalty_action/{programme.id}",
            "loyalty_mlm_demo_admin_programme",
            login="admin",
        )

    def test_salesperson_filters_in_dutch(self):
        self.run_tour(
            "/odoo/action-loyalty_mlm.res_partner_action_member",
            "loyalty_mlm_demo_sales_filters",
            "sales",
            shots=["sales_filters"],
        )

    def test_portal_member(self):
        self.run_tour("/my", "loyalty_mlm_demo_portal", "anna", shots=["portal_member"])

    def test_cashier(self):
        config_ = self.env.ref("point_of_sale.pos_config_main")
        cashier = self.env.ref("loyalty_mlm.user_cashier_demo")
        config_.with_user(cashier).open_ui()
        self.run_tour(
            f"/pos/ui?config_id={config_.id}",
            "loyalty_mlm_demo_cashier",
            "cashier",
            shots=["cashier_order", "cashier_receipt"],
        )
        order = self.env["pos.order"].search(
            [("partner_id", "=", self.anna.id)], order="id desc", limit=1
        )
        receipt = order._mlm_receipt()
        self.assertAlmostEqual(
            receipt["previous"] + sum(line["points"] for line in receipt["lines"]),
            receipt["balance"],
            places=2,
        )
