from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon, winback_promotion

# Reading the targeted programmes of a page of customers (any size): the
# customers, their commercial entities' stages, tiers, scores, the programmes.
# 8 since the stage is per company (#21): a company-dependent field, fetched
# apart from the contact's other fields (in one query for the page).
QUERIES_PER_PAGE = 8


@tagged("post_install", "-at_install")
class TestTargetedProgramsSale(LoyaltyMlmCommon):
    """A Winback-only promotion on sale orders.

    =========  =========  ===========================================
    contact    stage      what it shows
    =========  =========  ===========================================
    partner    Winback    eligible: gets 15% off
    partner_b  Growth     not eligible: no discount, a clear reason
    =========  =========  ===========================================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.winback = cls.env.ref("loyalty_mlm.stage_winback")
        cls.growth = cls.env.ref("loyalty_mlm.stage_growth")
        cls.promo = winback_promotion(cls.env, cls.company)
        # Out of reach: the Reward button then only has the promotion to apply
        # (an order's own points may pay for member rewards at once).
        cls.reward.required_points = 100000
        (cls.partner | cls.partner_b)._mlm_enroll(cls.company)
        cls.winback._mlm_move(cls.partner, "lapsed")
        cls.growth._mlm_move(cls.partner_b, "active")

    def reward_lines(self, order):
        return order.order_line.filtered(
            lambda line: line.reward_id.program_id == self.promo
        )

    def test_restriction_fields(self):
        self.assertEqual(self.promo.mlm_restricted, True)
        self.assertEqual(
            self.promo._mlm_partner_domain(),
            [("commercial_partner_id.mlm_stage_id", "in", self.winback.ids)],
        )
        self.assertEqual(self.promo._is_partner_valid(self.partner), True)
        self.assertEqual(self.promo._is_partner_valid(self.partner_b), False)
        self.assertEqual(self.promo._is_partner_valid(self.env["res.partner"]), False)
        self.promo.mlm_stage_ids = False
        self.assertEqual(self.promo.mlm_restricted, False)
        self.assertEqual(self.promo._is_partner_valid(self.partner_b), True)

    def test_eligible_customer_gets_the_promotion(self):
        order = self.make_order(self.partner)
        order.action_open_reward_wizard()
        self.assertEqual(self.reward_lines(order).price_subtotal, -15.0)
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self.assertEqual(order.amount_untaxed, 85.0)
        self.assertEqual(self.card_of(self.partner).points, 85.0)
        self.assertLedgerInvariant()

    def test_customer_not_eligible_gets_nothing_and_why(self):
        order = self.make_order(self.partner_b)
        order.action_open_reward_wizard()
        self.assertEqual(len(self.reward_lines(order)), 0)
        status = order._program_check_compute_points(self.promo)[self.promo]
        self.assertEqual(
            status["error"],
            "Bram Member is not eligible for the programme Welcome back "
            "(only for: Winback).",
        )
        result = order._try_apply_program(self.promo)
        self.assertEqual(result["error"], status["error"])
        order.action_confirm()
        self.assertEqual(order.amount_untaxed, 100.0)
        self.assertEqual(self.card_of(self.partner_b).points, 100.0)
        self.assertLedgerInvariant()

    def test_stage_change_between_quote_and_confirmation(self):
        order = self.make_order(self.partner)
        order.action_open_reward_wizard()
        self.assertEqual(self.reward_lines(order).price_subtotal, -15.0)
        # The customer ordered elsewhere meanwhile: no longer Winback.
        self.growth._mlm_move(self.partner, "active")
        with self.assertRaises(UserError) as caught:
            order.action_confirm()
        self.assertEqual(
            str(caught.exception),
            f"{order.name} cannot be confirmed: Anna Member is not eligible for "
            "the programme Welcome back (only for: Winback). Click Reward to "
            "update the promotions, check the new total with the customer, then "
            "confirm again.",
        )
        # Nothing confirmed, nothing posted, the quote untouched.
        self.assertEqual(order.state, "draft")
        self.assertEqual(self.reward_lines(order).price_subtotal, -15.0)
        self.assertEqual(self.card_of(self.partner).points, 0.0)
        self.assertEqual(len(self.ledger(res_model="sale.order", res_id=order.id)), 0)
        # Updating the promotions drops the reward; the order confirms.
        order.action_open_reward_wizard()
        self.assertEqual(len(self.reward_lines(order)), 0)
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self.assertEqual(order.amount_untaxed, 100.0)
        self.assertEqual(self.card_of(self.partner).points, 100.0)
        self.assertLedgerInvariant()

    def test_stage_change_blocks_a_next_order_coupon(self):
        """Points for later (a next-order coupon) are a grant too."""
        self.promo.active = False
        coupons = self.env["loyalty.program"].create(
            {
                "name": "Come back soon",
                "program_type": "next_order_coupons",
                "trigger": "auto",
                "applies_on": "future",
                "mlm_stage_ids": [(6, 0, self.winback.ids)],
                "rule_ids": [(5, 0, 0), (0, 0, {"minimum_qty": 1})],
                "reward_ids": [
                    (5, 0, 0),
                    (0, 0, {"reward_type": "discount", "discount": 10}),
                ],
            }
        )
        order = self.make_order(self.partner)
        entry = order.coupon_point_ids.filtered(
            lambda entry: entry.coupon_id.program_id == coupons
        )
        self.assertEqual(entry.points, 1.0)
        self.growth._mlm_move(self.partner, "active")
        with self.assertRaisesRegex(UserError, "Come back soon"):
            order.action_confirm()
        self.assertEqual(order.state, "draft")
        order.action_open_reward_wizard()
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        cards = self.env["loyalty.card"].search([("program_id", "=", coupons.id)])
        self.assertEqual(cards.filtered("points"), self.env["loyalty.card"])
        self.assertLedgerInvariant()

    def test_becoming_eligible_after_the_quote(self):
        order = self.make_order(self.partner_b)
        order.action_open_reward_wizard()
        self.assertEqual(len(self.reward_lines(order)), 0)
        self.winback._mlm_move(self.partner_b, "lapsed")
        order.action_open_reward_wizard()
        self.assertEqual(self.reward_lines(order).price_subtotal, -15.0)
        order.action_confirm()
        self.assertEqual(order.state, "sale")

    def test_coupon_code_of_targeted_programme(self):
        coupons = self.env["loyalty.program"].create(
            {
                "name": "Come back soon",
                "program_type": "coupons",
                "trigger": "with_code",
                "applies_on": "current",
                "mlm_stage_ids": [(6, 0, self.winback.ids)],
                "reward_ids": [
                    (5, 0, 0),
                    (0, 0, {"reward_type": "discount", "discount": 10}),
                ],
            }
        )
        self.env["loyalty.card"].create(
            [
                {"program_id": coupons.id, "code": code, "points": 1}
                for code in ("BACK-0001", "BACK-0002")
            ]
        )
        refused = self.make_order(self.partner_b)._try_apply_code("BACK-0001")
        self.assertEqual(
            refused["error"],
            "Bram Member is not eligible for the programme Come back soon "
            "(only for: Winback).",
        )
        accepted = self.make_order(self.partner)._try_apply_code("BACK-0002")
        self.assertEqual(accepted.get("error"), None)

    def test_scores_tiers_and_free_domain_combine(self):
        """Every restriction that is set must pass; the free domain is OCA's
        partner_domain."""
        belgium = self.env.ref("base.be")
        self.partner.country_id = belgium
        self.partner_b.country_id = belgium
        self.env["loyalty.mlm.partner.score"].create(
            [
                {
                    "partner_id": partner.id,
                    "company_id": self.company.id,
                    "score_date": "2026-01-01",
                    "usage_segment": segment,
                    "quadrant": "true_friend",
                }
                for partner, segment in (
                    (self.partner, "heavy"),
                    (self.partner_b, "low"),
                )
            ]
        )
        self.env["res.partner"].invalidate_model()
        self.promo.write(
            {
                "mlm_stage_ids": [(5, 0, 0)],
                "mlm_segment_heavy": True,
                "mlm_quadrant_true_friend": True,
                "partner_domain": "[('country_id.code', '=', 'BE')]",
            }
        )
        self.assertEqual(self.promo._is_partner_valid(self.partner), True)
        self.assertEqual(self.promo._is_partner_valid(self.partner_b), False)
        self.assertEqual(self.promo.mlm_eligible_count, 1)
        self.partner.country_id = self.env.ref("base.nl")
        self.assertEqual(self.promo._is_partner_valid(self.partner), False)
        self.partner.country_id = belgium
        gold = self.env.ref("loyalty_mlm.loyalty_mlm_tier_gold")
        self.promo.mlm_tier_ids = gold
        self.assertEqual(self.promo._is_partner_valid(self.partner), False)
        self.partner.sudo().mlm_tier_id = gold
        self.assertEqual(self.promo._is_partner_valid(self.partner), True)
        self.assertEqual(
            self.promo._mlm_restriction_summary(),
            "Gold; Heavy user; True Friend; selected customers",
        )


@tagged("post_install", "-at_install")
class TestTargetedProgramsPos(LoyaltyMlmPosCommon):
    """The register's side: the partner data, the order sync, coupon codes."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.winback = cls.env.ref("loyalty_mlm.stage_winback")
        cls.growth = cls.env.ref("loyalty_mlm.stage_growth")
        cls.promo = winback_promotion(cls.env, cls.company)
        cls.winback._mlm_move(cls.member, "lapsed")
        cls.other = cls.env["res.partner"].create({"name": "Growth Customer"})
        cls.growth._mlm_move(cls.other, "active")
        cls.pos_user = new_test_user(
            cls.env,
            login="mlm_cashier",
            groups="base.group_user,point_of_sale.group_pos_user",
            company_id=cls.company.id,
            company_ids=[(6, 0, cls.company.ids)],
        )

    def promo_line(self, discount=1.5):
        reward = self.promo.reward_ids
        return {
            "product": reward.discount_line_product_id,
            "quantity": 1,
            "is_reward_line": True,
            "reward_id": reward.id,
            "reward_identifier_code": "PROMO",
            "points_cost": 0,
            "price_unit": -discount,
            "price_subtotal": -discount,
            "price_subtotal_incl": -discount,
        }

    def promo_order(self, customer):
        data = self.create_ui_order_data(
            [(self.product, 1), self.promo_line()], customer=customer
        )
        for key in ("price_unit", "price_subtotal", "price_subtotal_incl"):
            data["lines"][1][2][key] = -1.5
        data["amount_total"] = data["amount_paid"] = 8.5
        data["payment_ids"][0][2]["amount"] = 8.5
        return data

    def test_partner_data_lists_eligible_programmes(self):
        self.assertIn(
            "mlm_pos_program_ids",
            self.env["res.partner"]._load_pos_data_fields(self.config.id),
        )
        self.assertIn(
            "mlm_restricted",
            self.env["loyalty.program"]._load_pos_data_fields(self.config.id),
        )
        partners = (self.member | self.other).with_user(self.pos_user)
        self.assertEqual(
            partners.read(["mlm_pos_program_ids"]),
            [
                {"id": self.member.id, "mlm_pos_program_ids": [self.promo.id]},
                {"id": self.other.id, "mlm_pos_program_ids": False},
            ],
        )

    def test_partner_data_query_count_does_not_grow(self):
        """The register loads customers in pages: the eligibility of a page
        costs the same few queries whatever its size."""
        many = self.env["res.partner"].create(
            [{"name": f"Customer {i}"} for i in range(40)]
        )
        self.winback._mlm_move(many[:20], "lapsed")
        many = many.with_user(self.pos_user)

        def read(partners):
            self.env.invalidate_all()
            return partners.read(["mlm_pos_program_ids"])

        read(many[:5])  # warm up: the registry's first reads
        with self.assertQueryCount(QUERIES_PER_PAGE):
            read(many[:5])
        with self.assertQueryCount(QUERIES_PER_PAGE):
            result = read(many)
        self.assertEqual(
            [row["mlm_pos_program_ids"] for row in result],
            [[self.promo.id]] * 20 + [False] * 20,
        )

    def test_register_targeted_programmes_follow_changes(self):
        """The order sync asks every time which programmes of the register
        are targeted: cached, and cleared when a programme changes."""
        Config = self.env["pos.config"]
        self.assertEqual(
            Config._mlm_targeted_program_ids(self.config.id), (self.promo.id,)
        )
        self.promo.mlm_stage_ids = False  # everybody: no longer targeted
        self.assertEqual(Config._mlm_targeted_program_ids(self.config.id), ())
        self.promo.mlm_stage_ids = self.winback
        other = self.config.copy({"name": "Other Register"})
        self.promo.pos_config_ids = other
        self.assertEqual(Config._mlm_targeted_program_ids(self.config.id), ())
        self.assertEqual(Config._mlm_targeted_program_ids(other.id), (self.promo.id,))
        self.promo.action_archive()
        self.assertEqual(Config._mlm_targeted_program_ids(other.id), ())
        new = winback_promotion(self.env, self.company)
        self.assertEqual(Config._mlm_targeted_program_ids(self.config.id), (new.id,))

    def test_sync_without_targeted_programme_costs_nothing(self):
        """A register without targeted programmes: no eligibility query and
        nothing written on the order."""
        self.promo.action_archive()
        self.env["pos.config"]._mlm_targeted_program_ids(self.config.id)
        data = self.create_ui_order_data([(self.product, 1)], customer=self.member)
        with self.assertQueryCount(0):
            eligible = self.env["pos.order"]._mlm_check_targeted_programs(data)
        self.assertEqual(eligible, self.env["loyalty.program"])
        result = self.env["pos.order"].sync_from_ui([data])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        self.assertEqual(order.mlm_program_ids, self.env["loyalty.program"])

    def test_sync_eligible_order(self):
        result = self.env["pos.order"].sync_from_ui([self.promo_order(self.member)])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        self.assertEqual(order.state, "paid")
        self.assertEqual(order.amount_total, 8.5)
        self.assertEqual(order.lines.reward_id, self.promo.reward_ids)

    def test_sync_refuses_order_of_customer_not_eligible(self):
        orders = self.env["pos.order"].search_count([])
        entries = self.env["loyalty.mlm.ledger"].search_count([])
        cards = self.env["loyalty.card"].search_count([])
        with self.assertRaises(UserError) as caught:
            self.env["pos.order"].sync_from_ui([self.promo_order(self.other)])
        self.assertEqual(
            str(caught.exception),
            "Growth Customer is not eligible for the programme Welcome back "
            "(only for: Winback). The order was not saved: remove the reward and "
            "validate the order again.",
        )
        self.assertEqual(self.env["pos.order"].search_count([]), orders)
        self.assertEqual(self.env["loyalty.mlm.ledger"].search_count([]), entries)
        self.assertEqual(self.env["loyalty.card"].search_count([]), cards)

    def test_sync_refuses_targeted_reward_without_customer(self):
        with self.assertRaisesRegex(UserError, "select an eligible customer first"):
            self.env["pos.order"].sync_from_ui([self.promo_order(False)])

    def next_order_programme(self):
        return self.env["loyalty.program"].create(
            {
                "name": "Come back soon",
                "program_type": "next_order_coupons",
                "trigger": "auto",
                "applies_on": "future",
                "company_id": self.company.id,
                "mlm_stage_ids": [(6, 0, self.winback.ids)],
                "rule_ids": [(5, 0, 0), (0, 0, {"minimum_qty": 1})],
                "reward_ids": [
                    (5, 0, 0),
                    (0, 0, {"reward_type": "discount", "discount": 10}),
                ],
            }
        )

    def test_points_of_programme_not_eligible_are_not_given(self):
        coupons = self.next_order_programme()
        data = self.create_ui_order_data([(self.product, 1)], customer=self.other)
        result = self.env["pos.order"].sync_from_ui([data])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        payload = {
            "-1": {
                "points": 1,
                "program_id": coupons.id,
                "coupon_id": -1,
                "partner_id": self.other.id,
                "barcode": False,
            }
        }
        order.confirm_coupon_programs(payload)
        cards = self.env["loyalty.card"].search([("program_id", "=", coupons.id)])
        self.assertEqual(len(cards), 0)
        # The eligible customer gets the coupon.
        data = self.create_ui_order_data([(self.product, 1)], customer=self.member)
        result = self.env["pos.order"].sync_from_ui([data])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        # The order won the customer back (out of Winback) when it was paid;
        # the points are judged by what they were when it arrived.
        self.assertEqual(self.member.mlm_stage_id.code, "onboarding")
        self.assertEqual(order.mlm_program_ids, coupons | self.promo)
        payload["-1"]["partner_id"] = self.member.id
        order.confirm_coupon_programs(payload)
        cards = self.env["loyalty.card"].search([("program_id", "=", coupons.id)])
        self.assertEqual(cards.partner_id, self.member)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})

    def test_validate_refuses_points_on_card_not_eligible(self):
        coupons = self.next_order_programme()
        card = self.env["loyalty.card"].create(
            {"program_id": coupons.id, "partner_id": self.other.id, "points": 1}
        )
        result = self.env["pos.order"].validate_coupon_programs({card.id: -1}, [])
        self.assertEqual(result["successful"], False)
        self.assertEqual(
            result["payload"]["message"],
            "Growth Customer is not eligible for the programme Come back soon "
            "(only for: Winback).",
        )

    def test_use_coupon_code(self):
        coupons = self.next_order_programme()
        self.env["loyalty.card"].create(
            {"program_id": coupons.id, "code": "BACK-0001", "points": 1}
        )
        config = self.config.with_user(self.pos_user)
        args = ("BACK-0001", "2026-01-01 10:00:00")
        refused = config.use_coupon_code(*args, self.other.id, False)
        self.assertEqual(refused["successful"], False)
        self.assertEqual(
            refused["payload"]["error_message"],
            "Growth Customer is not eligible for the programme Come back soon "
            "(only for: Winback).",
        )
        accepted = config.use_coupon_code(*args, self.member.id, False)
        self.assertEqual(accepted["successful"], True)
        self.assertEqual(accepted["payload"]["program_id"], coupons.id)
