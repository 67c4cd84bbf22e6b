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
