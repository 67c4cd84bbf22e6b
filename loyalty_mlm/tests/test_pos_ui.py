import base64
import pathlib
from datetime import date, timedelta
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged
from odoo.tests.common import ChromeBrowser
from odoo.tools import config

from odoo.addons.point_of_sale.tests.test_frontend import TestPointOfSaleHttpCommon

from .common import winback_promotion

SCREENSHOT_SIGNAL = "loyalty_mlm:screenshot"


def badge_screenshot_path():
    """Where the badge tour's screenshot goes: Odoo's screenshots folder (the
    harness points it into its run directory)."""
    return pathlib.Path(config["screenshots"]) / "loyalty_mlm" / "pos_badge.png"


def _console_with_screenshot(original):
    """ChromeBrowser's console handler, plus: on SCREENSHOT_SIGNAL, capture the
    page, save it and tell the tour (body.o_mlm_screenshot_done) to go on."""

    def handle(browser, type, args=None, **kwargs):  # pylint: disable=redefined-builtin
        original(browser, type, args=args, **kwargs)
        if not args or browser._from_remoteobject(args[0]) != SCREENSHOT_SIGNAL:
            return

        def save(future):
            path = badge_screenshot_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(future.result()["data"]))
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
class TestPosMemberBadge(TestPointOfSaleHttpCommon):
    """The cashier's view in headless Chromium.

    ==================  ===========================================================
    customer            what it stands for
    ==================  ===========================================================
    Badge Member        Growth, Gold, 120 points, referral code BADGE234, card
                        code MLMCARD77
    Blocked Member      -30 points: redemption blocked
    Walk-in Customer    no member yet
    Zzz Faraway Member  a member the register does not load (after 100 fillers)
    ==================  ===========================================================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        company = cls.env.company
        program = cls.env["loyalty.program"].create(
            {
                "name": "Shop Members",
                "program_type": "loyalty",
                "applies_on": "both",
                "company_id": company.id,
                "rule_ids": [
                    (0, 0, {"reward_point_mode": "money", "reward_point_amount": 1})
                ],
                "reward_ids": [
                    (
                        0,
                        0,
                        {
                            "reward_type": "discount",
                            "discount_mode": "per_point",
                            "discount": 0.01,
                            "required_points": 10,
                        },
                    )
                ],
            }
        )
        company.mlm_program_id = program
        growth = cls.env.ref("loyalty_mlm.stage_growth")
        cls.gold = cls.env.ref("loyalty_mlm.loyalty_mlm_tier_gold")
        cls.member, blocked, cls.faraway = cls.env["res.partner"].create(
            [
                {"name": "Badge Member"},
                {"name": "Blocked Member"},
                {"name": "Zzz Faraway Member"},
            ]
        )
        members = cls.member | blocked | cls.faraway
        members._mlm_enroll(company)
        cls.member.mlm_card_id._mlm_adjust(120.0, "Opening")
        blocked.mlm_card_id._mlm_adjust(-30.0, "Taken back after spending")
        growth._mlm_move(members, "active")
        cls.member.write({"mlm_referral_code": "BADGE234"})
        cls.faraway.write({"mlm_referral_code": "FARAWAY7"})
        cls.member.mlm_card_id.code = "MLMCARD77"
        cls.member.with_company(company).mlm_tier_id = cls.gold
        cls.walk_in = cls.env["res.partner"].create({"name": "Walk-in Customer"})
        # The register loads 100 customers: these push Zzz Faraway out.
        cls.env["res.partner"].create(
            [{"name": f"Zz Filler {index:03d}"} for index in range(100)]
        )
        # Cashiers who register customers may create and edit contacts.
        cls.pos_user.groups_id |= cls.env.ref("base.group_partner_manager")

    def test_member_badge(self):
        self.main_pos_config.with_user(self.pos_user).open_ui()
        badge_screenshot_path().unlink(missing_ok=True)
        handler = _console_with_screenshot(ChromeBrowser._handle_console)
        with patch.object(ChromeBrowser, "_handle_console", handler):
            self.start_pos_tour("LoyaltyMlmPosBadgeTour", login="pos_user")
        self.assertTrue(self.walk_in.mlm_member_since)
        self.assertEqual(len(self.walk_in.mlm_card_id), 1)
        self.assertEqual(badge_screenshot_path().read_bytes()[:4], b"\x89PNG")

    def test_partial_redemption(self):
        self.main_pos_config.with_user(self.pos_user).open_ui()
        self.start_pos_tour("LoyaltyMlmPosRedeemTour", login="pos_user")

    def test_customer_list_and_editor(self):
        self.main_pos_config.with_user(self.pos_user).open_ui()
        self.start_pos_tour("LoyaltyMlmPosCustomerListTour", login="pos_user")
        ivy = self.env["res.partner"].search([("name", "=", "Ivy Newcomer")])
        self.assertEqual(len(ivy), 1)
        self.assertEqual(ivy.mlm_birthdate, date(1990, 5, 14))
        self.assertEqual(ivy.mlm_referrer_id, self.member)

    def test_receipt(self):
        now = fields.Datetime.now()
        self.env["loyalty.mlm.campaign"].sudo().create(
            {
                "name": "Double points at the register",
                "company_id": self.env.company.id,
                "date_start": now - timedelta(days=1),
                "date_end": now + timedelta(days=1),
                "tz": "UTC",
                "multiplier": 2.0,
                "channel": "pos",
            }
        )
        self.main_pos_config.with_user(self.pos_user).open_ui()
        self.start_pos_tour("LoyaltyMlmPosReceiptTour", login="pos_user")
        order = self.env["pos.order"].search(
            [("partner_id", "=", self.member.id)], order="id desc", limit=1
        )
        self.assertEqual(
            order._mlm_receipt(),
            {
                "card_id": self.member.mlm_card_id.id,
                # 10 x 5.28 (tax included): 1 point per currency unit.
                "earned": 52.8,
                "tier_bonus": 26.4,
                "campaign_bonus": 52.8,
                "spent": 0.0,
                # Every posting of the order between the balance before it
                # and the new one: they add up.
                "previous": 120.0,
                "lines": [
                    {"kind": "earn", "label": "Points earned", "points": 52.8},
                    {"kind": "tier_bonus", "label": "Tier bonus", "points": 26.4},
                    {
                        "kind": "campaign_bonus",
                        "label": "Campaign bonus",
                        "points": 52.8,
                    },
                ],
                "balance": 252.0,
                "tier": "Gold",
                "referral_code": "BADGE234",
            },
        )
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})


@tagged("post_install", "-at_install")
class TestPosTargetedPromotion(TestPointOfSaleHttpCommon):
    """A Winback-only promotion at the register (see test_targeted_programs)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.letter_tray.taxes_id = False
        # Only this promotion (and the member programme) at the register.
        cls.env["loyalty.program"].search(
            [("id", "!=", cls.env.company.mlm_program_id.id)]
        ).write({"active": False})
        cls.promo = winback_promotion(cls.env, cls.env.company)
        cls.env["loyalty.program"].create(
            {
                "name": "Winback code",
                "program_type": "promo_code",
                "trigger": "with_code",
                "applies_on": "current",
                "company_id": cls.env.company.id,
                "mlm_stage_ids": [(6, 0, cls.env.ref("loyalty_mlm.stage_winback").ids)],
                "rule_ids": [
                    (5, 0, 0),
                    (0, 0, {"mode": "with_code", "code": "WELCOMEBACK"}),
                ],
                "reward_ids": [
                    (5, 0, 0),
                    (0, 0, {"reward_type": "discount", "discount": 10}),
                ],
            }
        )
        cls.winback_customer, cls.growth_customer = cls.env["res.partner"].create(
            [{"name": "Winback Customer"}, {"name": "Growth Customer"}]
        )
        cls.env.ref("loyalty_mlm.stage_winback")._mlm_move(
            cls.winback_customer, "lapsed"
        )
        cls.env.ref("loyalty_mlm.stage_growth")._mlm_move(cls.growth_customer, "active")

    def test_winback_promotion(self):
        self.main_pos_config.with_user(self.pos_user).open_ui()
        self.start_pos_tour("LoyaltyMlmTargetedPromotionTour", login="pos_user")
        order = self.env["pos.order"].search(
            [("partner_id", "=", self.winback_customer.id)]
        )
        self.assertEqual(order.state, "paid")
        self.assertEqual(order.amount_total, 4.08)
        self.assertEqual(order.lines.reward_id, self.promo.reward_ids)
