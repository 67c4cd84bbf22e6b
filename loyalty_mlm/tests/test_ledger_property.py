"""Randomised property test of the point ledger.

Hundreds of mixed operations (sale orders confirmed, cancelled and confirmed
again, with and without redeeming; POS orders synced, retried and refunded;
adjustments, the native balance wizard, donations, partner merges, expiry
with the clock moved forward, bonuses) over a few members, with the ledger
invariants asserted after every step.

Reproduce or enlarge a run with environment variables:

- ``LOYALTY_MLM_PROPERTY_SEED``: the seed (default ``DEFAULT_SEED``);
- ``LOYALTY_MLM_PROPERTY_STEPS``: operations per run (default 200, about a minute);
- ``LOYALTY_MLM_PROPERTY_SKIP_OPS``: operation names left out (comma
  separated), to look past a known failure;
- ``LOYALTY_MLM_PROPERTY_SHRINK_SECONDS``: time allowed to shrink a failure
  (default 120);
- ``LOYALTY_MLM_PROPERTY_REPLAY``: run these operations instead of random
  ones, written as the failure report prints them (``#0 new_member();
  #1 adjust_wizard_new_member(member='N0', points=5.0)``), to check a fix.

Operations that exercise bugs listed in issue #13 (skip them to look
further until they are fixed): ``adjust_wizard_new_member`` (point 9, Adjust
Points on a contact who is no member), ``pos_odd_points`` (point 7,
precision), ``pos_refund_again`` (point 5, a line refunded twice), ``merge``
(point 8, a refund after a merge reverses onto the merged-away card).

On failure the message gives the seed, every operation performed and the
smallest failing sequence found by delta debugging (each candidate is
replayed from the same fixture inside a savepoint that is rolled back).
"""

import ast
import contextlib
import logging
import math
import os
import random
import re
import time
from collections import defaultdict
from datetime import timedelta

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import UserError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import float_compare, float_round

from .common import LoyaltyMlmPosCommon

_logger = logging.getLogger(__name__)
# The wall clock, kept where freezegun does not replace it (it patches
# module attributes): timings taken while the date is frozen.
_WALL_CLOCK = [time.monotonic]


def _seconds():
    return _WALL_CLOCK[0]()


DEFAULT_SEED = 13013
DEFAULT_STEPS = 200
PRECISION = 2
BALANCE_TOLERANCE = 10 ** -(PRECISION + 3)
SPENDING_KINDS = ("redeem", "donation")
EARNING_KINDS = ("earn", "tier_bonus", "campaign_bonus")


class Violation(Exception):
    """An invariant broken after a step: `key` names the invariant (a shrunk
    sequence must break the same one), `message` says how."""

    def __init__(self, key, message):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _parse_ops(text):
    """Operations written as the failure report prints them, separated by
    semicolons or new lines: `#3 pos(member='B', qty=4, spend=0.0); ...`."""
    ops = []
    for chunk in filter(None, (c.strip() for c in re.split(r"[;\n]", text))):
        match = re.fullmatch(r"#(\d+)\s+(\w+)\((.*)\)", chunk)
        if not match:
            raise ValueError(f"Cannot read the operation {chunk!r}")
        call = ast.parse(f"f({match[3]})", mode="eval").body
        args = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        ops.append(Op(int(match[1]), match[2], **args))
    return ops or None


class _Rollback(Exception):
    """Leaves a replay's savepoint, undoing everything the replay did."""


class Op:
    """One operation: a name, its arguments and its position in the run.

    Arguments name members by key ("A", "B", "C" or "N<step>" for members an
    operation created) and orders by the step that created them, so an
    operation whose target is gone from a shrunk sequence is skipped instead
    of hitting another record.
    """

    __slots__ = ("args", "name", "step")

    def __init__(self, step, name, **args):
        self.step = step
        self.name = name
        self.args = args

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.args.items())
        return f"#{self.step} {self.name}({args})"


@tagged("post_install", "-at_install")
class TestLedgerProperty(LoyaltyMlmPosCommon):
    """The ledger invariants hold after every step of a seeded random run.

    After each operation:

    - balance: every member card's points equal the sum of its ledger to
      the last digit (stricter than the module's daily check, which rounds
      each side to the ledger's two decimals first);
    - append-only: ledger entries and lot allocations seen before are still
      there, unchanged (points, kind, card, source, expired lot);
    - FIFO lots: an allocation takes a positive amount from a positive
      entry of the same card for a negative one (an expiry only from its
      own lot); a lot's remaining is its points minus what was taken, a
      negative entry's unallocated is what no lot covered, both between 0
      and the entry's points; no card has an open lot and an open debt at
      once; open lots minus open debts equal the balance; after an expiry
      run, no lot past its expiry date keeps points;
    - merges: no card archived by a partner merge gets a new entry; a
      member has one active card;
    - spending (redeem, donation) never leaves a balance below zero;
    - a cancelled sale order's entries add up to zero;
    - refunds of a POS line take back at most what its order earned;
    - earning (an order without reward) is never refused, and no operation
      ends in a server error (an exception other than a UserError or
      ValidationError).
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.write(
            {
                "mlm_points_validity_months": 3,
                "mlm_auto_enroll": True,
                "mlm_welcome_bonus": 5.0,
                "mlm_birthday_bonus": 7.0,
            }
        )
        cls.reward = cls.program.reward_ids
        cls.manager = new_test_user(
            cls.env,
            login="mlm_property_manager",
            groups="loyalty_mlm.group_loyalty_mlm_manager,"
            "sales_team.group_sale_manager",
            company_id=cls.company.id,
            company_ids=[(6, 0, cls.company.ids)],
        )
        # Half points more on Mondays, Wednesdays and Fridays: campaign
        # bonuses that cancellations and refunds must take back too.
        now = fields.Datetime.now()
        cls.env["loyalty.mlm.campaign"].sudo().create(
            {
                "name": "Property campaign",
                "company_id": cls.company.id,
                "date_start": now - timedelta(days=1),
                "date_end": now + timedelta(days=3650),
                "tz": "UTC",
                "weekday_mon": True,
                "weekday_wed": True,
                "weekday_fri": True,
                "multiplier": 1.5,
                "channel": "both",
            }
        )
        cls.charity = cls.env["res.partner"].create(
            {"name": "Food Bank", "is_company": True, "mlm_is_charity": True}
        )
        cls.fixed_members = {
            key: cls.env["res.partner"].create({"name": f"Member {key}"})
            for key in ("A", "B", "C")
        }

    # ------------------------------------------------------------
    # The test
    # ------------------------------------------------------------

    def test_ledger_invariants_random_run(self):
        seed = int(os.environ.get("LOYALTY_MLM_PROPERTY_SEED") or DEFAULT_SEED)
        steps = int(os.environ.get("LOYALTY_MLM_PROPERTY_STEPS") or DEFAULT_STEPS)
        skip = {
            name.strip()
            for name in (os.environ.get("LOYALTY_MLM_PROPERTY_SKIP_OPS") or "").split(
                ","
            )
            if name.strip()
        }
        shrink_seconds = float(
            os.environ.get("LOYALTY_MLM_PROPERTY_SHRINK_SECONDS") or 120
        )
        given = _parse_ops(os.environ.get("LOYALTY_MLM_PROPERTY_REPLAY") or "")
        # Every run starts on the next Monday at 09:00: a seed meets the
        # same weekdays (campaign days) whatever day the suite runs.
        now = fields.Datetime.now()
        start = (now + timedelta(days=7 - now.weekday())).replace(
            hour=9, minute=0, second=0, microsecond=0
        )
        started = _seconds()
        run = _Run(
            self, start, rng=random.Random(seed), steps=steps, skip=skip, ops=given
        )
        ops, failure = run.replay()
        _logger.info(
            "Ledger property run: seed %s, %s operations in %.1fs, %s",
            seed,
            len(ops),
            _seconds() - started,
            run.summary(),
        )
        if not failure:
            return
        step, violation = failure
        performed = ops[: step + 1]
        minimal, replays = self._shrink(start, performed, violation, shrink_seconds)
        reproduce = (
            f"LOYALTY_MLM_PROPERTY_SEED={seed} LOYALTY_MLM_PROPERTY_STEPS={steps}"
        )
        if skip:
            reproduce += f" LOYALTY_MLM_PROPERTY_SKIP_OPS={','.join(sorted(skip))}"
        if given:
            reproduce = "LOYALTY_MLM_PROPERTY_REPLAY (the operations below)"
        message = "\n".join(
            [
                f"Ledger property broken (seed {seed}, {steps} steps; reproduce "
                f"with {reproduce})",
                f"{violation.key}: {violation.message}",
                f"after step {performed[-1]!r}",
                f"Minimal failing sequence ({len(minimal[0])} operations, "
                f"{replays} replays), breaking: {minimal[1].message}",
                *(f"    {op!r}" for op in minimal[0]),
                'Replay it with LOYALTY_MLM_PROPERTY_REPLAY="'
                + "; ".join(repr(op) for op in minimal[0])
                + '"',
                f"Operations performed ({len(performed)}):",
                *(f"    {op!r}" for op in performed),
            ]
        )
        _logger.error("%s", message)
        self.fail(message)

    def _shrink(self, start, ops, violation, seconds):
        """Delta debugging over the operation list: the smallest sequence
        found (within `seconds`) that still breaks the invariant `violation`
        broke, with its violation, and the number of replays it took."""
        key = violation.key
        deadline = _seconds() + seconds
        replays = 0

        def failing(candidate):
            nonlocal replays
            replays += 1
            _ops, failure = _Run(self, start, ops=candidate).replay()
            if failure and failure[1].key == key:
                # What follows the failing step is not needed.
                return candidate[: failure[0] + 1], failure[1]
            return None

        current = ops
        # First whole slices: everything about one member, then every
        # operation of one kind, then everything about one order (few
        # replays, large cuts).
        tried = set()
        while _seconds() < deadline:
            groups = defaultdict(set)
            for op in current:
                groups[("name", op.name)].add(op.step)
                for arg in ("member", "source", "target"):
                    if arg in op.args:
                        groups[("member", op.args[arg])].add(op.step)
                if "order" in op.args:
                    # An order: the operation that made it and all on it.
                    groups[("order", op.args["order"])] |= {op.step, op.args["order"]}
            todo = [
                (group, steps)
                for group, steps in sorted(groups.items(), key=lambda g: g[0][0])
                if group not in tried
            ]
            if not todo:
                break
            group, steps = todo[0]
            tried.add(group)
            candidate = [op for op in current if op.step not in steps]
            found = candidate and failing(candidate)
            if found:
                current, violation = found
        # Then delta debugging over what is left.
        chunks = 2
        while len(current) > 1 and _seconds() < deadline:
            size = math.ceil(len(current) / chunks)
            reduced = False
            for index in range(0, len(current), size):
                if _seconds() >= deadline:
                    break
                candidate = current[:index] + current[index + size :]
                if not candidate:
                    continue
                found = failing(candidate)
                if found:
                    current, violation = found
                    chunks = max(chunks - 1, 2)
                    reduced = True
                    break
            if not reduced:
                if chunks >= len(current):
                    break
                chunks = min(len(current), chunks * 2)
        return (current, violation), replays


class _Run:
    """One run of operations against the fixture of `case`, inside a
    savepoint rolled back at the end: generated from `rng` (`steps`
    operations, none named in `skip`) or replayed from `ops`."""

    def __init__(self, case, start, rng=None, steps=0, skip=(), ops=None):
        self.case = case
        self.env = case.env
        self.start = start
        self.rng = rng
        self.steps = steps
        self.skip = set(skip)
        self.given = ops
        self.counts = defaultdict(lambda: defaultdict(int))

    # ------------------------------------------------------------
    # Driving
    # ------------------------------------------------------------

    def replay(self):
        """Run; returns (operations run, None or (index, Violation))."""
        done = []
        failure = None
        # The savepoint sees _Rollback (and undoes the run), then it is
        # swallowed.
        with (
            contextlib.suppress(_Rollback),
            self.env.cr.savepoint(),
            freeze_time(self.start) as clock,
        ):
            self.clock = clock
            self._reset_state()
            todo = self.given if self.given is not None else range(self.steps)
            for index, item in enumerate(todo):
                op = item if self.given is not None else self._generate(index)
                done.append(op)
                try:
                    self._step(op)
                except Violation as violation:
                    failure = (index, violation)
                    break
                # Ten minutes between operations: entries get distinct
                # dates, as in real life.
                clock.tick(timedelta(minutes=10))
            raise _Rollback
        self.env.invalidate_all()
        self.env["loyalty.mlm.ledger"]._mlm_clear_splits()
        return done, failure

    def summary(self):
        """Outcomes and seconds spent per operation."""
        return (
            ", ".join(
                f"{name}: "
                + "/".join(f"{outcome} {count}" for outcome, count in sorted(c.items()))
                + f" ({self.timings[name]:.1f}s)"
                for name, c in sorted(self.counts.items())
            )
            + f"; invariant checks {self.timings['(invariant checks)']:.1f}s"
        )

    def _reset_state(self):
        self.members = dict(self.case.fixed_members)
        self.records = {}  # step -> created record (sale / pos order)
        self.pos_data = {}  # step -> (sync data, confirm payload)
        self.refunds = defaultdict(list)  # original pos order id -> refund ids
        self.merged_cards = set()
        self.merging_cards = set()
        self.timings = defaultdict(float)
        self.expired_now = False
        self.env.flush_all()
        cr = self.env.cr
        cr.execute("SELECT COALESCE(MAX(id), 0) FROM loyalty_mlm_ledger")
        self.ledger_floor = cr.fetchone()[0]
        cr.execute("SELECT COALESCE(MAX(id), 0) FROM loyalty_mlm_ledger_allocation")
        self.allocation_floor = cr.fetchone()[0]
        self.seen_entries = {}
        self.seen_allocations = {}

    def _step(self, op):
        handler = getattr(self, f"_op_{op.name}")
        self.current_step = op.step
        self.expired_now = False
        self.merging_cards = set()
        before = self._max_ledger_id()
        started = _seconds()
        try:
            with self.env.cr.savepoint():
                outcome = handler(**op.args) or "done"
        except (UserError, ValidationError) as error:
            outcome = "refused"
            if self.given is None:
                _logger.info("Refused %r: %s", op, error)
            # pos_odd_points may be refused: the server may refuse points the
            # programme does not give (issue #13 point 4) rather than round.
            if op.name in ("sale", "pos") and not op.args.get("spend"):
                # Issue #13 point 10: earning stays possible everywhere.
                raise Violation("earning refused", f"{op!r} refused: {error}") from None
        except Violation:
            raise
        except Exception as error:  # any other error is a bug: report it
            # The traceback once, from the first run (not every replay).
            if self.given is None:
                _logger.info("Server error at %r", op, exc_info=True)
            raise Violation(
                "server error", f"{op!r}: {type(error).__name__}: {error}"
            ) from None
        self.counts[op.name][outcome] += 1
        checked = _seconds()
        self.timings[op.name] += checked - started
        self._check(op, before)
        self.timings["(invariant checks)"] += _seconds() - checked

    def _max_ledger_id(self):
        self.env.flush_all()
        self.env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM loyalty_mlm_ledger")
        return self.env.cr.fetchone()[0]

    # ------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------

    WEIGHTS = {
        "sale": 14,
        "sale_cancel": 6,
        "sale_reconfirm": 4,
        "pos": 16,
        "pos_odd_points": 2,
        "pos_retry": 3,
        "pos_refund": 7,
        "pos_refund_again": 2,
        "adjust": 4,
        "adjust_wizard": 3,
        "adjust_wizard_new_member": 3,
        "balance_wizard": 2,
        "donate": 4,
        "merge": 2,
        "new_member": 2,
        "enroll": 2,
        "time": 4,
        "birthday": 2,
        "tier_review": 1,
    }

    def _generate(self, step):
        rng = self.rng
        live = self._live_members()
        while True:
            name = rng.choices(list(self.WEIGHTS), list(self.WEIGHTS.values()))[0]
            if name in self.skip:
                continue
            op = self._generate_args(step, name, live)
            if op:
                return op

    def _generate_args(self, step, name, live):
        rng = self.rng
        member = rng.choice(live) if live else None
        balance = self._balance(member) if member else 0.0
        # Orders of refused operations were rolled back: not there any more.
        sales = [
            s for s, r in self.records.items() if r._name == "sale.order" and r.exists()
        ]
        pos = [
            s
            for s, r in self.records.items()
            if r._name == "pos.order" and s in self.pos_data and r.exists()
        ]
        if name in (
            "sale",
            "pos",
            "pos_odd_points",
            "adjust",
            "adjust_wizard",
            "adjust_wizard_new_member",
            "balance_wizard",
        ):
            if not member:
                return None
        if name == "sale":
            # Redeem when the balance allows, now and then.
            spend = balance >= self.case.reward.required_points and rng.random() < 0.4
            amount = float_round(rng.uniform(1, 250), 2)
            return Op(step, name, member=member, amount=amount, spend=spend)
        if name in ("sale_cancel", "sale_reconfirm"):
            # Mostly orders in the state the operation expects.
            state = "sale" if name == "sale_cancel" else "cancel"
            ready = [s for s in sales if self.records[s].state == state]
            pool = ready if ready and rng.random() < 0.8 else sales
            return pool and Op(step, name, order=rng.choice(pool))
        if name == "pos":
            qty = rng.randint(1, 5)
            spend = 0.0
            if balance >= 10 and rng.random() < 0.4:
                spend = float(rng.randint(10, int(min(balance, qty * 900))))
            elif rng.random() < 0.05:
                # A register sends more points than the member has: refused.
                spend = float(int(max(balance, 0)) + rng.randint(1, 50))
            return Op(step, name, member=member, qty=qty, spend=spend)
        if name == "pos_odd_points":
            return Op(step, name, member=member, qty=rng.randint(1, 5))
        if name == "pos_retry" and pos:
            return Op(step, name, order=rng.choice(pos))
        if name in ("pos_refund", "pos_refund_again") and pos:
            order = rng.choice(pos)
            line = self._refundable_line(self.records[order])
            if not line:
                return None
            left = int(line.qty - line.refunded_qty)
            if name == "pos_refund":
                # Partial or full, of what is left to refund.
                return left > 0 and Op(
                    step, name, order=order, qty=rng.randint(1, left)
                )
            # Issue #13 point 5: the same line refunded again, beyond what was
            # sold; refunds of a line are capped at what it earned.
            return left < line.qty and Op(
                step, name, order=order, qty=rng.randint(1, int(line.qty))
            )
        if name == "adjust":
            points = float_round(rng.uniform(-60, 120), 2)
            return Op(step, name, member=member, points=points or 1.0)
        if name in ("adjust_wizard", "adjust_wizard_new_member"):
            # Issue #13 point 9: Adjust Points on a contact who is no member
            # yet (the wizard makes them one) is a separate operation.
            if (name == "adjust_wizard") != bool(self._card(self._partner(member))):
                return None
            points = float_round(rng.uniform(-40, 80), 2)
            return Op(step, name, member=member, points=points or 1.0)
        if name == "balance_wizard":
            return Op(step, name, member=member, balance=float(rng.randint(0, 300)))
        if name == "donate" and member:
            over = rng.random() < 0.15
            points = float(rng.randint(1, 30)) + (max(balance, 0) if over else 0)
            if not over and balance >= 1:
                points = float(rng.randint(1, int(balance)))
            return Op(step, name, member=member, points=points)
        if name == "merge" and len(live) >= 3:
            source, target = rng.sample(live, 2)
            return Op(step, name, source=source, target=target)
        if name == "new_member" and len(live) < 6:
            return Op(step, name)
        if name == "enroll" and member:
            return Op(step, name, member=member)
        if name == "time":
            return Op(step, name, days=rng.randint(1, 75), expire=rng.random() < 0.7)
        if name == "birthday" and member:
            return Op(step, name, member=member)
        if name == "tier_review":
            return Op(step, name)
        return None

    def _live_members(self):
        return [key for key, partner in self.members.items() if partner.exists()]

    def _partner(self, key):
        partner = self.members.get(key)
        return partner if partner and partner.exists() else None

    def _card(self, partner):
        return (
            self.env["loyalty.card"]
            .sudo()
            .search(
                [
                    ("partner_id", "=", partner.id),
                    ("program_id", "=", self.case.program.id),
                ]
            )
        )

    def _balance(self, key):
        partner = self._partner(key)
        return self._card(partner).points if partner else 0.0

    def _record(self, step, model):
        record = self.records.get(step)
        if record and record._name == model and record.exists():
            return record
        return None

    # ------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------

    def _op_new_member(self):
        # Keyed by the step: the same member in a shrunk replay.
        key = f"N{self.current_step}"
        self.members[key] = self.env["res.partner"].create({"name": f"Member {key}"})

    def _op_enroll(self, member):
        partner = self._partner(member)
        if not partner:
            return "skipped"
        partner._mlm_enroll(self.case.company)

    def _op_sale(self, member, amount, spend):
        partner = self._partner(member)
        if not partner:
            return "skipped"
        order = self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "order_line": [
                    (
                        0,
                        0,
                        {
                            "product_id": self.case.product.id,
                            "product_uom_qty": 1,
                            "price_unit": amount,
                        },
                    )
                ],
            }
        )
        order._update_programs_and_rewards()
        outcome = "done"
        if spend:
            card = self._card(partner)
            result = (
                order._apply_program_reward(self.case.reward, card)
                if card
                else {"error": "no card"}
            )
            outcome = "no reward" if result.get("error") else "redeemed"
        order.action_confirm()
        self.records[self.current_step] = order
        return outcome

    def _op_sale_cancel(self, order):
        order = self._record(order, "sale.order")
        if not order or order.state != "sale":
            return "skipped"
        order._action_cancel()

    def _op_sale_reconfirm(self, order):
        order = self._record(order, "sale.order")
        if not order or order.state != "cancel":
            return "skipped"
        order.action_draft()
        order._update_programs_and_rewards()
        order.action_confirm()

    def _reward_line(self, code, spend):
        reward = self.case.reward
        discount = float_round(spend * reward.discount, 2)
        return {
            "product": reward.discount_line_product_id,
            "quantity": 1,
            "is_reward_line": True,
            "reward_id": reward.id,
            "reward_identifier_code": code,
            "points_cost": spend,
            "price_unit": -discount,
            "price_subtotal": -discount,
            "price_subtotal_incl": -discount,
        }

    def _op_pos_odd_points(self, member, qty):
        """Issue #13 point 7 (precision): the register's points carry a third
        decimal (a programme earning 1.005 points per unit sends them); card
        and ledger must round them the same way."""
        return self._op_pos(member, qty, 0.0, odd=True)

    def _op_pos(self, member, qty, spend, odd=False):
        partner = self._partner(member)
        if not partner:
            return "skipped"
        code = f"R{self.current_step}"
        lines = [(self.case.product, qty)]
        if spend:
            lines.append(self._reward_line(code, spend))
        data = self.case.create_ui_order_data(lines, customer=partner)
        if spend:
            # create_ui_order_data prices the reward line at the product's
            # price: the register sends the discount it gave.
            discount = float_round(spend * self.case.reward.discount, 2)
            data["lines"][1][2].update(
                price_unit=-discount,
                price_subtotal=-discount,
                price_subtotal_incl=-discount,
            )
            total = sum(line[2]["price_subtotal_incl"] for line in data["lines"])
            data["amount_total"] = data["amount_paid"] = total
            data["payment_ids"][0][2]["amount"] = total
        result = self.env["pos.order"].sync_from_ui([data])
        order = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        self.records[self.current_step] = order
        # What the register earns: 1 point per currency unit paid.
        earned = float_round(order.amount_total, 2) + (0.005 if odd else 0.0)
        card = self._card(partner)
        key = str(card.id) if card else "-1"
        payload = {
            key: {
                "points": earned - spend,
                "program_id": self.case.program.id,
                "coupon_id": card.id if card else -1,
                "partner_id": partner.id,
            }
        }
        if spend:
            payload[key]["line_codes"] = [code]
        self.pos_data[self.current_step] = (data, payload)
        order.confirm_coupon_programs(payload)
        return "redeemed" if spend else "done"

    def _op_pos_retry(self, order):
        """The register sends the order and its points again (network
        retry, offline queue)."""
        if order not in self.pos_data or not self._record(order, "pos.order"):
            return "skipped"
        data, payload = self.pos_data[order]
        result = self.env["pos.order"].sync_from_ui([data])
        # The register confirms the points on the order the server answers
        # with (none when it already had it: the one it knew).
        synced = result["pos.order"]
        again = self.env["pos.order"].browse(synced[0]["id"] if synced else [])
        (again or self.records[order]).confirm_coupon_programs(payload)

    @staticmethod
    def _refundable_line(order):
        return order.lines.filtered(lambda li: li.qty > 0 and not li.is_reward_line)[:1]

    def _op_pos_refund(self, order, qty):
        """Refund `qty` of the order's product line, at most what is left."""
        original = self._record(order, "pos.order")
        line = original and self._refundable_line(original)
        if not line:
            return "skipped"
        qty = min(qty, int(line.qty - line.refunded_qty))
        if qty <= 0:
            return "skipped"
        return self._refund(original, line, qty)

    def _op_pos_refund_again(self, order, qty):
        """Refund `qty` of the order's product line whatever was refunded."""
        original = self._record(order, "pos.order")
        line = original and self._refundable_line(original)
        if not line:
            return "skipped"
        return self._refund(original, line, qty)

    def _refund(self, original, line, qty):
        data = self.case.create_ui_order_data(
            [
                {
                    "product": line.product_id,
                    "quantity": -qty,
                    "refunded_orderline_id": line.id,
                }
            ],
            customer=original.partner_id,
        )
        result = self.env["pos.order"].sync_from_ui([data])
        refund = self.env["pos.order"].browse(result["pos.order"][0]["id"])
        self.refunds[original.id].append(refund.id)
        return "full" if qty >= line.qty else "partial"

    def _op_adjust(self, member, points):
        partner = self._partner(member)
        card = self._card(partner) if partner else None
        if not card:
            return "skipped"
        card._mlm_adjust(points, "Property test")

    def _op_adjust_wizard(self, member, points):
        partner = self._partner(member)
        if not partner:
            return "skipped"
        wizard = (
            self.env["loyalty.mlm.adjust.wizard"]
            .with_user(self.case.manager)
            .create({"partner_id": partner.id, "points": points, "reason": "Goodwill"})
        )
        wizard.action_apply()

    def _op_adjust_wizard_new_member(self, member, points):
        return self._op_adjust_wizard(member, points)

    def _op_balance_wizard(self, member, balance):
        partner = self._partner(member)
        card = self._card(partner) if partner else None
        if not card:
            return "skipped"
        wizard = (
            self.env["loyalty.card.update.balance"]
            .with_user(self.case.manager)
            .create(
                {"card_id": card.id, "new_balance": balance, "description": "Recount"}
            )
        )
        wizard.action_update_card_point()

    def _op_donate(self, member, points):
        partner = self._partner(member)
        if not partner:
            return "skipped"
        wizard = (
            self.env["loyalty.mlm.donation.wizard"]
            .with_user(self.case.manager)
            .create(
                {
                    "partner_id": partner.id,
                    "charity_id": self.case.charity.id,
                    "points": points,
                }
            )
        )
        wizard.action_donate()

    def _op_merge(self, source, target):
        source_partner = self._partner(source)
        target_partner = self._partner(target)
        if not source_partner or not target_partner or source == target:
            return "skipped"
        cards = self.env["loyalty.card"].with_context(active_test=False).sudo()
        before = cards.search(
            [
                ("partner_id", "in", (source_partner | target_partner).ids),
                ("program_id", "=", self.case.program.id),
            ]
        )
        wizard = self.env["base.partner.merge.automatic.wizard"].create({})
        wizard._merge((source_partner | target_partner).ids, target_partner)
        # The cards the merge archived: nothing may land there after this
        # step (the merge itself empties them).
        self.merging_cards = set(before.exists().filtered(lambda c: not c.active).ids)

    def _op_time(self, days, expire):
        self.clock.tick(timedelta(days=days))
        if expire:
            # sudo: scheduled actions run as the superuser.
            self.env["loyalty.mlm.ledger"].sudo()._cron_expire_points()
            self.expired_now = True
            return "expired"
        return "moved"

    def _op_birthday(self, member):
        partner = self._partner(member)
        if not partner:
            return "skipped"
        today = fields.Date.context_today(partner)
        # The 28th: a birthday every year, 29 February never in play.
        day = min(today.day, 28)
        partner.mlm_birthdate = today.replace(year=today.year - 30, day=day)
        if day != today.day:
            return "skipped"
        self.env["loyalty.mlm.bonus"].sudo()._cron_birthday_bonus()

    def _op_tier_review(self):
        self.env["loyalty.mlm.tier"].sudo()._cron_review()

    # ------------------------------------------------------------
    # Invariants
    # ------------------------------------------------------------

    def _check(self, op, before):
        self.env.flush_all()
        cr = self.env.cr
        cr.execute(
            """
            SELECT c.id, c.points, c.active, c.partner_id,
                   COALESCE(SUM(l.points), 0)
              FROM loyalty_card c
         LEFT JOIN loyalty_mlm_ledger l ON l.card_id = c.id
             WHERE c.program_id = %s
          GROUP BY c.id
            """,
            [self.case.program.id],
        )
        cards = {row[0]: row[1:] for row in cr.fetchall()}
        for card_id, (points, _active, partner_id, ledger) in cards.items():
            # Equal to the last digit: a card holding 10.005 next to a ledger
            # of 10.01 has drifted (issue #13 point 7), even if both round to
            # the same cents; only float noise is tolerated.
            if abs(points - ledger) >= BALANCE_TOLERANCE:
                raise Violation(
                    "balance",
                    f"card {card_id} (partner {partner_id}) holds {points!r} "
                    f"points, its ledger sums to {ledger!r}",
                )
        active = defaultdict(list)
        for card_id, (_points, is_active, partner_id, _ledger) in cards.items():
            if is_active and partner_id:
                active[partner_id].append(card_id)
        for partner_id, ids in active.items():
            if len(ids) > 1:
                raise Violation(
                    "one card", f"partner {partner_id} has active cards {ids}"
                )

        cr.execute(
            """
            SELECT id, card_id, points, kind, res_model, res_id, expired_lot_id,
                   remaining, unallocated, expiry_date
              FROM loyalty_mlm_ledger
             WHERE id > %s AND program_id = %s
            """,
            [self.ledger_floor, self.case.program.id],
        )
        entries = {row[0]: row[1:] for row in cr.fetchall()}
        # The daily jobs run for every company: only this programme's lots.
        cr.execute(
            """
            SELECT a.id, a.lot_id, a.entry_id, a.points
              FROM loyalty_mlm_ledger_allocation a
              JOIN loyalty_mlm_ledger l ON l.id = a.entry_id
             WHERE a.id > %s AND l.program_id = %s
            """,
            [self.allocation_floor, self.case.program.id],
        )
        allocations = {row[0]: row[1:] for row in cr.fetchall()}

        self._check_append_only(entries, allocations)
        self._check_fifo(entries, allocations, cards)
        new = {eid: e for eid, e in entries.items() if eid > before}
        for entry_id, entry in new.items():
            if entry[0] in self.merged_cards:
                raise Violation(
                    "merged-away card",
                    f"entry {entry_id} ({entry[2]} {entry[1]:+g}, source "
                    f"{entry[3]},{entry[4]}) posted on card {entry[0]}, archived "
                    "by a partner merge",
                )
        for entry_id, entry in new.items():
            card = cards.get(entry[0])
            if (
                entry[2] in SPENDING_KINDS
                and card
                and float_compare(card[0], 0.0, precision_digits=PRECISION) < 0
            ):
                raise Violation(
                    "negative from spending",
                    f"{op!r} posted {entry[2]} {entry[1]:+g} (entry {entry_id}) "
                    f"and left card {entry[0]} at {card[0]!r}",
                )
        self.merged_cards |= self.merging_cards
        self._check_sale_cancellations(entries)
        self._check_refund_caps(entries)
        if self.expired_now:
            today = fields.Date.context_today(self.env.user)
            for entry_id, entry in entries.items():
                if (
                    entry[1] > 0
                    and entry[0]
                    and entry[8]
                    and entry[8] < today
                    and entry[6] > 0
                ):
                    raise Violation(
                        "expiry",
                        f"lot {entry_id} expired on {entry[8]} still holds "
                        f"{entry[6]} points after the expiry run on {today}",
                    )
        self.seen_entries.update(
            {eid: e[:6] for eid, e in entries.items() if eid not in self.seen_entries}
        )
        self.seen_allocations.update(allocations)

    def _check_append_only(self, entries, allocations):
        for entry_id, old in self.seen_entries.items():
            now = entries.get(entry_id)
            if now is None:
                raise Violation("append-only", f"ledger entry {entry_id} deleted")
            if now[:6] != old:
                raise Violation(
                    "append-only",
                    f"ledger entry {entry_id} changed from {old} to {now[:6]} "
                    "(card, points, kind, source, expired lot)",
                )
        for allocation_id, old in self.seen_allocations.items():
            if allocations.get(allocation_id) != old:
                raise Violation(
                    "append-only",
                    f"allocation {allocation_id} changed from {old} to "
                    f"{allocations.get(allocation_id)}",
                )

    def _check_fifo(self, entries, allocations, cards):
        taken = defaultdict(float)  # lot -> allocated
        covered = defaultdict(float)  # negative entry -> allocated
        for allocation_id, (lot_id, entry_id, points) in allocations.items():
            lot, entry = entries.get(lot_id), entries.get(entry_id)
            if not lot or not entry:
                raise Violation(
                    "fifo", f"allocation {allocation_id} links an unknown entry"
                )
            if points <= 0 or lot[1] <= 0 or entry[1] >= 0 or lot[0] != entry[0]:
                raise Violation(
                    "fifo",
                    f"allocation {allocation_id} takes {points} from entry "
                    f"{lot_id} ({lot[1]:+g}, card {lot[0]}) for entry {entry_id} "
                    f"({entry[1]:+g}, card {entry[0]})",
                )
            if entry[5] and entry[5] != lot_id:
                raise Violation(
                    "fifo",
                    f"expiry {entry_id} of lot {entry[5]} consumed lot {lot_id}",
                )
            taken[lot_id] += points
            covered[entry_id] += points
        open_lots = defaultdict(float)
        open_debts = defaultdict(float)
        for entry_id, entry in entries.items():
            card_id, points, remaining, unallocated = (
                entry[0],
                entry[1],
                entry[6],
                entry[7],
            )
            if points > 0:
                expected, field = points - taken[entry_id], "remaining"
                value, other = remaining, unallocated
            else:
                expected, field = -points - covered[entry_id], "unallocated"
                value, other = unallocated, remaining
            if (
                float_compare(value, expected, precision_digits=PRECISION)
                or float_compare(other, 0.0, precision_digits=PRECISION)
                or float_compare(expected, 0.0, precision_digits=PRECISION) < 0
                or float_compare(expected, abs(points), precision_digits=PRECISION) > 0
            ):
                raise Violation(
                    "fifo",
                    f"entry {entry_id} ({entry[2]} {points:+g}, card {card_id}): "
                    f"{field} {value} but {abs(points)} minus allocated "
                    f"{taken[entry_id] or covered[entry_id]} is {expected} "
                    f"(other field {other})",
                )
            if card_id:
                open_lots[card_id] += remaining
                open_debts[card_id] += unallocated
        for card_id, (_points, _active, _partner, ledger) in cards.items():
            lots, debts = open_lots[card_id], open_debts[card_id]
            if float_compare(lots, 0.0, precision_digits=PRECISION) > 0 and (
                float_compare(debts, 0.0, precision_digits=PRECISION) > 0
            ):
                raise Violation(
                    "fifo",
                    f"card {card_id} has open lots ({lots}) and open debts "
                    f"({debts}) at once",
                )
            if float_compare(lots - debts, ledger, precision_digits=PRECISION):
                raise Violation(
                    "fifo",
                    f"card {card_id}: open lots {lots} minus open debts {debts} "
                    f"is not its ledger balance {ledger}",
                )

    def _check_sale_cancellations(self, entries):
        orders = [
            r for r in self.records.values() if r._name == "sale.order" and r.exists()
        ]
        cancelled = {order.id for order in orders if order.state == "cancel"}
        if not cancelled:
            return
        net = defaultdict(float)
        for entry in entries.values():
            if entry[3] == "sale.order" and entry[4] in cancelled:
                net[entry[4]] += entry[1]
        for order_id, points in net.items():
            if float_compare(points, 0.0, precision_digits=PRECISION):
                raise Violation(
                    "cancel nets to zero",
                    f"cancelled sale order {order_id} still holds {points:+g} "
                    "points in the ledger",
                )

    def _check_refund_caps(self, entries):
        """Each POS order here has one product line: what its refunds take
        back is capped at what the order earned (bonuses included)."""
        if not self.refunds:
            return
        by_order = defaultdict(lambda: defaultdict(float))
        for entry in entries.values():
            if entry[3] == "pos.order":
                by_order[entry[4]][entry[2]] += entry[1]
        for original_id, refund_ids in self.refunds.items():
            earned = sum(by_order[original_id][kind] for kind in EARNING_KINDS)
            taken = -sum(by_order[refund_id]["reversal"] for refund_id in refund_ids)
            if float_compare(taken, earned, precision_digits=PRECISION) > 0:
                raise Violation(
                    "refund cap",
                    f"refunds {refund_ids} of POS order {original_id} took back "
                    f"{taken} points, it earned {earned}",
                )
