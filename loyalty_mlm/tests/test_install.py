from lxml import etree

from odoo.modules.module import get_manifest
from odoo.tests import tagged

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestInstall(LoyaltyMlmCommon):
    def test_module_installed(self):
        module = self.env["ir.module.module"].search([("name", "=", "loyalty_mlm")])
        self.assertEqual(module.state, "installed")
        self.assertEqual(module.latest_version, get_manifest("loyalty_mlm")["version"])

    def test_groups_and_implications(self):
        user_group = self.env.ref("loyalty_mlm.group_loyalty_mlm_user")
        manager_group = self.env.ref("loyalty_mlm.group_loyalty_mlm_manager")
        self.assertIn(user_group, manager_group.implied_ids)
        self.assertIn(self.env.ref("base.group_user"), user_group.implied_ids)
        self.assertEqual(user_group.category_id, manager_group.category_id)
        # Managers are users too; salespeople read members; admin manages.
        self.assertTrue(
            self.user_manager.has_group("loyalty_mlm.group_loyalty_mlm_user")
        )
        salesman = self.env.ref("sales_team.group_sale_salesman")
        self.assertIn(user_group, salesman.implied_ids)
        self.assertTrue(
            self.env.ref("base.user_admin").has_group(
                "loyalty_mlm.group_loyalty_mlm_manager"
            )
        )
        self.assertFalse(
            self.user_plain.has_group("loyalty_mlm.group_loyalty_mlm_user")
        )

    def _visible_menus(self, user):
        return self.env["ir.ui.menu"].with_user(user)._visible_menu_ids()

    def test_menu_visibility(self):
        root = self.env.ref("loyalty_mlm.menu_root")
        config = self.env.ref("loyalty_mlm.menu_config")
        members = self.env.ref("loyalty_mlm.menu_members")
        dashboard = self.env.ref("loyalty_mlm.menu_dashboard")
        self.assertEqual(root.web_icon, "loyalty_mlm,static/description/icon.png")
        user_menus = self._visible_menus(self.user_loyalty)
        self.assertTrue({root.id, members.id, dashboard.id} <= user_menus)
        self.assertNotIn(config.id, user_menus)
        self.assertIn(config.id, self._visible_menus(self.user_manager))
        self.assertNotIn(root.id, self._visible_menus(self.user_plain))

    def test_settings_block(self):
        arch = self.env["res.config.settings"].get_views([(False, "form")])["views"][
            "form"
        ]["arch"]
        apps = etree.fromstring(arch).xpath("//app[@name='loyalty_mlm']")
        self.assertEqual(len(apps), 1)
        self.assertEqual(apps[0].get("string"), "Members")
        blocks = apps[0].xpath(".//block[@name='loyalty_mlm_programme_block']")
        self.assertEqual(len(blocks), 1)
        action = self.env.ref("loyalty_mlm.res_config_settings_action")
        self.assertEqual(action.context, "{'module': 'loyalty_mlm', 'bin_size': False}")

    def test_access_rights(self):
        program = self.env["loyalty.program"]
        self.assertTrue(program.with_user(self.user_loyalty).has_access("read"))
        self.assertFalse(program.with_user(self.user_loyalty).has_access("write"))
        self.assertTrue(program.with_user(self.user_manager).has_access("write"))
        self.assertFalse(program.with_user(self.user_plain).has_access("read"))
