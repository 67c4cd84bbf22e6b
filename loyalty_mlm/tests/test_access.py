from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon

# What a member's data looks like on a contact, per concern.
POINTS_FIELDS = ["mlm_points", "mlm_card_code", "mlm_card_id", "mlm_redemption_blocked"]
STAGE_TIER_FIELDS = ["mlm_stage_id", "mlm_stage_name", "mlm_tier_id", "mlm_tier_name"]
SCORE_FIELDS = ["mlm_rfm_code", "mlm_quadrant", "mlm_churn_risk", "mlm_clv"]
REPORT = "loyalty_mlm.loyalty_mlm_statement_report"


@tagged("post_install", "-at_install")
class TestAccess(LoyaltyMlmCommon):
    """Who reads members' data, prints statements and enrols, over the
    calls a client can make (RPC is `with_user` + a public method)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.salesperson = new_test_user(
            cls.env, login="mlm_acc_sales", groups="sales_team.group_sale_salesman"
        )
        cls.cashier = new_test_user(
            cls.env,
            login="mlm_acc_cashier",
            groups="base.group_user,point_of_sale.group_pos_user",
        )
        cls.portal = new_test_user(
            cls.env, login="mlm_acc_portal", groups="base.group_portal"
        )
        cls.partner._mlm_enroll(cls.company)
        cls.partner.mlm_card_id._mlm_adjust(40.0, "Opening")
        cls.env.invalidate_all()  # the balance on the contact is computed

    def test_internal_user_without_loyalty_group_reads_nothing(self):
        partner = self.partner.with_user(self.user_plain)
        for fname in POINTS_FIELDS + STAGE_TIER_FIELDS + SCORE_FIELDS:
            with self.subTest(field=fname), self.assertRaises(AccessError):
                partner.read([fname])
        # The client is not even told about them; searching by them is refused.
        fields = partner.fields_get()
        self.assertFalse([name for name in fields if name in POINTS_FIELDS])
        self.assertNotIn("mlm_quadrant", fields)
        for domain in (
            [("mlm_card_code", "=", self.partner.mlm_card_code)],
            [("mlm_quadrant", "=", "stranger")],
            [("mlm_stage_id", "!=", False)],
        ):
            with self.subTest(domain=domain), self.assertRaises(AccessError):
                partner.search(domain)
        # Leads and orders show the customer's scores and stage to loyalty
        # staff only (related fields take the groups of the contact's).
        for model in ("crm.lead", "sale.order"):
            for fname in ("mlm_quadrant", "mlm_rfm_code", "mlm_stage_id"):
                with self.subTest(model=model, field=fname):
                    self.assertFalse(
                        self.env[model]
                        ._fields[fname]
                        .is_accessible(self.env(user=self.user_plain))
                    )

    def test_views_load_without_loyalty_group(self):
        views = (
            self.env["res.partner"]
            .with_user(self.user_plain)
            .get_views([(False, "form"), (False, "list"), (False, "kanban")])
        )
        for view in views["views"].values():
            self.assertNotIn('name="mlm_points"', view["arch"])
            self.assertNotIn('name="mlm_rfm_code"', view["arch"])
        views = (
            self.env["res.partner"]
            .with_user(self.salesperson)
            .get_views([(False, "form")])
        )
        self.assertIn('name="mlm_points"', views["views"]["form"]["arch"])

    def test_loyalty_user_reads_members(self):
        values = self.partner.with_user(self.salesperson).read(
            POINTS_FIELDS + STAGE_TIER_FIELDS + SCORE_FIELDS
        )[0]
        self.assertEqual(values["mlm_points"], 40.0)
        self.assertEqual(values["mlm_card_code"], self.partner.mlm_card_code)

    def test_cashier_reads_the_badge_not_the_scores(self):
        partner = self.partner.with_user(self.cashier)
        values = partner.read(POINTS_FIELDS + STAGE_TIER_FIELDS)[0]
        self.assertEqual(values["mlm_points"], 40.0)
        with self.assertRaises(AccessError):
            partner.read(["mlm_quadrant"])

    def test_points_statement_needs_loyalty_user(self):
        report = self.env["ir.actions.report"]
        for user in (self.user_plain, self.cashier, self.portal):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                report.with_user(user)._render_qweb_html(REPORT, self.partner.ids)
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.env["loyalty.mlm.ledger"].with_user(user)._mlm_statement_entries(
                    self.partner
                )
        html = report.with_user(self.salesperson)._render_qweb_html(
            REPORT, self.partner.ids
        )[0]
        self.assertIn(b"Points statement", html)

    def test_enrol_needs_loyalty_user_or_cashier(self):
        target = self.partner_b
        for user in (self.user_plain, self.portal):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                target.with_user(user).action_mlm_enroll()
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                target.with_user(user).mlm_pos_enroll()
        self.assertFalse(self.card_of(target))
        with self.assertRaises(AccessError):
            target.with_user(self.cashier).action_mlm_enroll()
        # A portal user cannot even enrol themselves by RPC.
        with self.assertRaises(AccessError):
            self.portal.partner_id.with_user(self.portal).action_mlm_enroll()
        target.with_user(self.cashier).mlm_pos_enroll()
        self.assertEqual(len(self.card_of(target)), 1)
        other = self.env["res.partner"].create({"name": "Chloe"})
        other.with_user(self.salesperson).action_mlm_enroll()
        self.assertEqual(len(self.card_of(other)), 1)

    def test_welcome_bonus_not_paid_to_refused_enrolment(self):
        self.company.mlm_welcome_bonus = 50.0
        with self.assertRaises(AccessError):
            self.partner_b.with_user(self.portal).action_mlm_enroll()
        self.assertFalse(self.ledger(partner_id=self.partner_b.id))

    def test_orders_enrol_their_customer_as_the_salesperson(self):
        order = self.make_order(partner=self.partner_b, amount=30.0)
        order.user_id = self.salesperson
        order.with_user(self.salesperson).action_confirm()
        card = self.card_of(self.partner_b)
        self.assertEqual(card.points, 30.0)
        self.assertLedgerInvariant()

    def test_refresh_scores_needs_loyalty_user(self):
        with self.assertRaises(AccessError):
            self.partner.with_user(self.user_plain).action_mlm_refresh_scores()
        self.assertTrue(
            self.partner.with_user(self.salesperson).action_mlm_refresh_scores()
        )


@tagged("post_install", "-at_install")
class TestAccessPos(LoyaltyMlmPosCommon):
    """The register loads the badge fields for a cashier who has no loyalty
    group, and the points of a paid order land as the cashier."""

    def test_cashier_loads_partner_fields(self):
        cashier = new_test_user(
            self.env,
            login="mlm_acc_pos",
            groups="base.group_user,point_of_sale.group_pos_user",
        )
        self.member._mlm_enroll(self.company)
        partner = self.member.with_user(cashier)
        fnames = partner._load_pos_data_fields(self.config.id)
        self.assertIn("mlm_points", fnames)
        values = partner.read(fnames)[0]
        self.assertEqual(values["mlm_points"], 0.0)

    def test_cashier_confirms_points_but_cannot_write_them(self):
        cashier = new_test_user(
            self.env,
            login="mlm_acc_pos_points",
            groups="base.group_user,point_of_sale.group_pos_user",
            company_id=self.company.id,
            company_ids=[(6, 0, self.company.ids)],
        )
        order = self.sync([(self.product, 3)])
        card = self.card()
        order.with_user(cashier).confirm_coupon_programs(
            {
                str(card.id): {
                    "points": 30.0,
                    "program_id": self.program.id,
                    "coupon_id": card.id,
                    "partner_id": self.member.id,
                }
            }
        )
        self.assertEqual(card.points, 30.0)
        with self.assertRaises(AccessError):
            card.with_user(cashier).write({"points": 3000.0})
        with self.assertRaises(AccessError):
            self.member.with_user(cashier).read(["mlm_quadrant"])
        self.assertEqual(card.points, 30.0)
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(card), {})
