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

    def _assert_upgrade_drops(self, name, version, previous, kept):
        """The `version` upgrade from `previous` drops the contact index
        `name` (made here) and leaves `kept`."""
        cr = self.env.cr
        cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS %s ON res_partner (id)",
                SQL.identifier(name),
            )
        )
        post_migrate(version).migrate(cr, previous)
        self.assertFalse(index_exists(cr, name))
        self.assertTrue(index_exists(cr, kept))

    def test_upgrade_drops_the_former_stage_indexes(self):
        company_id = self.env.company.id
        self._assert_upgrade_drops(
            f"res_partner_mlm_stage_{company_id}_index",
            "18.0.1.6.0",
            "18.0.1.5.0",
            f"res_partner_mlm_stage_order_{company_id}_index",
        )

    def test_the_members_list_uses_the_member_order_index(self):
        plan = self._plan(
            [("mlm_member_since", "!=", False)],
            order="customer_rank DESC, complete_name ASC, id DESC",
            off=("seqscan", "bitmapscan", "sort"),
        )
        self.assertIn("res_partner_mlm_member_order_index", plan)

    def _indexed_columns(self):
        """{index name: its definition} of res_partner's indexes."""
        self.env.cr.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'res_partner'"
        )
        return dict(self.env.cr.fetchall())

    def test_the_nightly_writes_touch_few_indexes(self):
        """A tier move writes only columns no index names (it can be a
        heap-only update), a stage move only the stage index's, and no
        index of ours duplicates another."""
        indexes = self._indexed_columns()
        tier_columns = (
            "mlm_tier_id",
            "mlm_tier_below_since",
            "write_uid",
            "write_date",
        )
        for name, definition in indexes.items():
            for column in tier_columns:
                self.assertNotIn(column, definition, name)
        stage_columns = ("mlm_stage_id", "mlm_stage_date", "mlm_stage_locked_until")
        naming_stage = sorted(
            name
            for name, definition in indexes.items()
            if any(column in definition for column in stage_columns)
        )
        self.assertTrue(naming_stage)
        for name in naming_stage:
            self.assertRegex(name, r"^res_partner_mlm_stage_order_\d+_index$")
        referral = [
            name
            for name, definition in indexes.items()
            if "(mlm_referral_code)" in definition
        ]
        self.assertEqual(referral, ["res_partner_mlm_referral_code_unique"])

    def test_a_tier_move_is_a_heap_only_update(self):
        """With room on its page, a tier move rewrites no index entry."""
        cr = self.env.cr
        # The contact on a page with room for a second version of it
        # (rolled back with the test).
        cr.execute("ALTER TABLE res_partner SET (fillfactor = 50)")
        partner = self.env["res.partner"].create({"name": "Heap Only"})
        self.env.flush_all()
        tier = self.env["loyalty.mlm.tier"].search(
            [("company_id", "in", [False, self.env.company.id])], limit=1
        )
        query = (
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
            " WHERE relname = 'res_partner'"
        )
        cr.execute(query)
        updates, hot = cr.fetchone()
        self.env["loyalty.mlm.tier"]._mlm_write_tier_changes(
            self.env.company, [(partner.id, True, None, tier.id, "start", 10.0, None)]
        )
        cr.execute(query)
        self.assertEqual(cr.fetchone(), (updates + 1, hot + 1))

    def test_upgrade_drops_the_unused_member_indexes(self):
        self._assert_upgrade_drops(
            "res_partner__mlm_tier_id_index",
            "18.0.1.7.0",
            "18.0.1.6.0",
            "res_partner_mlm_referral_code_unique",
        )
