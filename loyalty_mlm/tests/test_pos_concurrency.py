import uuid as uuidlib

from psycopg2.errors import SerializationFailure

from odoo import api, fields
from odoo.exceptions import UserError
from odoo.service.model import retrying
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from odoo.addons.loyalty_mlm.models.pos_order import ConcurrentOrderSync


@tagged("post_install", "-at_install")
class TestPosConcurrency(TransactionCase):
    """Real races between two transactions on committed data, as two
    registers (or a register's retry and its offline queue) and a
    salesperson make them: one order per register uuid, one earning per
    order, never two spends of the same points, and a sale confirmation
    that waits out a register instead of failing.

    The second transaction's snapshot is taken before the first commits,
    which is what a real race does; Odoo's request retry (`retrying`) then
    replays it. The committed data is removed afterwards."""

    def setUp(self):
        super().setUp()
        self.ids = {"orders": [], "sales": []}
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            program = env.ref("loyalty_mlm.loyalty_program_member")
            env.company.mlm_program_id = program
            self.program_id = program.id
            self.reward_id = program.reward_ids[:1].id
            partner = env["res.partner"].create({"name": "Racing Member"})
            partner._mlm_enroll(env.company)
            card = env["loyalty.card"].search([("partner_id", "=", partner.id)])
            card._mlm_adjust(100.0, "Opening")
            product = env["product.product"].create(
                {
                    "name": "Race Bread",
                    "type": "service",
                    "list_price": 10.0,
                    "taxes_id": False,
                    "available_in_pos": True,
                }
            )
            # Odoo's demo register (the test database has demo data), with a
            # session of its own that the cleanup removes.
            config = env.ref("point_of_sale.pos_config_main")
            self.assertFalse(config.current_session_id)
            session = env["pos.session"].create(
                {"config_id": config.id, "user_id": api.SUPERUSER_ID}
            )
            self.partner_id, self.card_id = partner.id, card.id
            self.product_id, self.session_id = product.id, session.id
            self.config_id = config.id
            self.cash_id = config.payment_method_ids.filtered("is_cash_count")[:1].id
            self.discount_product_id = program.reward_ids[
                :1
            ].discount_line_product_id.id
            self.pricelist_id = config.pricelist_id.id
        self.addCleanup(self._drop_committed_data)

    def _drop_committed_data(self):
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id FROM pos_order WHERE session_id = %s", [self.session_id]
            )
            orders = [row[0] for row in cr.fetchall()]
            cr.execute(
                "SELECT id FROM sale_order WHERE partner_id = %s", [self.partner_id]
            )
            sales = [row[0] for row in cr.fetchall()]
            # The ledger is append-only for users; test data goes by SQL.
            cr.execute(
                "DELETE FROM loyalty_mlm_ledger_allocation WHERE lot_id IN "
                "(SELECT id FROM loyalty_mlm_ledger WHERE partner_id = %s) "
                "OR entry_id IN "
                "(SELECT id FROM loyalty_mlm_ledger WHERE partner_id = %s)",
                [self.partner_id, self.partner_id],
            )
            cr.execute(
                "DELETE FROM loyalty_mlm_ledger WHERE partner_id = %s",
                [self.partner_id],
            )
            cr.execute("DELETE FROM loyalty_history WHERE card_id = %s", [self.card_id])
            cr.execute("DELETE FROM pos_payment WHERE pos_order_id = ANY(%s)", [orders])
            cr.execute("DELETE FROM pos_order_line WHERE order_id = ANY(%s)", [orders])
            cr.execute("DELETE FROM pos_order WHERE id = ANY(%s)", [orders])
            cr.execute("DELETE FROM sale_order WHERE id = ANY(%s)", [sales])
            cr.execute(
                "DELETE FROM loyalty_card WHERE partner_id = %s", [self.partner_id]
            )
            cr.execute("DELETE FROM pos_session WHERE id = %s", [self.session_id])
            cr.execute(
                "DELETE FROM loyalty_mlm_stage_history WHERE partner_id = %s",
                [self.partner_id],
            )
            cr.execute("DELETE FROM res_partner WHERE id = %s", [self.partner_id])
            cr.execute(
                "DELETE FROM product_product WHERE id = %s RETURNING product_tmpl_id",
                [self.product_id],
            )
            cr.execute("DELETE FROM product_template WHERE id = %s", [cr.fetchone()[0]])

    # helpers ---------------------------------------------------------------

    def payload(self, uuid, spend=0.0):
        lines = [
            (
                0,
                0,
                {
                    "product_id": self.product_id,
                    "qty": 1,
                    "price_unit": 10.0,
                    "price_subtotal": 10.0,
                    "price_subtotal_incl": 10.0,
                    "discount": 0.0,
                    "tax_ids": [(6, 0, [])],
                    "pack_lot_ids": [],
                },
            )
        ]
        if spend:
            lines.append(
                (
                    0,
                    0,
                    {
                        "product_id": self.discount_product_id,
                        "qty": 1,
                        "price_unit": -spend / 100.0,
                        "price_subtotal": -spend / 100.0,
                        "price_subtotal_incl": -spend / 100.0,
                        "discount": 0.0,
                        "tax_ids": [(6, 0, [])],
                        "pack_lot_ids": [],
                        "is_reward_line": True,
                        "reward_id": self.reward_id,
                        "coupon_id": self.card_id,
                        "reward_identifier_code": "RACE",
                        "points_cost": spend,
                    },
                )
            )
        total = sum(line[2]["price_subtotal_incl"] for line in lines)
        return {
            "amount_paid": total,
            "amount_return": 0,
            "amount_tax": 0.0,
            "amount_total": total,
            "date_order": fields.Datetime.to_string(fields.Datetime.now()),
            "pricelist_id": self.pricelist_id,
            "name": f"Race {uuid}",
            "last_order_preparation_change": "{}",
            "lines": lines,
            "partner_id": self.partner_id,
            "session_id": self.session_id,
            "sequence_number": 2,
            "payment_ids": [
                (
                    0,
                    0,
                    {
                        "amount": total,
                        "name": fields.Datetime.now(),
                        "payment_method_id": self.cash_id,
                    },
                )
            ],
            "uuid": uuid,
            "user_id": api.SUPERUSER_ID,
            "to_invoice": False,
            "state": "paid",
        }

    def coupon_data(self, points):
        return {
            str(self.card_id): {
                "points": points,
                "program_id": self.program_id,
                "coupon_id": self.card_id,
                "partner_id": self.partner_id,
            }
        }

    def committed(self, query, params):
        with self.registry.cursor() as cr:
            cr.execute(query, params)
            return cr.fetchall()

    def assertCardEqualsLedger(self, expected):
        (points,) = self.committed(
            "SELECT points FROM loyalty_card WHERE id = %s", [self.card_id]
        )[0]
        (ledger,) = self.committed(
            "SELECT COALESCE(SUM(points), 0) FROM loyalty_mlm_ledger "
            "WHERE card_id = %s",
            [self.card_id],
        )[0]
        self.assertAlmostEqual(points, expected, places=2)
        self.assertAlmostEqual(float(ledger), expected, places=2)

    # races -----------------------------------------------------------------

    def test_same_order_synced_twice_at_once(self):
        uuid = str(uuidlib.uuid4())
        with self.registry.cursor() as cr1, self.registry.cursor() as cr2:
            env1 = api.Environment(cr1, api.SUPERUSER_ID, {})
            env2 = api.Environment(cr2, api.SUPERUSER_ID, {})
            # Both calls start before either saved the order.
            self.assertFalse(env2["pos.order"].search([("uuid", "=", uuid)]))
            first = env1["pos.order"].sync_from_ui([self.payload(uuid)])
            cr1.commit()
            # The twin's snapshot misses the saved order: the unique uuid
            # stops it, as a serialization failure Odoo replays...
            with self.assertRaises(ConcurrentOrderSync), mute_logger("odoo.sql_db"):
                with cr2.savepoint(flush=False):
                    env2["pos.order"].sync_from_ui([self.payload(uuid)])
            cr2.rollback()
            env2.invalidate_all()
            # ...and the replay answers with the order already saved.
            second = retrying(
                lambda: env2["pos.order"].sync_from_ui([self.payload(uuid)]), env2
            )
            order_id = first["pos.order"][0]["id"]
            self.assertEqual([o["id"] for o in second["pos.order"]], [order_id])
            # Both tabs now confirm the points at the same moment: once.
            self.assertFalse(env2["pos.order"].browse(order_id).mlm_points_confirmed)
            env1["pos.order"].browse(order_id).confirm_coupon_programs(
                self.coupon_data(10.0)
            )
            cr1.commit()
            with self.assertRaises(SerializationFailure), mute_logger("odoo.sql_db"):
                with cr2.savepoint(flush=False):
                    env2["pos.order"].browse(order_id).confirm_coupon_programs(
                        self.coupon_data(10.0)
                    )
            cr2.rollback()
            env2.invalidate_all()
            again = retrying(
                lambda: (
                    env2["pos.order"]
                    .browse(order_id)
                    .confirm_coupon_programs(self.coupon_data(10.0))
                ),
                env2,
            )
            self.assertEqual(again["mlm_receipt"]["earned"], 10.0)
        self.assertEqual(
            self.committed("SELECT count(*) FROM pos_order WHERE uuid = %s", [uuid]),
            [(1,)],
        )
        self.assertEqual(
            self.committed(
                "SELECT kind, points FROM loyalty_mlm_ledger "
                "WHERE res_model = 'pos.order' AND res_id = %s",
                [order_id],
            ),
            [("earn", 10.0)],
        )
        self.assertCardEqualsLedger(110.0)

    def test_two_registers_spend_the_same_points(self):
        with self.registry.cursor() as cr1, self.registry.cursor() as cr2:
            env1 = api.Environment(cr1, api.SUPERUSER_ID, {})
            env2 = api.Environment(cr2, api.SUPERUSER_ID, {})
            # Both registers saw 100 points.
            self.assertEqual(env2["loyalty.card"].browse(self.card_id).points, 100.0)
            env1["pos.order"].sync_from_ui([self.payload(str(uuidlib.uuid4()), 100.0)])
            cr1.commit()
            second = self.payload(str(uuidlib.uuid4()), 100.0)
            with self.assertRaises(SerializationFailure), mute_logger("odoo.sql_db"):
                with cr2.savepoint(flush=False):
                    env2["pos.order"].sync_from_ui([second])
            cr2.rollback()
            env2.invalidate_all()
            # Replayed on a fresh snapshot, the second spend is refused with
            # the message the register shows; nothing of it is saved.
            with self.assertRaisesRegex(UserError, "has 0.0 points, fewer than the"):
                retrying(lambda: env2["pos.order"].sync_from_ui([second]), env2)
        self.assertEqual(
            self.committed(
                "SELECT count(*) FROM pos_order WHERE session_id = %s",
                [self.session_id],
            ),
            [(1,)],
        )
        self.assertCardEqualsLedger(0.0)

    def test_sale_confirmation_waits_out_the_register(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            order = env["sale.order"].create(
                {
                    "partner_id": self.partner_id,
                    "order_line": [
                        (0, 0, {"product_id": self.product_id, "price_unit": 50.0})
                    ],
                }
            )
            order._update_programs_and_rewards()
            sale_id = order.id
        with self.registry.cursor() as cr1, self.registry.cursor() as cr2:
            env1 = api.Environment(cr1, api.SUPERUSER_ID, {})
            env2 = api.Environment(cr2, api.SUPERUSER_ID, {})
            # The salesperson's request has read the order (its snapshot)...
            env2["sale.order"].browse(sale_id).read(["state"])
            # ...while a register changes the card and commits.
            env1["loyalty.card"].browse(self.card_id)._mlm_adjust(5.0, "Register")
            cr1.commit()
            # The confirmation fails at its first statement (the card lock),
            # before any work, and the retry confirms.
            with self.assertRaises(SerializationFailure), mute_logger("odoo.sql_db"):
                with cr2.savepoint(flush=False):
                    env2["sale.order"].browse(sale_id).action_confirm()
            cr2.rollback()
            env2.invalidate_all()
            retrying(lambda: env2["sale.order"].browse(sale_id).action_confirm(), env2)
            # While it holds the card, nobody else changes it.
        self.assertEqual(
            self.committed("SELECT state FROM sale_order WHERE id = %s", [sale_id]),
            [("sale",)],
        )
        self.assertCardEqualsLedger(155.0)
