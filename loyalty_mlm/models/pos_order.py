import logging
import math
from collections import defaultdict

from psycopg2 import errorcodes, errors

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, create_index, float_compare, float_is_zero, float_round

from .loyalty_mlm_ledger import PRECISION, mlm_reason, mlm_source

_logger = logging.getLogger(__name__)

# Largest number of points one register call may move on one card: far above
# any real order, far below what breaks a float or a report.
MAX_POINTS = 1e9
UUID_CONSTRAINT = "pos_order_mlm_uuid_unique"


class ConcurrentOrderSync(errors.SerializationFailure):
    """A twin call (offline queue flush and retry, two tabs) saved the same
    order first. Raised as a serialization failure so that Odoo's request
    retry replays this call on a fresh snapshot, where the order exists and
    is answered as already saved."""

    pgcode = errorcodes.SERIALIZATION_FAILURE


def _finite_number(value):
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= MAX_POINTS
    )


class PosOrder(models.Model):
    _inherit = "pos.order"

    # One order per register uuid, whatever the timing of the register's
    # calls: native code checks the uuid with a search that a concurrent
    # twin call cannot see (REPEATABLE READ).
    _sql_constraints = [
        (
            "mlm_uuid_unique",
            "unique(uuid)",
            "This order was already saved (same identifier).",
        )
    ]

    def init(self):
        res = super().init()
        # Odoo's order sync looks up the combo children of each order line
        # it saves (pos.order.line.combo_parent_id) with no index: a scan of
        # every register line, 70 to 100 ms an order at 1,000,000 POS orders
        # (bench/README.md), more than the whole sync at a smaller size.
        # Partial: only the lines of a combo are in it.
        create_index(
            self.env.cr,
            "pos_order_line_mlm_combo_parent_index",
            "pos_order_line",
            ["combo_parent_id"],
            where="combo_parent_id IS NOT NULL",
        )
        return res

    mlm_points_confirmed = fields.Boolean(
        string="Points Applied",
        copy=False,
        readonly=True,
        help="The loyalty points of this order were applied (a retried call "
        "from the register does not apply them again).",
    )
    mlm_program_ids = fields.Many2many(
        "loyalty.program",
        "pos_order_mlm_program_rel",
        "order_id",
        "program_id",
        string="Targeted Programmes",
        copy=False,
        readonly=True,
        help="The targeted programmes the customer could use when the order "
        "reached the server (before the order itself moved their stage).",
    )

    @api.model
    def sync_from_ui(self, orders):
        """Save each register order once, whatever the timing of the calls.

        Two calls with the same order (offline queue flush and a retry, two
        tabs) at the same moment both miss the other's order in their
        snapshot; the unique uuid makes the second wait for the first and
        fail, and it is replayed on a fresh snapshot (Odoo's request retry).
        An order already saved is answered as saved, so the register maps it
        and confirms its points (once: confirm_coupon_programs)."""
        try:
            result = super().sync_from_ui(orders)
        except errors.UniqueViolation as error:
            if error.diag.constraint_name != UUID_CONSTRAINT:
                raise
            raise ConcurrentOrderSync(str(error)) from error
        return self._mlm_answer_saved_twins(orders, result)

    @api.model
    def _mlm_answer_saved_twins(self, orders, result):
        """Add the orders the call re-sent after they were paid (native code
        leaves them out of the answer) to `result`. Costs nothing when every
        order of the call was saved now, the usual case."""
        answered = {values.get("uuid") for values in result.get("pos.order") or []}
        missing = [
            order.get("uuid")
            for order in orders
            if order.get("uuid") and order.get("uuid") not in answered
        ]
        if not missing:
            return result
        twins = self.search([("uuid", "in", missing)])
        if not twins:
            return result
        config_id = twins.config_id.ids[0]
        for model, records in (
            ("pos.order", twins),
            ("pos.payment", twins.payment_ids),
            ("pos.order.line", twins.lines),
        ):
            result.setdefault(model, [])
            result[model] += records.read(
                records._load_pos_data_fields(config_id), load=False
            )
        return result

    @api.model
    def _process_order(self, order, existing_order):
        """Refuse a redemption the member programme does not allow, and spend
        the points of a paid order here, with the member card locked.

        The register computes the discount; the server recomputes it from the
        points spent and refuses the whole order (nothing saved) when the
        discount is larger, or when the card has fewer points than spent.
        Spending in the same transaction that saves the order, after the card
        is locked, is what stops two registers from spending the same points:
        the second waits, then sees the first's balance.
        """
        self._mlm_check_line_values(order)
        self._mlm_check_order_company(order)
        spend = self._mlm_check_redemptions(order)
        eligible = self._mlm_check_targeted_programs(order)
        order_id = super()._process_order(order, existing_order)
        # A Winback customer's order moves them out of Winback when it is
        # paid, before the register sends the points: judge those points by
        # what the customer was when the order arrived.
        order = self.browse(order_id)
        if eligible or (existing_order and order.mlm_program_ids):
            order.mlm_program_ids = eligible
        if spend and order.state != "draft":
            order._mlm_post_redemptions(spend)
        return order_id

    @api.model
    def _mlm_check_line_values(self, order):
        """Refuse reward lines whose numbers no register sends: a negative or
        non-finite points cost (a "redeem" that credits), an unknown reward."""
        for cmd in order.get("lines") or []:
            if cmd[0] not in (0, 1) or not isinstance(cmd[2], dict):
                continue
            line = cmd[2]
            cost = line.get("points_cost")
            if cost in (None, False):
                continue
            if not _finite_number(cost) or cost < 0:
                raise UserError(
                    _(
                        "A reward line of this order costs %(points)s points, which "
                        "is not a valid number of points. The order was not saved.",
                        points=cost,
                    )
                )
            if cost and not isinstance(line.get("reward_id"), int):
                raise UserError(
                    _(
                        "A line of this order spends points without a reward. "
                        "The order was not saved."
                    )
                )

    @api.model
    def _mlm_check_order_company(self, order):
        """Refuse the whole order (nothing saved) when a reward line or a card
        of it belongs to a programme of another company than the register's:
        a register never loads those, so such an order is forged or stale."""
        session = self.env["pos.session"].browse(order.get("session_id"))
        company = session.company_id or self.env.company
        lines = [
            cmd[2]
            for cmd in order.get("lines") or []
            if cmd[0] in (0, 1) and isinstance(cmd[2], dict)
        ]
        reward_ids = {
            line["reward_id"]
            for line in lines
            if isinstance(line.get("reward_id"), int)
        }
        card_ids = {
            line["coupon_id"]
            for line in lines
            if isinstance(line.get("coupon_id"), int) and line["coupon_id"] > 0
        }
        programs = (
            self.env["loyalty.reward"].sudo().browse(reward_ids).program_id
            | self.env["loyalty.card"].sudo().browse(card_ids).exists().program_id
        )
        foreign = programs.filtered(
            lambda program: program.company_id and program.company_id != company
        )
        if foreign:
            raise UserError(
                _(
                    "The programme %(program)s belongs to another company than "
                    "this register's (%(company)s): its rewards and cards cannot "
                    "be used here. The order was not saved.",
                    program=foreign[0].name,
                    company=company.name,
                )
            )

    @api.model
    def _mlm_check_targeted_programs(self, order):
        """Refuse the whole order (nothing saved) when one of its reward lines
        or coupons belongs to a targeted programme its customer may not use
        (the register decided on data loaded when the session opened).

        Returns the targeted programmes of the register the customer may use.
        """
        session = self.env["pos.session"].browse(order.get("session_id"))
        company = session.company_id or self.env.company
        partner = (
            self.env["res.partner"]
            .browse(order.get("partner_id") or [])
            .with_company(company)
        )
        eligible = (
            session.config_id._mlm_targeted_programs()
            .with_company(company)
            .filtered(lambda program: program._is_partner_valid(partner))
            if session.config_id
            else self.env["loyalty.program"]
        )
        lines = [
            cmd[2]
            for cmd in order.get("lines") or []
            if cmd[0] in (0, 1) and (cmd[2].get("reward_id") or cmd[2].get("coupon_id"))
        ]
        if not lines:
            return eligible
        programs = (
            self.env["loyalty.reward"]
            .browse({line["reward_id"] for line in lines if line.get("reward_id")})
            .program_id
        )
        coupon_ids = {
            line["coupon_id"]
            for line in lines
            if isinstance(line.get("coupon_id"), int) and line["coupon_id"] > 0
        }
        programs |= self.env["loyalty.card"].browse(coupon_ids).exists().program_id
        program, message = programs.with_company(company)._mlm_check_partner(partner)
        if program:
            raise UserError(
                _(
                    "%(reason)s The order was not saved: remove the reward and "
                    "validate the order again.",
                    reason=message,
                )
            )
        return eligible

    @api.model
    def _mlm_check_redemptions(self, order):
        """Check the member-programme reward lines of a register order and
        lock the member cards they spend from: {card: points to spend}.

        The cards are locked before their balance is read: a concurrent
        spend on the same card either finished (and is seen) or waits."""
        lines = [
            cmd[2]
            for cmd in order.get("lines") or []
            if cmd[0] in (0, 1)
            and cmd[2].get("reward_id")
            and cmd[2].get("points_cost")
        ]
        if not lines:
            return {}
        rewards = self.env["loyalty.reward"].browse(
            {line["reward_id"] for line in lines}
        )
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        spent = {}
        for line in lines:
            reward = rewards.filtered(lambda r, rid=line["reward_id"]: r.id == rid)
            if reward.program_id.id not in member_ids:
                continue
            if reward.discount_mode == "per_point":
                allowed = line["points_cost"] * reward.discount
                given = -(line.get("price_subtotal_incl") or 0.0)
                if float_compare(given, allowed, precision_digits=2) > 0:
                    raise UserError(
                        _(
                            "The discount of %(given)s for %(points)s points is more "
                            "than the member programme allows (%(allowed)s). The "
                            "order was not saved; remove the reward and apply it "
                            "again.",
                            given=given,
                            points=line["points_cost"],
                            allowed=allowed,
                        )
                    )
            elif (
                float_compare(
                    line["points_cost"], reward.required_points, precision_digits=2
                )
                < 0
            ):
                raise UserError(
                    _(
                        "The reward %(reward)s costs %(required)s points; the order "
                        "spends %(points)s. The order was not saved.",
                        reward=reward.description,
                        required=reward.required_points,
                        points=line["points_cost"],
                    )
                )
            spent[reward.program_id.id] = (
                spent.get(reward.program_id.id, 0.0) + line["points_cost"]
            )
        if not spent:
            return {}
        partner = self.env["res.partner"].browse(order.get("partner_id") or [])
        cards = (
            self.env["loyalty.card"]
            .sudo()
            ._mlm_lock_partner_cards(partner, list(spent))
        )
        result = {}
        for program_id, points in spent.items():
            card = cards.filtered(lambda c, pid=program_id: c.program_id.id == pid)[:1]
            balance = card.points if card else 0.0
            if card and balance < 0:
                raise UserError(
                    _(
                        "Redemption is blocked for %(member)s: the points balance "
                        "is negative (%(points)s) because points were taken back "
                        "after they were spent. The order was not saved.",
                        member=partner.display_name,
                        points=balance,
                    )
                )
            if float_compare(balance, points, precision_digits=PRECISION) < 0:
                raise UserError(
                    _(
                        "%(member)s has %(balance)s points, fewer than the "
                        "%(points)s this order spends. The order was not saved.",
                        member=partner.display_name or _("The customer"),
                        balance=balance,
                        points=points,
                    )
                )
            result[card] = float_round(points, PRECISION)
        return result

    def _mlm_post_redemptions(self, spend):
        """Spend the points of this paid order ({locked card: points}): one
        redeem entry per card, sourced to the order. confirm_coupon_programs
        then only earns (the register's net figure already counts this)."""
        self.ensure_one()
        for card, points in spend.items():
            card.with_context(
                mlm_ledger_source=mlm_source(
                    self._name, self.id, "redeem", "redeem", _("Points spent")
                )
            ).sudo().points -= points

    def validate_coupon_programs(self, point_changes, new_codes):
        """Say plainly why a member with a negative balance cannot redeem."""
        point_changes = {str(key): value for key, value in point_changes.items()}
        changes = {int(key): value for key, value in point_changes.items()}
        cards = self.env["loyalty.card"].browse(list(changes)).exists()
        for card in cards.filtered("partner_id"):
            program, message = card.program_id._mlm_check_partner(card.partner_id)
            if program:
                return {"successful": False, "payload": {"message": message}}
        for card in cards._mlm_member_cards():
            if card.points < 0 and changes[card.id] < 0:
                return {
                    "successful": False,
                    "payload": {
                        "message": _(
                            "Redemption is blocked for %(member)s: the points "
                            "balance is negative (%(points)s) because points were "
                            "taken back after they were spent.",
                            member=card.partner_id.display_name,
                            points=card.points,
                        ),
                        "updated_points": {card.id: card.points},
                    },
                }
        # Native code refuses any change that leaves a card below zero, which
        # would stop a member in debt from even earning: earning is always fine.
        earning_only = {
            str(card.id)
            for card in cards._mlm_member_cards()
            if card.points < 0 and changes[card.id] >= 0
        }
        point_changes = {
            key: value
            for key, value in point_changes.items()
            if key not in earning_only
        }
        return super().validate_coupon_programs(point_changes, new_codes)

    def confirm_coupon_programs(self, coupon_data):
        """Apply the order's card changes; the server decides the points.

        Applied once: the register calls this after the order sync and may
        call it again (network retry, offline queue, two tabs at once); the
        order row is claimed first, so a twin call waits, then answers with
        the current state and changes nothing.

        The register's figures are checked, not trusted: every card must be
        the order customer's (or a new one for them) and of the order's
        company, every number finite and in range; on member-programme cards
        the points earned are recomputed from the programme's rules and the
        order lines (see _mlm_rule_points), and the points spent were already
        taken when the order was saved (_process_order).
        """
        self.ensure_one()
        coupon_data = self._mlm_check_coupon_data(coupon_data)
        # Locked and read in one query (what follows reads these fields).
        member_cards = (
            self.env["loyalty.card"]
            .sudo()
            ._mlm_lock_member_cards(
                [key for key in coupon_data if key > 0],
                ["program_id", "partner_id", "points", "code", "company_id"],
            )
        )
        self._mlm_check_card_owners(
            [key for key in coupon_data if key > 0], member_cards
        )
        if not self._mlm_claim_points():
            result = self._mlm_confirmed_coupon_result(coupon_data)
            result["mlm_receipt"] = self._mlm_receipt()
            return result
        coupon_data = self._mlm_drop_targeted_points(coupon_data)
        member_cards = member_cards.filtered(lambda card: card.id in coupon_data)
        # A copy: the bonuses are added to the points of the cards below.
        data = {key: dict(value) for key, value in coupon_data.items()}
        points = self._mlm_split_card_points(member_cards, data)
        # The register created a member card (a new member): its points are
        # only known after the native write, its bonuses are posted after.
        created = self._mlm_new_member_card_points(data)
        if not created:
            self._mlm_add_order_bonuses(data, points)
        order = self.with_context(
            mlm_ledger_source=mlm_source(self._name, self.id, "earn", "redeem")
        )
        try:
            result = super(PosOrder, order).confirm_coupon_programs(data)
        finally:
            self.env["loyalty.mlm.ledger"]._mlm_clear_splits()
        if created:
            points = self._mlm_post_order_bonuses(result, None)
        else:
            self._mlm_order_tier_upgrade(points)
        # The receipt's member block comes back with this call: no extra request.
        result["mlm_receipt"] = self._mlm_receipt(points)
        return result

    def _mlm_split_card_points(self, member_cards, data):
        """What this order posts on the existing `member_cards` ({card:
        {kind: points}}): the points its lines earn by the programme's rules
        (the register's figure in `data`, the coupon data by card id, is
        replaced by it), and, for the receipt, the points it spent (already
        taken when the order was saved). Announced to the ledger as the
        split of the card write."""
        ledger = self.env["loyalty.mlm.ledger"]
        points = defaultdict(lambda: defaultdict(float))
        for card in member_cards:
            earned = self._mlm_rule_points(card.program_id)
            spent = self._mlm_points_spent(card.program_id)
            data[card.id]["points"] = earned
            if earned:
                points[card]["earn"] += earned
            if spent:
                points[card]["redeem"] -= spent
            ledger._mlm_register_splits(
                card,
                [{"points": earned, "kind": "earn", "reason": mlm_reason("earned")}],
            )
        return points

    def _mlm_new_member_card_points(self, data):
        """Whether the register creates a member card with this order; its
        points (in `data`) become what the programme's rules give."""
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        created = False
        for key, values in data.items():
            if key < 0 and values.get("program_id") in member_ids:
                created = True
                values["points"] = self._mlm_rule_points(
                    self.env["loyalty.program"].browse(values["program_id"])
                )
        return created

    def _mlm_claim_points(self):
        """Mark this order's points as applied; False when they already were.

        One statement: a twin call waits on the order row, then fails on
        the changed row (REPEATABLE READ) and is replayed by Odoo's request
        retry, where it finds the points applied."""
        self.flush_recordset()
        claimed = self.env.execute_query(
            SQL(
                "UPDATE pos_order SET mlm_points_confirmed = TRUE "
                "WHERE id = %s AND mlm_points_confirmed IS NOT TRUE RETURNING id",
                self.id,
            )
        )
        self.env.cache.update(self, self._fields["mlm_points_confirmed"], [True])
        return bool(claimed)

    def _mlm_check_coupon_data(self, coupon_data):
        """{card key: values} from the register, checked: numbers finite and
        in range, cards that exist, of this order's company, nominative cards
        of this order's customer, new cards for this customer only, scanned
        gift cards unsold. Refused as a whole, before anything is written."""
        if not isinstance(coupon_data, dict):
            raise UserError(_("The register sent card changes the server cannot read."))
        data = {}
        for key, values in coupon_data.items():
            try:
                key = int(key)
            except (TypeError, ValueError):
                key = None
            if key is None or not isinstance(values, dict):
                raise UserError(
                    _("The register sent card changes the server cannot read.")
                )
            if not _finite_number(values.get("points") or 0.0):
                raise UserError(
                    _(
                        "The register sent %(points)s points for a card: not a valid "
                        "number of points. Nothing was applied.",
                        points=values.get("points"),
                    )
                )
            data[key] = values
        partner = self.partner_id
        for key, values in data.items():
            if key > 0:
                continue
            program = (
                self.env["loyalty.program"].sudo().browse(values.get("program_id"))
            )
            if not isinstance(values.get("program_id"), int) or not program.exists():
                raise UserError(_("A new card of this order has no valid programme."))
            self._mlm_check_card_company(program)
            holder = values.get("partner_id")
            if holder and holder != partner.id:
                raise UserError(
                    _(
                        "A new card of this order is for another customer than the "
                        "order's. Nothing was applied."
                    )
                )
            gift_card_id = values.get("giftCardId")
            if gift_card_id:
                gift_card = self.env["loyalty.card"].sudo().browse(gift_card_id)
                if (
                    not isinstance(gift_card_id, int)
                    or not gift_card.exists()
                    or gift_card.program_id.program_type != "gift_card"
                    or gift_card.points
                    or gift_card.source_pos_order_id
                ):
                    raise UserError(
                        _(
                            "The gift card scanned on this order cannot be sold "
                            "(unknown, already sold or not a gift card)."
                        )
                    )
        return data

    def _mlm_check_card_company(self, program):
        if program.company_id and program.company_id != self.company_id:
            raise UserError(
                _(
                    "The programme %(program)s belongs to another company than "
                    "this order's. Nothing was applied.",
                    program=program.name,
                )
            )

    def _mlm_check_card_owners(self, card_ids, member_cards):
        """The existing cards the register changes (`card_ids`; the member
        cards among them locked and read) exist, are of this order's company,
        and a nominative card (member cards included) is this customer's."""
        cards = self.env["loyalty.card"].sudo().browse(card_ids)
        others = cards - member_cards
        if others and len(others.exists()) != len(others):
            raise UserError(
                _("A card of this order no longer exists. Nothing was applied.")
            )
        for card in cards:
            self._mlm_check_card_company(card.program_id)
            nominative = card in member_cards or card.program_id.is_nominative
            if nominative and card.partner_id != self.partner_id:
                raise UserError(
                    _(
                        "Card %(code)s belongs to another customer than this "
                        "order's (%(customer)s). Nothing was applied.",
                        code=card.code,
                        customer=self.partner_id.display_name or _("no customer"),
                    )
                )

    def _mlm_points_spent(self, program):
        """Points this order's reward lines of `program` cost."""
        return float_round(
            sum(
                line.points_cost
                for line in self.lines
                if line.reward_id and line.reward_id.program_id == program
            ),
            PRECISION,
        )

    def _mlm_rule_points(self, program):
        """Points `program`'s rules give this order, computed on the server
        as the register computes them (pos_loyalty's pointsForPrograms, for
        points added to one card: rules with a code and split points are not
        member-programme cases and give nothing here). A refund earns nothing
        here: its points are taken back by _mlm_reverse_refunded_points.
        The rules come from a cache (loyalty.rule._mlm_rule_data): no query
        for a programme whose rules name no product."""
        self.ensure_one()
        lines = self.lines
        if any(line.refunded_orderline_id for line in lines):
            return 0.0
        points = 0.0
        for rule in self.env["loyalty.rule"]._mlm_rule_data(program.id):
            if rule.mode == "with_code":
                continue
            valid = self._mlm_rule_lines(rule)
            counted = valid.filtered(
                lambda line: (
                    not (line.reward_id and line.reward_id.program_id == program)
                )
            )
            amount_lines = counted.filtered(
                lambda line: (
                    not (
                        line.reward_id
                        and line.reward_id.reward_type == "discount"
                        and line.reward_id.program_id.trigger == "auto"
                    )
                )
            )
            with_tax = sum(amount_lines.mapped("price_subtotal_incl"))
            without_tax = sum(amount_lines.mapped("price_subtotal"))
            amount = (rule.tax_mode == "incl" and with_tax) or without_tax
            if rule.minimum_amount and (
                self.env["loyalty.rule"]
                .browse(rule.id)
                ._compute_amount(self.currency_id)
                > amount
            ):
                continue
            paid = counted.filtered(
                lambda line: (
                    not (
                        line.is_reward_line
                        and line.reward_id.program_id.program_type
                        in ("gift_card", "ewallet")
                    )
                )
            )
            quantity = sum(
                paid.filtered(lambda line: not line.is_reward_line).mapped("qty")
            )
            if quantity < rule.minimum_qty:
                continue
            if rule.point_mode == "order":
                points += rule.amount
            elif rule.point_mode == "money":
                points += float_round(
                    rule.amount * sum(paid.mapped("price_subtotal_incl")),
                    precision_rounding=0.01,
                )
            elif rule.point_mode == "unit":
                points += rule.amount * quantity
        return float_round(max(points, 0.0), PRECISION)

    def _mlm_rule_lines(self, rule):
        """The order lines `rule` (RuleData) counts: every line when the
        rule names no product, category, tag or domain (no query then)."""
        if not rule.filtered:
            return self.lines
        products = self.lines.product_id.filtered_domain(
            self.env["loyalty.rule"].browse(rule.id)._get_valid_product_domain()
        )
        return self.lines.filtered(lambda line: line.product_id in products)

    def _mlm_add_order_bonuses(self, data, points):
        """Tier and campaign bonuses of this order on the points it earns,
        posted in the same card write as those points (one lock, one update,
        one insert of the ledger entries): added to the card's points in the
        register's `data` ({card id: values}, changed) and announced as
        ledger splits. `points`: {card: {kind: points}} this order posts,
        bonuses added."""
        parts = self._mlm_order_bonus_parts(points)
        ledger = self.env["loyalty.mlm.ledger"]
        for card, bonuses in parts.items():
            ledger._mlm_register_splits(
                card,
                [
                    {"points": bonus, "kind": kind, "reason": reason}
                    for kind, bonus, reason in bonuses
                ],
            )
            values = data[card.id]
            values["points"] = (values.get("points") or 0.0) + sum(
                bonus for _kind, bonus, _reason in bonuses
            )
            for kind, bonus, _reason in bonuses:
                points[card][kind] += bonus

    def _mlm_order_bonus_parts(self, points):
        """{card: [(kind, points, reason)]}: the tier and campaign bonuses on
        what this order earned (`points`: {card: {kind: points}})."""
        earned = {
            card: kinds["earn"] for card, kinds in points.items() if kinds.get("earn")
        }
        if not earned:
            return {}
        lines = [
            (line.product_id, line.price_subtotal)
            for line in self.lines
            if not line.is_reward_line
        ]
        return self.env["loyalty.mlm.bonus"]._mlm_order_bonus_parts(
            self, "pos", earned, lines
        )

    def _mlm_order_tier_upgrade(self, points):
        """Move up the members who earned on this order and now reach a
        higher tier (see res.partner "Bonuses, tiers, referral")."""
        partner_ids = [
            card.partner_id.id for card, kinds in points.items() if kinds.get("earn")
        ]
        self.env["loyalty.mlm.tier"]._mlm_tier_upgrade(
            self.env["res.partner"].browse(partner_ids), self.company_id
        )

    def _mlm_drop_targeted_points(self, coupon_data):
        """Leave out the points of targeted programmes the customer could not
        use when the order arrived (mlm_program_ids). The order sync already
        refused their rewards; this catches points a register computed on
        stale data. The order is saved by now: refusing here would leave it
        half done, so those points are simply not given (and logged)."""
        # Only the register's targeted programmes can be refused (the
        # register offers no other): none, the usual case, costs no query.
        targeted = set(self.config_id._mlm_targeted_program_ids(self.config_id.id))
        programs = self.env["loyalty.program"].browse(
            targeted & {value.get("program_id") for value in coupon_data.values()}
        )
        refused = programs - self.mlm_program_ids
        if not refused:
            return coupon_data
        _logger.warning(
            "POS order %s: points of targeted programmes %s not given, "
            "customer %s not eligible",
            self.name,
            refused.ids,
            self.partner_id.id,
        )
        return {
            key: value
            for key, value in coupon_data.items()
            if value.get("program_id") not in refused.ids
        }

    def _mlm_order_points(self):
        """{card: {ledger kind: points}} this order posted on member cards
        (one query)."""
        self.ensure_one()
        points = defaultdict(lambda: defaultdict(float))
        for card, kind, total in (
            self.env["loyalty.mlm.ledger"]
            .sudo()
            ._read_group(
                [
                    ("res_model", "=", self._name),
                    ("res_id", "=", self.id),
                    ("card_id", "!=", False),
                ],
                ["card_id", "kind"],
                ["points:sum"],
            )
        ):
            points[card][kind] += total
        return points

    def _mlm_post_order_bonuses(self, result, points=None):
        """Tier and campaign bonuses of this order on the points it just
        earned, each in its own card write, then the tier upgrade; the
        register is answered with the balances bonuses included. For an
        order whose member card the register created (else see
        _mlm_add_order_bonuses). `points`: {card: {kind: points}} this order
        posted, when the caller knows (else read from the ledger). Returns
        it, bonuses included."""
        self.ensure_one()
        if points is None:
            points = self._mlm_order_points()
        parts = self._mlm_order_bonus_parts(points)
        if not parts and not any(kinds.get("earn") for kinds in points.values()):
            return points
        for card, bonuses in parts.items():
            for kind, bonus, reason in bonuses:
                card._mlm_post_points(bonus, kind, source=self, reason=reason)
                points[card][kind] += bonus
        self._mlm_order_tier_upgrade(points)
        balances = {card.id: card.points for card in points}
        for update in result.get("coupon_updates") or []:
            if update.get("id") in balances:
                update["points"] = balances[update["id"]]
        return points

    def _mlm_receipt(self, points=None):
        """What the receipt shows the member: the balance before the order,
        every posting on the member card from the order's first one on (its
        points earned, tier and campaign bonuses, spent, and what the order
        set off, e.g. the treatment bonus of the stage move it caused), the
        new balance, the tier and the referral code; False when the customer
        is no member. `lines` add up: previous + lines = balance. `points`:
        this order's {card: {kind: points}} when the caller has them."""
        self.ensure_one()
        partner = self.partner_id
        program = self.company_id.mlm_program_id
        if not partner or not program:
            return False
        if points is None:
            points = self._mlm_order_points()
        card = next(
            (c for c in points if c.partner_id == partner and c.program_id == program),
            None,
        )
        if not card:
            return False
        kinds = points[card]
        member = partner.sudo().with_company(self.company_id)
        lines = self._mlm_receipt_lines(card)
        balance = float_round(card.points, PRECISION)
        return {
            "card_id": card.id,
            "earned": float_round(kinds["earn"], PRECISION),
            "tier_bonus": float_round(kinds["tier_bonus"], PRECISION),
            "campaign_bonus": float_round(kinds["campaign_bonus"], PRECISION),
            "spent": float_round(-kinds["redeem"], PRECISION),
            "previous": float_round(
                balance - sum(line["points"] for line in lines), PRECISION
            ),
            "lines": lines,
            "balance": balance,
            "tier": member.mlm_tier_id.name or "",
            "referral_code": member.mlm_referral_code or "",
        }

    def _mlm_receipt_lines(self, card):
        """[{kind, label, points}]: the postings on `card` from this order's
        first one on, one line per kind in posting order (translated labels,
        the reader's language). Postings of other orders are left out: a
        reprint later shows this order's story (one query)."""
        # The card's last point changes post their entries when flushed.
        self.env.flush_all()
        rows = self.env.execute_query(
            SQL(
                """
                SELECT kind, SUM(points), MIN(id)
                  FROM loyalty_mlm_ledger
                 WHERE card_id = %(card)s
                   AND id >= (SELECT MIN(id) FROM loyalty_mlm_ledger
                               WHERE card_id = %(card)s
                                 AND res_model = %(model)s AND res_id = %(order)s)
                   AND (   (res_model = %(model)s AND res_id = %(order)s)
                        OR res_model IS NULL
                        OR res_model NOT IN ('pos.order', 'sale.order'))
              GROUP BY kind
              ORDER BY MIN(id)
                """,
                card=card.id,
                model=self._name,
                order=self.id,
            )
        )
        # Code translations (no query, unlike the selection's labels).
        labels = {
            "earn": _("Points earned"),
            "redeem": _("Points spent"),
            "tier_bonus": _("Tier bonus"),
            "campaign_bonus": _("Campaign bonus"),
            "treatment": _("Treatment bonus"),
            "welcome": _("Welcome bonus"),
            "birthday": _("Birthday bonus"),
            "referral": _("Referral bonus"),
            "adjustment": _("Adjustment"),
            "reversal": _("Reversal"),
            "expire": _("Expired"),
            "donation": _("Donation"),
            "opening": _("Opening balance"),
        }
        return [
            {
                "kind": kind,
                "label": labels.get(kind, kind),
                "points": float_round(total, PRECISION),
            }
            for kind, total, _first in rows
            if not float_is_zero(total, precision_digits=PRECISION)
        ]

    def _mlm_confirmed_coupon_result(self, coupon_data):
        """What confirm_coupon_programs answered, rebuilt without any change."""
        data = {int(key): value for key, value in coupon_data.items()}
        cards = self.env["loyalty.card"].sudo()
        mapping = {cards.browse(key): key for key in data if key > 0}
        created = cards.search([("source_pos_order_id", "=", self.id)], order="id")
        new_keys = [k for k in data if k < 0 and not data[k].get("giftCardId")]
        mapping.update(zip(created, new_keys, strict=False))
        mapping = {card: key for card, key in mapping.items() if card.exists()}
        return {
            "coupon_updates": [
                {
                    "old_id": key,
                    "id": card.id,
                    "points": card.points,
                    "code": card.code,
                    "program_id": card.program_id.id,
                    "partner_id": card.partner_id.id,
                }
                for card, key in mapping.items()
                if card.program_id.is_nominative
            ],
            "program_updates": [
                {"program_id": program.id, "usages": program.total_order_count}
                for program in cards.browse([c.id for c in mapping]).program_id
            ],
            "new_coupon_info": [],
            "coupon_report": {},
        }

    def _process_saved_order(self, draft):
        res = super()._process_saved_order(draft)
        if not draft and self.state in ("paid", "done", "invoiced"):
            if self.partner_id:
                self.env["loyalty.card"]._mlm_auto_enroll(
                    self.partner_id, self.company_id
                )
                self.env["loyalty.mlm.stage"]._mlm_stage_event(
                    self.partner_id, self.company_id
                )
                if self.amount_total > 0:
                    # Bonuses, tiers, referral (see loyalty.mlm.bonus).
                    self.env["loyalty.mlm.bonus"]._mlm_on_member(
                        self.partner_id, self.company_id
                    )
                    self.env["loyalty.mlm.referral"]._mlm_referral_rewards(self)
                    if self.company_id.mlm_tier_metric == "spend":
                        self.env["loyalty.mlm.tier"]._mlm_tier_upgrade(
                            self.partner_id.filtered("mlm_member_since"),
                            self.company_id,
                        )
            self._mlm_reverse_refunded_points()
        return res

    def _mlm_reverse_refunded_points(self):
        """Take back the points the refunded lines earned on the original order.

        Native POS neither earns on refund lines nor takes points back. The
        share taken back is the refunded amount over the original order's
        amount (reward lines excluded), per member card the original earned
        on (the surviving card after a merge of contacts). Refunds of one line
        are capped at that line, over all its refunds: refunding it twice
        takes back its points once. Posted once per refund order, even if the
        order is processed again.
        """
        self.ensure_one()
        refund_lines = self.lines.filtered("refunded_orderline_id")
        if not refund_lines:
            return
        ledger = self.env["loyalty.mlm.ledger"].sudo()
        if ledger.search_count(
            [("res_model", "=", self._name), ("res_id", "=", self.id)]
        ):
            return
        original = refund_lines.refunded_orderline_id.order_id[:1]
        base = sum(
            original.lines.filtered(lambda line: not line.is_reward_line).mapped(
                "price_subtotal_incl"
            )
        )
        if base <= 0:
            return
        before, now = self._mlm_refunded_amounts(original)
        ratio = min(1.0, now / base) - min(1.0, before / base)
        if ratio <= 0:
            return
        earned = defaultdict(float)
        for card, points in ledger._read_group(
            [
                ("res_model", "=", self._name),
                ("res_id", "=", original.id),
                # Tier and campaign bonuses go back in the same share.
                ("kind", "in", ("earn", "tier_bonus", "campaign_bonus")),
                ("card_id", "!=", False),
            ],
            ["card_id"],
            ["points:sum"],
        ):
            earned[card._mlm_surviving_card()] += points
        for card, points in earned.items():
            take = float_round(points * ratio, PRECISION)
            if take <= 0:
                continue
            card._mlm_lock()
            card.with_context(
                mlm_ledger_source=mlm_source(
                    self._name,
                    self.id,
                    "reversal",
                    "reversal",
                    _("Refund of %s", original.name),
                )
            ).points -= take

    def _mlm_refunded_amounts(self, original):
        """(before, now): the amount of `original`'s product lines refunded
        by its refunds before this one, and with this one; each line counts
        up to its own amount, whatever was refunded of it."""
        lines = original.lines.filtered(lambda line: not line.is_reward_line)
        before = now = 0.0
        for line in lines:
            refunds = line.refund_orderline_ids.filtered(
                lambda refund: (
                    refund.order_id.state in ("paid", "done", "invoiced")
                    and refund.order_id.id <= self.id
                )
            )
            refunded = -sum(refunds.mapped("price_subtotal_incl"))
            earlier = -sum(
                refunds.filtered(lambda refund: refund.order_id != self).mapped(
                    "price_subtotal_incl"
                )
            )
            cap = max(line.price_subtotal_incl, 0.0)
            now += min(max(refunded, 0.0), cap)
            before += min(max(earlier, 0.0), cap)
        return before, now
