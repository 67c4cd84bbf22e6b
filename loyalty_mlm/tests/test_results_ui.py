import pathlib
from unittest.mock import patch

from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import ChromeBrowser
from odoo.tools import config

from . import test_cockpit


def results_screenshot_paths():
    """The run's screenshots folder, and docs/ of the repo when it is there."""
    paths = [pathlib.Path(config["screenshots"]) / "loyalty_mlm" / "results.png"]
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs"
    if docs.is_dir():
        paths.append(docs / "results.png")
    return paths


@tagged("post_install", "-at_install")
class TestResultsUi(HttpCase):
    """A Loyalty Manager opens the demo's measured treatment that works (the
    demo data builds its population and results)."""

    browser_size = "1440x1500"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        new_test_user(
            cls.env,
            login="mlm_results_manager",
            groups="loyalty_mlm.group_loyalty_mlm_manager,sales_team.group_sale_manager",
        )
        cls.rule = cls.env.ref("loyalty_mlm.treatment_results_call_demo")
        cls.rule.action_mlm_refresh_results()

    def test_demo_results(self):
        self.assertEqual(self.rule.mlm_verdict, "working")
        newsletter = self.env.ref("loyalty_mlm.treatment_results_newsletter_demo")
        newsletter.action_mlm_refresh_results()
        self.assertEqual(newsletter.mlm_verdict, "no_effect")

    def test_results_tour(self):
        paths = results_screenshot_paths()
        paths[0].unlink(missing_ok=True)
        handler = test_cockpit._console_with_screenshot(ChromeBrowser._handle_console)
        with (
            patch.object(
                test_cockpit, "cockpit_screenshot_paths", results_screenshot_paths
            ),
            patch.object(ChromeBrowser, "_handle_console", handler),
        ):
            self.start_tour(
                f"/odoo/action-loyalty_mlm.loyalty_mlm_treatment_action/{self.rule.id}",
                "loyalty_mlm_results_tour",
                login="mlm_results_manager",
            )
        self.assertEqual(paths[0].read_bytes()[:4], b"\x89PNG")
