from freezegun import freeze_time

from odoo.exceptions import ValidationError
from odoo.tests import tagged

from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon


class CampaignMixin:
    def campaign(self, **values):
        # sudo: the POS fixtures run as a user without Members rights.
        return (
            self.env["loyalty.mlm.campaign"]
            .sudo()
            .create(
                {
                    "name": "Double points weekend",
                    "company_id": self.company.id,
                    # Saturday 7 June 2025 00:00 to Sunday 15 June 23:59:59 (UTC).
                    "date_start": "2025-06-07 00:00:00",
                    "date_end": "2025-06-15 23:59:59",
                    "tz": "UTC",
                    "weekday_sat": True,
                    "weekday_sun": True,
                    "multiplier": 2.0,
                    **values,
                }
            )
        )


@tagged("post_install", "-at_install")
class TestCampaigns(CampaignMixin, LoyaltyMlmCommon):
    """Campaign bonuses on sale orders: the window is checked at the moment of
    confirmation (the order's date)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["loyalty.mlm.campaign"].search([]).active = False
        # No tier bonus in these tests: everybody stays at x1.
        cls.env["loyalty.mlm.tier"].search([]).active = False
        cls.company.mlm_welcome_bonus = 0.0
        cls.categ_organic = cls.env["product.category"].create({"name": "Organic"})
        cls.categ_tea = cls.env["product.category"].create(
            {"name": "Tea", "parent_id": cls.categ_organic.id}
        )
        cls.tea = cls.env["product.product"].create(
            {
                "name": "Green Tea",
                "list_price": 100.0,
                "taxes_id": False,
                "categ_id": cls.categ_tea.id,
            }
        )

    def confirm_at(self, when, amount=100.0, partner=None):
        with freeze_time(when):
            order = self.make_order(partner=partner, amount=amount)
            order.action_confirm()
        return order

    def bonuses(self, order):
        return [
            (e.points, e.reason)
            for e in self.ledger(res_id=order.id, kind="campaign_bonus")
        ]

    def test_window_edges(self):
        self.campaign()
        before = self.confirm_at("2025-06-06 23:59:59")  # Friday, last second
        first = self.confirm_at("2025-06-07 00:00:00")  # first second
        last = self.confirm_at("2025-06-15 23:59:59")  # last second
        after = self.confirm_at("2025-06-16 00:00:00")  # over
        self.assertEqual(self.bonuses(before), [])
        self.assertEqual(
            self.bonuses(first), [(100.0, "Campaign Double points weekend (x2)")]
        )
        self.assertEqual(
            self.bonuses(last), [(100.0, "Campaign Double points weekend (x2)")]
        )
        self.assertEqual(self.bonuses(after), [])
        self.assertEqual(first.mlm_points_earned, 200.0)
        self.assertEqual(self.card_of().points, 600.0)
        self.assertLedgerInvariant()

    def test_weekday_filter_in_the_campaign_timezone(self):
        self.campaign(tz="Europe/Amsterdam", date_end="2025-06-20 00:00:00")
        tuesday = self.confirm_at("2025-06-10 12:00:00")
        # 22:30 UTC on Friday is 00:30 on Saturday in Amsterdam (UTC+2).
        saturday_night = self.confirm_at("2025-06-13 22:30:00")
        # 22:30 UTC on Sunday is already Monday in Amsterdam.
        monday_night = self.confirm_at("2025-06-15 22:30:00")
        self.assertEqual(self.bonuses(tuesday), [])
        self.assertEqual(len(self.bonuses(saturday_night)), 1)
        self.assertEqual(self.bonuses(monday_night), [])
        self.assertLedgerInvariant()

    def test_every_day_without_weekdays(self):
        self.campaign(weekday_sat=False, weekday_sun=False, multiplier=1.5)
        order = self.confirm_at("2025-06-10 12:00:00")
        self.assertEqual(
            self.bonuses(order), [(50.0, "Campaign Double points weekend (x1.5)")]
        )

    def test_weekday_change_applies_at_once(self):
        """The running windows are cached with their weekdays and timezone
        (no query on the days a campaign does not run): editing them is
        seen by the next order."""
        campaign = self.campaign(date_end="2025-06-20 00:00:00")
        tuesday = "2025-06-10 12:00:00"
        self.assertEqual(self.bonuses(self.confirm_at(tuesday)), [])
        campaign.weekday_tue = True
        self.assertEqual(len(self.bonuses(self.confirm_at(tuesday))), 1)
        # 23:30 UTC on Tuesday is Wednesday in Tokyo.
        campaign.tz = "Asia/Tokyo"
        self.assertEqual(self.bonuses(self.confirm_at("2025-06-10 23:30:00")), [])
        self.assertLedgerInvariant()

    def test_overlap_highest_multiplier_wins(self):
        self.campaign(name="Double")
        self.campaign(name="Triple", multiplier=3.0)
        order = self.confirm_at("2025-06-08 12:00:00")
        self.assertEqual(self.bonuses(order), [(200.0, "Campaign Triple (x3)")])
        self.assertEqual(order.mlm_points_earned, 300.0)
        self.assertLedgerInvariant()

    def test_overlap_per_line_with_categories(self):
        self.campaign(name="Double")
        self.campaign(name="Triple", multiplier=3.0)
        self.campaign(
            name="Organic x4",
            multiplier=4.0,
            categ_ids=[(6, 0, self.categ_organic.ids)],
        )
        with freeze_time("2025-06-08 12:00:00"):
            order = self.env["sale.order"].create(
                {
                    "partner_id": self.partner.id,
                    "order_line": [
                        (0, 0, {"product_id": self.tea.id, "price_unit": 100.0}),
                        (0, 0, {"product_id": self.product.id, "price_unit": 100.0}),
                    ],
                }
            )
            order._update_programs_and_rewards()
            order.action_confirm()
        # 200 points earned: the tea line (a subcategory of Organic) takes the
        # x4 campaign, the coffee line the x3 one; never both on one line.
        self.assertEqual(
            sorted(self.bonuses(order)),
            [(200.0, "Campaign Triple (x3)"), (300.0, "Campaign Organic x4 (x4)")],
        )
        self.assertEqual(order.mlm_points_earned, 700.0)
        self.assertLedgerInvariant()

    def test_restrictions(self):
        gold = self.env.ref("loyalty_mlm.loyalty_mlm_tier_gold")
        stages = self.env["loyalty.mlm.stage"]._by_code()
        self.campaign(name="Gold only", tier_ids=[(6, 0, gold.ids)])
        self.campaign(name="Growth only", stage_ids=[(6, 0, stages["growth"].ids)])
        self.campaign(name="POS only", channel="pos")
        order = self.confirm_at("2025-06-08 12:00:00")
        self.assertEqual(self.bonuses(order), [])
        # In the Growth stage, the stage campaign applies.
        self.partner.sudo().mlm_stage_id = stages["growth"]
        order = self.confirm_at("2025-06-08 13:00:00")
        self.assertEqual(self.bonuses(order), [(100.0, "Campaign Growth only (x2)")])

    def test_segment_restriction(self):
        if "mlm_usage_segment" not in self.env["res.partner"]._fields:
            self.skipTest("segment scores not installed")
        self.campaign(name="Heavy users", segment_heavy=True)
        order = self.confirm_at("2025-06-08 12:00:00")
        self.assertEqual(self.bonuses(order), [])
        self.partner.with_company(self.company).sudo().mlm_usage_segment = "heavy"
        order = self.confirm_at("2025-06-08 13:00:00")
        self.assertEqual(self.bonuses(order), [(100.0, "Campaign Heavy users (x2)")])

    def test_campaign_bonus_reversed_on_cancel(self):
        self.campaign()
        order = self.confirm_at("2025-06-08 12:00:00")
        with freeze_time("2025-06-09 09:00:00"):
            order._action_cancel()
        self.assertEqual(
            [(e.kind, e.points) for e in self.ledger(res_id=order.id)],
            [
                ("earn", 100.0),
                ("campaign_bonus", 100.0),
                ("reversal", -100.0),
                ("reversal", -100.0),
            ],
        )
        self.assertEqual(self.card_of().points, 0.0)
        self.assertLedgerInvariant()

    def test_constraints(self):
        with self.assertRaises(ValidationError):
            self.campaign(multiplier=1.0)
        with self.assertRaises(ValidationError):
            self.campaign(date_end="2025-06-01 00:00:00")

    def test_state(self):
        with freeze_time("2025-06-10 12:00:00"):
            campaign = self.campaign()
            self.assertEqual(campaign.state, "running")
            running = self.env["loyalty.mlm.campaign"].search(
                [("state", "=", "running")]
            )
            self.assertEqual(running, campaign)
        with freeze_time("2025-06-16 12:00:00"):
            campaign.invalidate_recordset(["state"])
            self.assertEqual(campaign.state, "done")


@tagged("post_install", "-at_install")
class TestCampaignsPos(CampaignMixin, LoyaltyMlmPosCommon):
    def test_pos_campaign_bonus(self):
        self.env["loyalty.mlm.tier"].sudo().search([]).active = False
        self.campaign(channel="pos")
        self.campaign(name="Sales orders only", channel="sale", multiplier=5.0)
        self.member._mlm_enroll(self.company)
        with freeze_time("2025-06-08 12:00:00"):
            order = self.sync([(self.product, 2)])
            card = self.card()
            result = order.confirm_coupon_programs(
                {
                    str(card.id): {
                        "points": 20.0,
                        "program_id": self.program.id,
                        "coupon_id": card.id,
                        "partner_id": self.member.id,
                    }
                }
            )
        self.assertEqual(
            [(e.kind, e.points) for e in self.entries(order)],
            [("earn", 20.0), ("campaign_bonus", 20.0)],
        )
        self.assertEqual(result["coupon_updates"][0]["points"], 40.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(self.card()), {})
