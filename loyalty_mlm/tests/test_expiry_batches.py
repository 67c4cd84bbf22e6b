from freezegun import freeze_time

from odoo.tests import tagged
from odoo.tools import SQL, create_index, index_exists
from odoo.tools.sql import column_exists

from .common import LoyaltyMlmCommon, post_migrate


@tagged("post_install", "-at_install")
class TestExpiryBatches(LoyaltyMlmCommon):
    """The expiry job at scale (issue 22; figures in bench/README.md,
    "Points expiry"): a call costs the same queries whatever its size, takes
    the oldest expired lots first and a bounded batch, and the ledger keeps
    only the indexes its queries use."""

    def setUp(self):
        super().setUp()
        self.company.mlm_points_validity_months = 12

    def members(self, count, name="Expiring"):
        """`count` members, each with two lots earned on 2025-01-10 (40 and
        25 points) and one on 2025-09-10 (10 points, unexpired in Feb 2026);
        returns their cards."""
        partners = self.env["res.partner"].create(
            [{"name": f"{name} {index}"} for index in range(count)]
        )
        for partner in partners:
            with freeze_time("2025-01-10"):
                self.make_order(partner=partner, amount=40).action_confirm()
                self.make_order(partner=partner, amount=25).action_confirm()
            with freeze_time("2025-09-10"):
                self.make_order(partner=partner, amount=10).action_confirm()
        self.env.flush_all()
        return self.env["loyalty.card"].search(
            [("partner_id", "in", partners.ids), ("program_id", "=", self.program.id)]
        )

    def expired(self, cards):
        return self.ledger(kind="expire").filtered(lambda e: e.card_id in cards)

    def test_a_call_costs_the_same_queries_whatever_its_size(self):
        small = self.members(2, "Small")
        with freeze_time("2026-02-01"), self.assertQueryCount(5):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()
        self.assertEqual(len(self.expired(small)), 4)
        large = self.members(12, "Large")
        with freeze_time("2026-02-01"), self.assertQueryCount(5):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()
        self.assertEqual(len(self.expired(large)), 24)
        self.assertEqual(set((small | large).mapped("points")), {10.0})
        self.assertLedgerInvariant()

    def test_batches_take_the_oldest_lots_and_resume(self):
        """A batch of N lots takes the cards of the N oldest expired lots and
        every expired lot of those cards; the next calls go on from there
        until nothing is left, and a further run posts nothing."""
        ledger = self.env["loyalty.mlm.ledger"]
        with freeze_time("2026-04-01"):
            ledger._cron_expire_points()  # the demo's expired lots, if any
        old = self.members(3, "Old")
        with freeze_time("2025-03-10"):
            newer = self.env["res.partner"].create({"name": "Newer"})
            self.make_order(partner=newer, amount=30).action_confirm()
        newer_card = self.card_of(newer)
        progress = []
        self.patch(
            type(self.env["ir.cron"]),
            "_notify_progress",
            lambda cron, *, done, remaining, deactivate=False: progress.append(
                (done, remaining)
            ),
        )
        with freeze_time("2026-04-01"):
            ledger._cron_expire_points(batch_size=2)
            # The two oldest lots (both earned on 2025-01-10): their card or
            # cards, with every expired lot of each (two per card), not the
            # newer lot (expired on 2026-03-10).
            first = self.expired(old | newer_card)
            self.assertIn(len(first), (2, 4))
            self.assertFalse(first.card_id & newer_card)
            self.assertEqual(len(first), 2 * len(first.card_id))
            self.assertEqual(progress[-1], (len(first), 2))
            calls = 1
            while progress[-1][1]:
                ledger._cron_expire_points(batch_size=2)
                calls += 1
            self.assertLessEqual(calls, 4)
            self.assertEqual(len(self.expired(old)), 6)
            self.assertEqual(self.expired(newer_card).mapped("points"), [-30.0])
            ledger._cron_expire_points(batch_size=2)
        self.assertEqual(progress[-1], (0, 0))
        self.assertEqual(len(self.expired(old | newer_card)), 7)
        self.assertEqual(set(old.mapped("points")), {10.0})
        self.assertEqual(newer_card.points, 0.0)
        self.assertLedgerInvariant()

    def test_a_call_killed_midway_leaves_nothing_and_resumes(self):
        """A call is one unit: killed after its statement (here: at its
        progress report), nothing of it stays; the next run does it all."""
        cards = self.members(2, "Killed")
        balances = cards.mapped("points")

        class Killed(Exception):
            pass

        def killed(cron, **kwargs):
            raise Killed()

        ledger = self.env["loyalty.mlm.ledger"]
        with freeze_time("2026-02-01"):
            self.patch(type(self.env["ir.cron"]), "_notify_progress", killed)
            with self.assertRaises(Killed), self.env.cr.savepoint():
                ledger._cron_expire_points()
            self.env.invalidate_all()
            self.assertFalse(self.expired(cards))
            self.assertEqual(cards.mapped("points"), balances)
            self.assertEqual(
                len(
                    self.ledger(kind="earn").filtered(
                        lambda e: e.card_id in cards and e.remaining > 0
                    )
                ),
                6,
            )
            self.patch(
                type(self.env["ir.cron"]), "_notify_progress", lambda *a, **k: None
            )
            ledger._cron_expire_points()
        self.assertEqual(len(self.expired(cards)), 4)
        self.assertEqual(set(cards.mapped("points")), {10.0})
        self.assertLedgerInvariant()

    def test_expire_entries_reference_their_lot(self):
        cards = self.members(2)
        with freeze_time("2026-02-01"):
            self.env["loyalty.mlm.ledger"]._cron_expire_points()
        expired = self.expired(cards)
        self.assertEqual(len(expired), 4)
        for entry in expired:
            lot = entry.expired_lot_id
            self.assertEqual((entry.res_model, entry.res_id), (lot._name, lot.id))
            self.assertEqual(entry.consumes_ids.lot_id, lot)
            self.assertEqual(entry.consumes_ids.points, -entry.points)
            self.assertEqual(lot.remaining, 0.0)
            self.assertEqual(entry.card_id, lot.card_id)

    def test_allocations_have_no_log_columns(self):
        for column in ("create_uid", "create_date", "write_uid", "write_date"):
            self.assertFalse(
                column_exists(self.env.cr, "loyalty_mlm_ledger_allocation", column)
            )

    def _plan(self, query):
        # Tiny test tables: a scan would always win; ask whether the index
        # can serve the query at all.
        self.env.cr.execute("SET LOCAL enable_seqscan = off")
        self.env.cr.execute(SQL("EXPLAIN %s", query))
        plan = "\n".join(row[0] for row in self.env.cr.fetchall())
        self.env.cr.execute("RESET enable_seqscan")
        return plan

    def test_ledger_indexes_serve_their_queries(self):
        Ledger = self.env["loyalty.mlm.ledger"]
        for name in (
            "company_id",
            "kind",
            "res_model",
            "expiry_date",
        ):
            self.assertFalse(
                index_exists(self.env.cr, f"loyalty_mlm_ledger__{name}_index"), name
            )
        # The expiry job's and the reminders' lookups (remaining > 0).
        plan = self._plan(
            SQL(
                "SELECT card_id FROM loyalty_mlm_ledger WHERE remaining > 0 "
                "AND expiry_date < '2026-01-01' ORDER BY expiry_date LIMIT 10"
            )
        )
        self.assertIn("loyalty_mlm_ledger_open_expiry_index", plan)
        # The ORM's domain of the points expiring soon.
        query = Ledger._search(
            [
                ("remaining", ">", 0),
                ("expiry_date", ">=", "2026-01-01"),
                ("expiry_date", "<=", "2026-02-01"),
            ]
        )
        self.assertIn(
            "loyalty_mlm_ledger_open_expiry_index", self._plan(query.select())
        )
        # A source document's entries.
        query = Ledger._search(
            [("res_model", "=", "sale.order"), ("res_id", "in", [1, 2])]
        )
        self.assertIn("loyalty_mlm_ledger_source_index", self._plan(query.select()))
        # A rare kind (donation report, treatments).
        query = Ledger._search([("kind", "=", "donation")])
        self.assertIn("loyalty_mlm_ledger_kind_index", self._plan(query.select()))

    def test_upgrade_drops_the_old_indexes_and_log_columns(self):
        cr = self.env.cr
        table = "loyalty_mlm_ledger_allocation"
        for name in ("company_id", "kind"):
            create_index(
                cr, f"loyalty_mlm_ledger__{name}_index", "loyalty_mlm_ledger", [name]
            )
        cr.execute(
            f"ALTER TABLE {table} ADD COLUMN create_uid int4, "
            "ADD COLUMN write_date timestamp"
        )
        post_migrate("18.0.1.5.0").migrate(cr, "18.0.1.4.0")
        for name in ("company_id", "kind"):
            self.assertFalse(index_exists(cr, f"loyalty_mlm_ledger__{name}_index"))
        self.assertFalse(column_exists(cr, table, "create_uid"))
        self.assertFalse(column_exists(cr, table, "write_date"))
