from odoo.tests import HttpCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestMembersAppUi(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_loyalty = new_test_user(
            cls.env,
            login="mlm_tour_user",
            password="mlm_tour_user",
            groups="loyalty_mlm.group_loyalty_mlm_user",
        )
        cls.env["res.partner"].create({"name": "Tour Customer", "customer_rank": 1})

    def test_loyalty_user_opens_members_app(self):
        """A Loyalty User opens the app in Chromium; any JS error fails the tour."""
        self.start_tour("/odoo", "loyalty_mlm_open_members_app", login="mlm_tour_user")


@tagged("post_install", "-at_install")
class TestTreatmentUi(HttpCase):
    """A salesperson sees the next best action on the contact and the lead."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.salesman = new_test_user(
            cls.env,
            login="mlm_tour_sales",
            password="mlm_tour_sales",
            groups="sales_team.group_sale_salesman",
        )
        Treatment = cls.env["loyalty.mlm.treatment"]
        Treatment.search([]).active = False
        growth = cls.env.ref("loyalty_mlm.stage_growth")
        Treatment.create(
            {
                "name": "Tour rule",
                "stage_ids": [(6, 0, growth.ids)],
                "trigger": "periodic",
                "cooldown_days": 30,
                "tag_ids": [(0, 0, {"name": "Tour tag"})],
                # No hold-out: it draws by a hash of the contact's id, which
                # depends on what ran before (the tour expects the tags).
                "mlm_control_share": 0,
            }
        )
        cls.customer = cls.env["res.partner"].create(
            {"name": "Tour Treated", "customer_rank": 1, "user_id": cls.salesman.id}
        )
        growth.with_context(mlm_defer_treatments=True)._mlm_move(cls.customer, "manual")
        Treatment._cron_mlm_treatments()
        cls.lead = cls.env["crm.lead"].create(
            {
                "name": "Tour deal",
                "partner_id": cls.customer.id,
                "user_id": cls.salesman.id,
            }
        )

    def test_contact(self):
        self.start_tour(
            f"/odoo/res.partner/{self.customer.id}",
            "loyalty_mlm_treatment_contact",
            login="mlm_tour_sales",
        )

    def test_lead(self):
        self.start_tour(
            f"/odoo/crm.lead/{self.lead.id}",
            "loyalty_mlm_treatment_lead",
            login="mlm_tour_sales",
        )
