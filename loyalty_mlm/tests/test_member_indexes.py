from odoo.tests import tagged
from odoo.tools import SQL, index_exists

from .common import LoyaltyMlmCommon, post_migrate


@tagged("post_install", "-at_install")
class TestMemberIndexes(LoyaltyMlmCommon):
    """The indexes behind the Members list and kanban (issue 22; figures in
    bench/README.md, "Interactive paths at scale") serve the SQL the ORM
    writes for them."""

    def _plan(self, domain, order=None, off=("seqscan",)):
        query = self.env["res.partner"]._search(domain, order=order, limit=40)
        # Tiny test tables: a scan (and a sort) would always win; ask whether
        # the index can serve the query at all.
        for setting in off:
            self.env.cr.execute(
                SQL("SET LOCAL %s = off", SQL.identifier(f"enable_{setting}"))
            )
        self.env.cr.execute(SQL("EXPLAIN %s", query.select()))
        plan = "\n".join(row[0] for row in self.env.cr.fetchall())
        for setting in off:
            self.env.cr.execute(SQL("RESET %s", SQL.identifier(f"enable_{setting}")))
        return plan

    def test_a_new_company_gets_its_stage_index(self):
        company = self.env["res.company"].create({"name": "Index Company"})
        self.assertEqual(
            index_exists(
                self.env.cr, f"res_partner_mlm_stage_order_{company.id}_index"
            ),
            True,
        )

    def test_a_stage_column_uses_the_stage_index(self):
        """A column's count, and its first cards in the Members views' order
        read from the front of the column's range, without a sort."""
        stage = self.env["loyalty.mlm.stage"].search([], limit=1)
        name = f"res_partner_mlm_stage_order_{self.env.company.id}_index"
        column = [("mlm_member_since", "!=", False), ("mlm_stage_id", "=", stage.id)]
        self.assertIn(name, self._plan(column))
        plan = self._plan(
            column,
            order="customer_rank DESC, complete_name ASC, id DESC",
            off=("seqscan", "bitmapscan", "sort"),
        )
        self.assertIn(name, plan)
        self.assertNotIn("Sort", plan)

    def test_upgrade_drops_the_former_stage_indexes(self):
        cr = self.env.cr
        name = f"res_partner_mlm_stage_{self.env.company.id}_index"
        cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS %s ON res_partner (id)",
                SQL.identifier(name),
            )
        )
        post_migrate("18.0.1.6.0").migrate(cr, "18.0.1.5.0")
        self.assertFalse(index_exists(cr, name))
        self.assertTrue(
            index_exists(cr, f"res_partner_mlm_stage_order_{self.env.company.id}_index")
        )

    def test_the_members_list_uses_the_member_order_index(self):
        plan = self._plan(
            [("mlm_member_since", "!=", False)],
            order="customer_rank DESC, complete_name ASC, id DESC",
            off=("seqscan", "bitmapscan", "sort"),
        )
        self.assertIn("res_partner_mlm_member_order_index", plan)
