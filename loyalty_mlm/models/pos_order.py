import logging
from collections import defaultdict

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_compare, float_round

from .loyalty_mlm_ledger import PRECISION, mlm_source

_logger = logging.getLogger(__name__)


class PosOrder(models.Model):
    _inherit = "pos.order"

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
    def _process_order(self, order, existing_order):
        """Refuse a redemption the member programme does not allow.

        The register computes the discount; the server recomputes it from the
        points spent and refuses the whole order (nothing saved) when the
        discount is larger, or when the card has fewer points than spent.
        """
        self._mlm_check_redemptions(order)
        eligible = self._mlm_check_targeted_programs(order)
        order_id = super()._process_order(order, existing_order)
        # A Winback customer's order moves them out of Winback when it is
        # paid, before the register sends the points: judge those points by
        # what the customer was when the order arrived.
        order = self.browse(order_id)
        if eligible or (existing_order and order.mlm_program_ids):
            order.mlm_program_ids = eligible
        return order_id

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
        lines = [
            cmd[2]
            for cmd in order.get("lines") or []
            if cmd[0] in (0, 1)
            and cmd[2].get("reward_id")
            and cmd[2].get("points_cost")
        ]
        if not lines:
            return
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
            spent[reward.program_id] = (
                spent.get(reward.program_id, 0.0) + line["points_cost"]
            )
        partner = self.env["res.partner"].browse(order.get("partner_id") or [])
        for program, points in spent.items():
            card = (
                self.env["loyalty.card"]
                .sudo()
                .search(
                    [("partner_id", "=", partner.id), ("program_id", "=", program.id)],
                    limit=1,
                )
            )
            if float_compare(card.points, points, precision_digits=2) < 0:
                raise UserError(
                    _(
                        "%(member)s has %(balance)s points, fewer than the "
                        "%(points)s this order spends. The order was not saved.",
                        member=partner.display_name or _("The customer"),
                        balance=card.points,
                        points=points,
                    )
                )

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
        """Source the card changes to this order; split earn from redeem.

        Applied once: the register calls this after the order sync and may
        call it again (network retry, offline queue); a second call answers
        with the current state and changes nothing.
        """
        self.ensure_one()
        if self.mlm_points_confirmed:
            result = self._mlm_confirmed_coupon_result(coupon_data)
            result["mlm_receipt"] = self._mlm_receipt()
            return result
        coupon_data = self._mlm_drop_targeted_points(coupon_data)
        # A copy: the bonuses are added to the points of the cards below.
        data = {int(key): dict(value) for key, value in coupon_data.items()}
        # Locked and read in one query (what follows reads these fields).
        member_cards = (
            self.env["loyalty.card"]
            .sudo()
            ._mlm_lock_member_cards(
                [key for key in data if key > 0],
                ["program_id", "partner_id", "points", "code", "company_id"],
            )
        )
        ledger = self.env["loyalty.mlm.ledger"]
        points = self._mlm_split_card_points(member_cards, data)
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        # The register created a member card (a new member): its points are
        # only known after the native write, its bonuses are posted after.
        created = any(
            key < 0 and data[key].get("program_id") in member_ids for key in data
        )
        if not created:
            self._mlm_add_order_bonuses(data, points)
        order = self.with_context(
            mlm_ledger_source=mlm_source(self._name, self.id, "earn", "redeem")
        )
        try:
            result = super(PosOrder, order).confirm_coupon_programs(data)
        finally:
            ledger._mlm_clear_splits()
        self.mlm_points_confirmed = True
        if created:
            points = self._mlm_post_order_bonuses(result, None)
        else:
            self._mlm_order_tier_upgrade(points)
        # The receipt's member block comes back with this call: no extra request.
        result["mlm_receipt"] = self._mlm_receipt(points)
        return result

    def _mlm_split_card_points(self, member_cards, data):
        """What this order posts on the existing `member_cards` ({card:
        {kind: points}}, earn and redeem apart), known without reading the
        ledger back; announced to the ledger as the splits of the card write
        (`data`: the register's coupon data by card id)."""
        ledger = self.env["loyalty.mlm.ledger"]
        points = defaultdict(lambda: defaultdict(float))
        for card in member_cards:
            codes = set(data[card.id].get("line_codes") or [])
            spent = sum(
                line.points_cost
                for line in self.lines
                if line.reward_identifier_code in codes
            )
            net = data[card.id].get("points") or 0.0
            for kind, value in (("earn", net + spent), ("redeem", -spent)):
                value = float_round(value, PRECISION)
                if value:
                    points[card][kind] += value
            ledger._mlm_register_splits(
                card,
                [
                    {
                        "points": net + spent,
                        "kind": "earn",
                        "reason": _("Points earned"),
                    },
                    {"points": -spent, "kind": "redeem", "reason": _("Points spent")},
                ],
            )
        return points

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
        """What the receipt shows the member: the points this order earned
        (base, tier and campaign bonuses), spent, the new balance, the tier and
        the referral code; False when the customer is no member. `points`:
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
        return {
            "card_id": card.id,
            "earned": float_round(kinds["earn"], PRECISION),
            "tier_bonus": float_round(kinds["tier_bonus"], PRECISION),
            "campaign_bonus": float_round(kinds["campaign_bonus"], PRECISION),
            "spent": float_round(-kinds["redeem"], PRECISION),
            "balance": float_round(card.points, PRECISION),
            "tier": member.mlm_tier_id.name or "",
            "referral_code": member.mlm_referral_code or "",
        }

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
        amount (reward lines excluded), per member card the original earned on.
        Posted once per refund order, even if the order is processed again.
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
        refunded = -sum(refund_lines.mapped("price_subtotal_incl"))
        if base <= 0 or refunded <= 0:
            return
        ratio = min(1.0, refunded / base)
        earned = ledger._read_group(
            [
                ("res_model", "=", self._name),
                ("res_id", "=", original.id),
                # Tier and campaign bonuses go back in the same share.
                ("kind", "in", ("earn", "tier_bonus", "campaign_bonus")),
                ("card_id", "!=", False),
            ],
            ["card_id"],
            ["points:sum"],
        )
        for card, points in earned:
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
