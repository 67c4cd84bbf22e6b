from odoo.tests import tagged

from odoo.addons.point_of_sale.tests.test_frontend import TestPointOfSaleHttpCommon


@tagged("post_install", "-at_install")
class TestPosMemberBadge(TestPointOfSaleHttpCommon):
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
        member, blocked = cls.env["res.partner"].create(
            [{"name": "Badge Member"}, {"name": "Blocked Member"}]
        )
        (member | blocked)._mlm_enroll(company)
        member.mlm_card_id._mlm_adjust(120.0, "Opening")
        blocked.mlm_card_id._mlm_adjust(-30.0, "Taken back after spending")
        (member | blocked)._mlm_move(growth, "active")
        cls.walk_in = cls.env["res.partner"].create({"name": "Walk-in Customer"})

    def test_member_badge(self):
        self.main_pos_config.with_user(self.pos_user).open_ui()
        self.start_pos_tour("LoyaltyMlmPosBadgeTour", login="pos_user")
        self.assertTrue(self.walk_in.mlm_member_since)
        self.assertEqual(len(self.walk_in.mlm_card_id), 1)

    def test_partial_redemption(self):
        self.main_pos_config.with_user(self.pos_user).open_ui()
        self.start_pos_tour("LoyaltyMlmPosRedeemTour", login="pos_user")


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
        cls.promo = cls.env["loyalty.program"].create(
            {
                "name": "Welcome back",
                "program_type": "promotion",
                "trigger": "auto",
                "applies_on": "current",
                "company_id": cls.env.company.id,
                "mlm_stage_ids": [(6, 0, cls.env.ref("loyalty_mlm.stage_winback").ids)],
                "rule_ids": [
                    (5, 0, 0),
                    (
                        0,
                        0,
                        {
                            "minimum_qty": 1,
                            "reward_point_mode": "order",
                            "reward_point_amount": 1,
                        },
                    ),
                ],
                "reward_ids": [
                    (5, 0, 0),
                    (
                        0,
                        0,
                        {
                            "reward_type": "discount",
                            "discount": 15,
                            "discount_mode": "percent",
                            "discount_applicability": "order",
                            "required_points": 1,
                        },
                    ),
                ],
            }
        )
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
        cls.winback_customer._mlm_move(
            cls.env.ref("loyalty_mlm.stage_winback"), "lapsed"
        )
        cls.growth_customer._mlm_move(cls.env.ref("loyalty_mlm.stage_growth"), "active")

    def test_winback_promotion(self):
        self.main_pos_config.with_user(self.pos_user).open_ui()
        self.start_pos_tour("LoyaltyMlmTargetedPromotionTour", login="pos_user")
        order = self.env["pos.order"].search(
            [("partner_id", "=", self.winback_customer.id)]
        )
        self.assertEqual(order.state, "paid")
        self.assertEqual(order.amount_total, 4.08)
        self.assertEqual(order.lines.reward_id, self.promo.reward_ids)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})
