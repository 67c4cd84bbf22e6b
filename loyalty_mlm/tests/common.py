import importlib.util
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from pathlib import Path

import pytz
from freezegun import freeze_time

from odoo import fields
from odoo.tests import TransactionCase, new_test_user

from odoo.addons.point_of_sale.tests.common import TestPoSCommon

# Moments at which the date rules (days since an order, coupon validity,
# activity deadlines) are tested: (the user's time zone, UTC time of day). Late
# in the UTC evening "today" is already tomorrow in Brussels; in the morning
# both agree; at night in New York it is still yesterday there.
LATE_EVENING = ("Europe/Brussels", time(23, 30))  # past midnight there
MORNING = ("Europe/Brussels", time(8, 0))  # 09:00 (10:00 in summer) there
BEHIND_UTC = ("America/New_York", time(3, 30))  # before midnight there
CLOCKS = (LATE_EVENING, MORNING, BEHIND_UTC)


def post_migrate(version):
    """The post-migrate module of `version` (its folder is no package)."""
    path = Path(__file__).parents[1] / "migrations" / version / "post-migrate.py"
    spec = importlib.util.spec_from_file_location(f"mlm_post_migrate_{version}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LoyaltyMlmCommon(TransactionCase):
    """Shared fixtures.

    ============  ==============================  ===============================
    user          groups                          what it stands for
    ============  ==============================  ===============================
    user_loyalty  Loyalty User                    sales staff reading members
    user_manager  Loyalty Manager                 admin configuring rules (of
                                                  every company)
    user_plain    Internal User only              someone outside the app
    ============  ==============================  ===============================

    The member programme is the one the module installs (1 point per currency
    unit, 100 points = 1.00 off); every other programme is archived so demo
    promotions do not interfere. Products are untaxed: 1.00 spent = 1 point.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.user_loyalty = new_test_user(
            cls.env, login="mlm_user", groups="loyalty_mlm.group_loyalty_mlm_user"
        )
        # A manager of every company: shared configuration (stages, tiers and
        # rules without a company) is changed only by those (issue #21).
        cls.user_manager = new_test_user(
            cls.env,
            login="mlm_manager",
            groups="loyalty_mlm.group_loyalty_mlm_manager,sales_team.group_sale_manager",
            company_ids=[(6, 0, cls.env["res.company"].search([]).ids)],
        )
        cls.user_plain = new_test_user(
            cls.env, login="mlm_plain", groups="base.group_user"
        )
        cls.program = cls.env.ref("loyalty_mlm.loyalty_program_member")
        cls.env["loyalty.program"].search([("id", "!=", cls.program.id)]).write(
            {"active": False}
        )
        cls.company = cls.env.company
        cls.company.mlm_program_id = cls.program
        cls.reward = cls.program.reward_ids
        cls.product = cls.env["product.product"].create(
            {"name": "Organic Coffee", "list_price": 100.0, "taxes_id": False}
        )
        cls.partner = cls.env["res.partner"].create({"name": "Anna Member"})
        cls.partner_b = cls.env["res.partner"].create({"name": "Bram Member"})

    # helpers ---------------------------------------------------------------

    @contextmanager
    def clock(self, tz, at):
        """Time frozen tomorrow at `at` (UTC) for a user in time zone `tz`:
        the test environment's user, whose local date context_today gives.
        Tomorrow, not a fixed day: the rules and programmes created at install
        are already running then."""
        self.env.user.tz = tz
        day = fields.Date.today() + timedelta(days=1)
        with freeze_time(datetime.combine(day, at)):
            yield

    def days_ago(self, days):
        """The moment `days` days ago on the user's calendar, at the same local
        time as now, in UTC as Odoo stores it (across a daylight saving
        change too): "180 days ago" as the user counts it."""
        tz = pytz.timezone(self.env.user.tz or "UTC")
        now = pytz.utc.localize(fields.Datetime.now()).astimezone(tz)
        then = tz.localize(now.replace(tzinfo=None) - timedelta(days=days))
        return then.astimezone(pytz.utc).replace(tzinfo=None)

    def make_order(self, partner=None, amount=100.0, qty=1):
        order = self.env["sale.order"].create(
            {
                "partner_id": (partner or self.partner).id,
                "order_line": [
                    (
                        0,
                        0,
                        {
                            "product_id": self.product.id,
                            "product_uom_qty": qty,
                            "price_unit": amount,
                        },
                    )
                ],
            }
        )
        order._update_programs_and_rewards()
        return order

    def card_of(self, partner=None):
        return self.env["loyalty.card"].search(
            [
                ("partner_id", "=", (partner or self.partner).id),
                ("program_id", "=", self.program.id),
            ]
        )

    def claim_points(self, order, card):
        """Claim the member reward on an order (native sale_loyalty flow)."""
        order._update_programs_and_rewards()
        result = order._apply_program_reward(self.reward, card)
        self.assertFalse(result.get("error"), result.get("error"))
        return result

    def ledger(self, **domain):
        return self.env["loyalty.mlm.ledger"].search(
            [(key, "=", value) for key, value in domain.items()], order="id"
        )

    def assertLedgerInvariant(self):
        """card.points == sum(ledger.points) for every member card."""
        self.assertEqual(self.env["loyalty.mlm.ledger"]._mlm_reconcile(), {})


class LoyaltyMlmPosCommon(TestPoSCommon):
    """An open POS session in a fresh company whose member programme earns
    1 point per currency unit (10 points = 0.10 off); `member` buys bread
    (10.00, untaxed). Orders go through `sync_from_ui`, as the register sends
    them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.basic_config
        cls.env["loyalty.program"].search([]).write({"active": False})
        cls.program = cls.env["loyalty.program"].create(
            {
                "name": "POS Members",
                "program_type": "loyalty",
                "applies_on": "both",
                "company_id": cls.company.id,
                "pos_ok": True,
                "rule_ids": [
                    (5, 0, 0),
                    (0, 0, {"reward_point_mode": "money", "reward_point_amount": 1}),
                ],
                "reward_ids": [
                    (5, 0, 0),
                    (
                        0,
                        0,
                        {
                            "reward_type": "discount",
                            "discount_mode": "per_point",
                            "discount": 0.01,
                            "required_points": 10,
                        },
                    ),
                ],
            }
        )
        cls.company.mlm_program_id = cls.program
        cls.product = cls.create_product("Bread", cls.categ_basic, 10.0, tax_ids=False)
        cls.member = cls.env["res.partner"].create({"name": "Pos Member"})

    def setUp(self):
        super().setUp()
        self.open_new_session()

    def sync(self, lines, **kwargs):
        data = self.create_ui_order_data(lines, customer=self.member, **kwargs)
        result = self.env["pos.order"].sync_from_ui([data])
        return self.env["pos.order"].browse(result["pos.order"][0]["id"])

    def card(self):
        return self.env["loyalty.card"].search([("partner_id", "=", self.member.id)])

    def reward_line(self, points_cost, discount, **values):
        """A member-programme discount line as the register sends it."""
        reward = self.program.reward_ids
        return {
            "product": reward.discount_line_product_id,
            "quantity": 1,
            "is_reward_line": True,
            "reward_id": reward.id,
            "reward_identifier_code": "RWD",
            "points_cost": points_cost,
            "price_unit": -discount,
            "price_subtotal": -discount,
            "price_subtotal_incl": -discount,
            **values,
        }

    def entries(self, order):
        return self.env["loyalty.mlm.ledger"].search(
            [("res_model", "=", "pos.order"), ("res_id", "=", order.id)], order="id"
        )


def winback_promotion(env, company, **values):
    """An automatic 15% off the order, for Winback customers only."""
    return env["loyalty.program"].create(
        {
            "name": "Welcome back",
            "program_type": "promotion",
            "trigger": "auto",
            "applies_on": "current",
            "company_id": company.id,
            "mlm_stage_ids": [(6, 0, env.ref("loyalty_mlm.stage_winback").ids)],
            "rule_ids": [
                (5, 0, 0),
                (
                    0,
                    0,
                    {
                        "minimum_qty": 1,
                        "reward_point_mode": "order",
                        "reward_point_amount": 1,
                    },
                ),
            ],
            "reward_ids": [
                (5, 0, 0),
                (
                    0,
                    0,
                    {
                        "reward_type": "discount",
                        "discount": 15,
                        "discount_mode": "percent",
                        "discount_applicability": "order",
                        "required_points": 1,
                    },
                ),
            ],
            **values,
        }
    )


class LoyaltyMlmScoresCommon(LoyaltyMlmPosCommon):
    """Sale and POS orders dated back from now, for the score tests: the
    products, the order helpers and the story of anna, bram, chloe and daan
    (the subclass creates them). See test_scores.py for the scores it
    gives."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.beans = cls.env["product.product"].create(
            {
                "name": "Beans",
                "list_price": 100.0,
                "standard_price": 60.0,
                "taxes_id": False,
                "invoice_policy": "order",
            }
        )
        cls.papers = cls.env["product.product"].create(
            {"name": "Papers", "list_price": 10.0, "taxes_id": False}
        )

    def sell(self, partner, product, qty, days_ago):
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [
                    (0, 0, {"product_id": product.id, "product_uom_qty": qty})
                ],
            }
        )
        order.action_confirm()
        order.date_order = fields.Datetime.now() - timedelta(days=days_ago)
        return order

    def pos_sell(self, partner, lines, days_ago):
        data = self.create_ui_order_data(lines, customer=partner)
        result = self.env["pos.order"].sync_from_ui([data])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        order.date_order = fields.Datetime.now() - timedelta(days=days_ago)
        return order

    def make_story(self):
        """The story's orders; returns chloe's POS refund."""
        for days in (10, 40, 70):
            self.sell(self.anna, self.beans, 2, days)
        self.sell(self.bram, self.papers, 10, 200)
        bread = self.pos_sell(self.chloe, [(self.product, 5)], 5)
        refund = self.pos_sell(
            self.chloe,
            [
                {
                    "product": self.product,
                    "quantity": -2,
                    "refunded_orderline_id": bread.lines[0].id,
                }
            ],
            3,
        )
        self.sell(self.chloe, self.beans, 1, 400)
        self.sell(self.daan, self.beans, 1, 500)
        self.sell(self.daan, self.beans, 5, 20)._action_cancel()
        return refund
