from psycopg2.errors import LockNotAvailable, SerializationFailure

from odoo import api
from odoo.service.model import retrying
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from odoo.addons.loyalty_mlm.models.loyalty_mlm_ledger import mlm_source


@tagged("post_install", "-at_install")
class TestLedgerConcurrency(TransactionCase):
    """Two real transactions on one card: nothing lost, nothing counted twice.

    Works on committed data in separate cursors (not the test transaction), and
    removes it afterwards.
    """

    def setUp(self):
        super().setUp()
        program = self.env.ref("loyalty_mlm.loyalty_program_member")
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            env.company.mlm_program_id = program
            partner = env["res.partner"].create({"name": "Concurrent Member"})
            partner._mlm_enroll(env.company)
            self.card_id = (
                env["loyalty.card"].search([("partner_id", "=", partner.id)]).id
            )
            self.partner_id = partner.id
        self.addCleanup(self._drop_committed_data)

    def _drop_committed_data(self):
        with self.registry.cursor() as cr:
            # The ledger is append-only for users; test data goes by SQL.
            cr.execute(
                "DELETE FROM loyalty_mlm_ledger_allocation WHERE lot_id IN "
                "(SELECT id FROM loyalty_mlm_ledger WHERE card_id = %s)",
                [self.card_id],
            )
            cr.execute(
                "DELETE FROM loyalty_mlm_ledger WHERE card_id = %s", [self.card_id]
            )
            cr.execute("DELETE FROM loyalty_card WHERE id = %s", [self.card_id])
            cr.execute("DELETE FROM res_partner WHERE id = %s", [self.partner_id])

    def _add(self, env, points, ref):
        card = env["loyalty.card"].browse(self.card_id)
        card._mlm_lock()
        card.with_context(
            mlm_ledger_source=mlm_source("pos.order", ref, "earn", "redeem")
        ).points += points
        env.flush_all()

    def test_two_transactions_on_one_card(self):
        with self.registry.cursor() as cr1, self.registry.cursor() as cr2:
            env1 = api.Environment(cr1, api.SUPERUSER_ID, {})
            env2 = api.Environment(cr2, api.SUPERUSER_ID, {})
            # Both sessions have read the card (cr2 takes its snapshot now).
            self.assertEqual(env2["loyalty.card"].browse(self.card_id).points, 0.0)
            self._add(env1, 10.0, 1)
            # While session 1 holds the row, nobody else can take it.
            with self.assertRaises(LockNotAvailable), mute_logger("odoo.sql_db"):
                with cr2.savepoint(flush=False):
                    cr2.execute(
                        "SELECT id FROM loyalty_card WHERE id = %s "
                        "FOR NO KEY UPDATE NOWAIT",
                        [self.card_id],
                    )
            cr1.commit()
            # Session 2's snapshot is stale: its change fails instead of
            # overwriting session 1's...
            with self.assertRaises(SerializationFailure), mute_logger("odoo.sql_db"):
                with cr2.savepoint(flush=False):
                    self._add(env2, 5.0, 2)
            cr2.rollback()
            env2.invalidate_all()
            # ...and Odoo's request retry replays it on a fresh snapshot.
            retrying(lambda: self._add(env2, 5.0, 2), env2)
            cr2.commit()
        with self.registry.cursor() as cr:
            cr.execute("SELECT points FROM loyalty_card WHERE id = %s", [self.card_id])
            self.assertEqual(cr.fetchone()[0], 15.0)
            cr.execute(
                "SELECT res_id, points FROM loyalty_mlm_ledger "
                "WHERE card_id = %s ORDER BY id",
                [self.card_id],
            )
            self.assertEqual(cr.fetchall(), [(1, 10.0), (2, 5.0)])
