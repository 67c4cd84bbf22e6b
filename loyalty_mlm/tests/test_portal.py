from lxml import html

from odoo.tests import HttpCase, new_test_user, tagged


def css(name):
    """XPath of the elements with the class `name`."""
    return f"//*[contains(concat(' ', normalize-space(@class), ' '), ' {name} ')]"


@tagged("post_install", "-at_install")
class TestPortalMember(HttpCase):
    """A member sees their referral code, points and tier on /my."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        company = cls.env.company
        program = cls.env.ref("loyalty_mlm.loyalty_program_member")
        company.mlm_program_id = program
        cls.member_user = new_test_user(
            cls.env, login="mlm_portal_member", groups="base.group_portal"
        )
        cls.other_user = new_test_user(
            cls.env, login="mlm_portal_other", groups="base.group_portal"
        )
        member = cls.member_user.partner_id
        member._mlm_enroll(company)
        member.mlm_referral_code = "PORTAL23"
        member.mlm_card_id._mlm_adjust(75.5, "Opening")
        member.with_company(company).mlm_tier_id = cls.env.ref(
            "loyalty_mlm.loyalty_mlm_tier_silver"
        )

    def member_block(self, login):
        self.authenticate(login, login)
        response = self.url_open("/my")
        self.assertEqual(response.status_code, 200)
        return html.fromstring(response.text).xpath(css("o_mlm_portal_member"))

    def test_member_sees_code_points_and_tier(self):
        # The sidebar and its small-screen (offcanvas) copy.
        blocks = self.member_block("mlm_portal_member")
        self.assertEqual(len(blocks), 2)
        block = blocks[0]
        self.assertEqual(
            [
                block.xpath("." + css(name))[0].text_content().strip()
                for name in (
                    "o_mlm_portal_referral_code",
                    "o_mlm_portal_points",
                    "o_mlm_portal_tier",
                )
            ],
            ["PORTAL23", "75.50", "Silver"],
        )

    def test_non_member_sees_no_block(self):
        self.assertEqual(self.member_block("mlm_portal_other"), [])
