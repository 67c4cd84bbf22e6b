from odoo.tests import tagged
from odoo.tools import SQL

from .common import LoyaltyMlmPosCommon

# Queries of one member order through the register's two calls (order sync,
# then the confirmation of its points), whatever the member's history; with
# Odoo's caches emptied first, so the figure does not depend on which test
# ran before (bench/bench_pos_sync.py measures the warm cost against Odoo
# without the module). 246 since the server recomputes the points an order
# earns: the programme's rules are read once into a cache (1 query here,
# with the caches emptied; none on a warm register). 247 since the receipt
# lists every posting of the order on the member card (one query).
SYNC_QUERIES = 247
# Odoo's web shop (website_sale_loyalty and its dependencies, which `make
# test` installs with the loyalty_mlm_website_sale bridge) reads 5 more
# queries on the register's sync with the caches emptied: Odoo's own, the
# bridge adds none on the register.
WEBSHOP_QUERIES = 5


@tagged("post_install", "-at_install")
class TestPosSyncPerformance(LoyaltyMlmPosCommon):
    """The cost of the order sync with our module stays the same for a member
    with a short and a long history (orders, ledger entries)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Treatment rules hold out customers by a hash of their id: the
        # counts below must not depend on that draw.
        rules = cls.env["loyalty.mlm.treatment"].sudo().with_context(active_test=False)
        rules.search([]).mlm_control_share = 0

    def payload(self, points):
        card = self.card()
        return {
            str(card.id): {
                "points": points,
                "program_id": self.program.id,
                "coupon_id": card.id,
                "partner_id": self.member.id,
            }
        }

    def sell(self):
        """One member order as the register sends it: sync, then points."""
        data = self.create_ui_order_data([(self.product, 3)], customer=self.member)
        result = self.env["pos.order"].sync_from_ui([data])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        return order.confirm_coupon_programs(self.payload(30.0))

    def make_history(self, orders, adjustments):
        self.member._mlm_enroll(self.company)
        # Both members are Silver (x1.25) before and after their history: the
        # same bonus entries per order, so only the history differs.
        self.member.with_company(self.company).mlm_tier_id = self.env.ref(
            "loyalty_mlm.loyalty_mlm_tier_silver"
        )
        for _index in range(orders):
            self.sell()
        for index in range(adjustments):
            self.card()._mlm_adjust(1.0, f"History {index}")

    def measure(self):
        self.sell()  # the session's first order does more
        self.env.invalidate_all()
        self.env.registry.clear_cache()
        webshop = "website_sale" in self.env.registry._init_modules
        with self.assertQueryCount(SYNC_QUERIES + (WEBSHOP_QUERIES if webshop else 0)):
            result = self.sell()
        self.assertEqual(result["mlm_receipt"]["earned"], 30.0)
        self.assertEqual(result["mlm_receipt"]["tier_bonus"], 7.5)
        # The tier bonus went in the same card write as the earned points:
        # one entry each, both sourced to the order.
        order = self.env["pos.order"].search([], order="id desc", limit=1)
        entries = self.env["loyalty.mlm.ledger"].search(
            [("res_model", "=", "pos.order"), ("res_id", "=", order.id)], order="id"
        )
        self.assertEqual(
            [(e.kind, e.points, e.reason) for e in entries],
            [
                ("earn", 30.0, "Points earned"),
                ("tier_bonus", 7.5, "Silver tier bonus (x1.25)"),
            ],
        )
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(self.card()), {})

    def test_sync_cost_short_history(self):
        self.make_history(orders=1, adjustments=1)
        self.measure()

    def test_sync_cost_long_history(self):
        self.make_history(orders=30, adjustments=200)
        self.measure()

    def test_combo_children_lookup_uses_an_index(self):
        """The order sync's look-up of a line's combo children (Odoo's own)
        reads an index, not every register line (issue 22)."""
        lines = self.env["pos.order.line"]
        query = lines._search([("combo_parent_id", "in", [1])], order="id")
        self.env.cr.execute("SET LOCAL enable_seqscan = off")
        self.env.cr.execute(SQL("EXPLAIN %s", query.select()))
        plan = "\n".join(row[0] for row in self.env.cr.fetchall())
        self.env.cr.execute("RESET enable_seqscan")
        self.assertIn("pos_order_line_mlm_combo_parent_index", plan)
