from collections import defaultdict

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from .loyalty_mlm_ledger import mlm_reason, mlm_source


class SaleOrder(models.Model):
    # The segment badge (scores, stage): loyalty.mlm.segment.mixin.
    _name = "sale.order"
    _inherit = ["sale.order", "loyalty.mlm.segment.mixin"]

    # Bonuses, tiers, referral (see res.partner)
    mlm_points_earned = fields.Float(
        string="Points Earned",
        groups="loyalty_mlm.group_loyalty_mlm_user",
        compute="_compute_mlm_points_earned",
        digits=(16, 2),
        help="Member points this order earned, tier and campaign bonuses "
        "included, net of what a cancellation took back.",
    )
    mlm_referrer_id = fields.Many2one(
        related="partner_id.mlm_referrer_id",
        readonly=False,
        string="Referred By",
        help="The member who referred this customer (saved on the customer): "
        "both get the referral bonus on the customer's first order.",
    )

    @api.depends("state")
    def _compute_mlm_points_earned(self):
        orders = self.filtered(lambda order: isinstance(order.id, int))
        earned = dict(
            self.env["loyalty.mlm.ledger"]
            .sudo()
            ._read_group(
                [
                    ("res_model", "=", self._name),
                    ("res_id", "in", orders.ids),
                    "|",
                    ("kind", "in", ("earn", "tier_bonus", "campaign_bonus")),
                    "&",
                    ("kind", "=", "reversal"),
                    ("points", "<", 0),
                ],
                ["res_id"],
                ["points:sum"],
            )
        )
        for order in self:
            order.mlm_points_earned = earned.get(order.id, 0.0)

    def _mlm_ledger_source(self, positive, negative):
        # A batch of orders is split per order by _get_point_changes below.
        res_id = self.id if len(self) == 1 else 0
        return mlm_source(self._name, res_id, positive, negative)

    def action_confirm(self):
        self._mlm_lock_cards()
        self._mlm_check_company_programs()
        self._mlm_check_targeted_programs()
        ledger = self.env["loyalty.mlm.ledger"]
        orders = self.with_context(
            mlm_ledger_source=self._mlm_ledger_source("earn", "redeem"),
            mlm_ledger_splitting="confirm",
        )
        try:
            res = super(SaleOrder, orders).action_confirm()
        finally:
            ledger._mlm_clear_splits()
        for order in self:
            self.env["loyalty.card"]._mlm_auto_enroll(
                order.partner_id, order.company_id
            )
            self.env["loyalty.mlm.stage"]._mlm_stage_event(
                order.partner_id, order.company_id
            )
        self._mlm_post_order_bonuses()
        # The incremental score job picks these customers up (one trigger).
        self.env["loyalty.mlm.partner.score"]._mlm_scores_mark_dirty()
        return res

    def _action_cancel(self):
        self._mlm_lock_cards()
        ledger = self.env["loyalty.mlm.ledger"]
        orders = self.with_context(
            mlm_ledger_source=self._mlm_ledger_source("reversal", "reversal"),
            mlm_ledger_splitting="cancel",
        )
        confirmed = self.filtered(lambda order: order.state == "sale")
        try:
            res = super(SaleOrder, orders)._action_cancel()
        finally:
            ledger._mlm_clear_splits()
        self.env["loyalty.mlm.bonus"]._mlm_reverse_order_bonuses(confirmed)
        self.env["loyalty.mlm.referral"]._mlm_reverse_referral_rewards(confirmed)
        self.env["loyalty.mlm.partner.score"]._mlm_scores_mark_dirty()
        return res

    def _mlm_lock_cards(self):
        """Lock the cards these orders change, first thing in the transaction:
        the cards already on the orders and the customers' member cards
        (which native confirmation adds when it computes the promotions).

        Native code reads a card's balance early and writes it late: under
        POS traffic on the same card, the write then fails as a serialization
        error on every retry. Locked first, a card that changed since the
        snapshot fails at once (cheap to replay), and once locked nobody
        changes it until this confirmation commits."""
        cards = (
            self.coupon_point_ids.coupon_id
            | self.order_line.coupon_id
            | self.applied_coupon_ids
        )
        cards |= cards.filtered("mlm_merged_into_id").mapped(
            lambda card: card._mlm_surviving_card()
        )
        programs = self.company_id.mlm_program_id
        self.env.execute_query(
            SQL(
                "SELECT id FROM loyalty_card WHERE id = ANY(%s) "
                "OR (partner_id = ANY(%s) AND program_id = ANY(%s) AND active) "
                "ORDER BY id FOR NO KEY UPDATE",
                cards.ids,
                self.partner_id.ids,
                programs.ids,
            )
        )

    def _get_real_points_for_coupon(self, coupon, post_confirm=False):
        points = super()._get_real_points_for_coupon(coupon, post_confirm=post_confirm)
        if (
            points < 0
            and coupon.program_id.mlm_is_member_programme
            and not any(line.coupon_id == coupon for line in self.order_line)
        ):
            # A member in debt still earns on an order that spends nothing
            # from the card: only spending is blocked (see
            # _apply_program_reward), not the order.
            return 0.0
        return points

    # ------------------------------------------------------------
    # Targeted programmes (loyalty.program): OCA's
    # sale_loyalty_partner_applicability leaves a programme out of a quote
    # whose customer may not use it; here the message says why, and the
    # confirmation checks again.
    # ------------------------------------------------------------

    def _get_applicable_partner_for_loyalty_program(self):
        # Tiers and scores are per company: the order's.
        return (
            super()
            ._get_applicable_partner_for_loyalty_program()
            .with_company(self.company_id)
        )

    def _program_check_compute_points(self, programs):
        result = super()._program_check_compute_points(programs)
        partner = self._get_applicable_partner_for_loyalty_program()
        for program in programs.filtered("mlm_restricted"):
            if not program._is_partner_valid(partner):
                result[program] = {
                    "error": program._mlm_not_eligible_message(self.partner_id)
                }
        return result

    def _mlm_check_company_programs(self):
        """Refuse to confirm an order that uses a reward, coupon or card of
        another company's programme: its points and rewards are that
        company's. Nothing is confirmed."""
        # sudo: another company's programme is the point, not readable here.
        for order in self.sudo():
            programs = (
                order.order_line.reward_id.program_id
                | order.coupon_point_ids.coupon_id.program_id
                | order.applied_coupon_ids.program_id
                | order.order_line.coupon_id.program_id
            )
            foreign = programs.filtered(
                lambda program, company=order.company_id: (
                    program.company_id and program.company_id != company
                )
            )
            if foreign:
                raise UserError(
                    _(
                        "%(order)s cannot be confirmed: the programme %(program)s "
                        "belongs to another company than the order's. Remove its "
                        "rewards and coupons, then confirm again.",
                        order=order.name,
                        program=foreign[0].name,
                    )
                )

    def _mlm_check_targeted_programs(self):
        """Refuse to confirm an order that grants a targeted programme its
        customer may no longer use (the stage or the scores changed since the
        quote): native confirmation would silently drop the reward and change
        the price the customer was quoted. Nothing is confirmed or posted; the
        salesperson updates the rewards (Reward button) and confirms again."""
        for order in self.filtered(lambda order: order.state in ("draft", "sent")):
            # Points of a 'current' programme that claim no reward are
            # dropped by native confirmation: they grant nothing.
            granted = order.coupon_point_ids.filtered(
                lambda entry: (
                    entry.points and entry.coupon_id.program_id.applies_on != "current"
                )
            )
            programs = (
                order.order_line.reward_id.program_id | granted.coupon_id.program_id
            )
            partner = order._get_applicable_partner_for_loyalty_program()
            program, message = programs.with_company(
                order.company_id
            )._mlm_check_partner(partner)
            if program:
                raise UserError(
                    _(
                        "%(order)s cannot be confirmed: %(reason)s Click Reward to "
                        "update the promotions, check the new total with the "
                        "customer, then confirm again.",
                        order=order.name,
                        reason=message,
                    )
                )

    def _mlm_post_order_bonuses(self):
        """After confirmation: welcome, tier and campaign bonuses, tier
        upgrade and referral bonuses (see loyalty.mlm.bonus). The tier bonus
        uses the tier before the order."""
        Partner = self.env["res.partner"]
        Bonus = self.env["loyalty.mlm.bonus"]
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        confirmed = self.filtered(lambda order: order.state == "sale")
        members = defaultdict(lambda: Partner)
        for order in confirmed:
            company = order.company_id
            Bonus._mlm_on_member(order.partner_id, company)
            earned, lines = order._mlm_bonus_inputs(member_ids)
            Bonus._mlm_order_bonuses(order, order._mlm_bonus_channel(), earned, lines)
            for card in earned:
                members[company] |= card.partner_id
        for company, partners in members.items():
            partners.env["loyalty.mlm.tier"]._mlm_tier_upgrade(partners, company)
        self.env["loyalty.mlm.referral"]._mlm_referral_rewards(confirmed)

    def _mlm_bonus_channel(self):
        """The campaign channel of this order (loyalty.mlm.campaign.channel):
        the web shop bridge tells web orders apart."""
        self.ensure_one()
        return "sale"

    def _mlm_bonus_inputs(self, member_ids):
        """(earned, lines) of loyalty.mlm.bonus._mlm_order_bonus_parts: the
        points this order earns per member card, and its product lines."""
        self.ensure_one()
        earned = {
            card: sum(points for kind, points, _r in parts if kind == "earn")
            for card, parts in self._mlm_point_parts(member_ids).items()
        }
        lines = [
            (line.product_id, line.price_subtotal)
            for line in self.order_line
            if line.product_id and not line.is_reward_line
        ]
        return earned, lines

    def _mlm_points_preview(self):
        """What confirming this quotation or cart would post on the
        customer's member card: {earned, tier_bonus, campaign_bonus, spent,
        total, digits}, or False when it posts nothing there. The same
        engine as confirmation (_mlm_post_order_bonuses), at this moment
        (confirmation dates the order now)."""
        self.ensure_one()
        program = self.company_id.mlm_program_id
        if not program or self.state not in ("draft", "sent"):
            return False
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        parts = self._mlm_point_parts(member_ids)
        card = next(
            (c for c in parts if c.partner_id == self.partner_id),
            None,
        )
        if card is None:
            return False
        earned, lines = self._mlm_bonus_inputs(member_ids)
        earned = {card: earned.get(card, 0.0)}
        bonuses = self.env["loyalty.mlm.bonus"]._mlm_order_bonus_parts(
            self, self._mlm_bonus_channel(), earned, lines, when=fields.Datetime.now()
        )
        preview = {"earned": earned[card], "tier_bonus": 0.0, "campaign_bonus": 0.0}
        for kind, points, _reason in bonuses.get(card, []):
            preview[kind] += points
        preview["spent"] = -sum(
            points for kind, points, _r in parts[card] if kind == "redeem"
        )
        preview["welcome_bonus"] = self._mlm_preview_welcome_bonus(card)
        preview["total"] = (
            preview["earned"]
            + preview["tier_bonus"]
            + preview["campaign_bonus"]
            + preview["welcome_bonus"]
        )
        preview["digits"] = card.program_id.mlm_points_digits
        return preview

    def _mlm_preview_welcome_bonus(self, card):
        """The welcome bonus confirming would post: a customer who is no
        member yet and whom the confirmation makes one gets it (the rules of
        loyalty.mlm.bonus._mlm_grant_welcome_bonus, member since today)."""
        company = self.company_id
        partner = card.partner_id.sudo()
        start = company.mlm_welcome_bonus_start
        if (
            company.mlm_welcome_bonus <= 0
            or not start
            or card.program_id != company.mlm_program_id
            or partner.mlm_member_since
            or not self._mlm_confirm_makes_member()
            or fields.Date.context_today(self) < start
        ):
            return 0.0
        welcomed = (
            self.env["loyalty.mlm.ledger"]
            .sudo()
            .search_count(
                [
                    ("partner_id", "=", partner.id),
                    ("kind", "=", "welcome"),
                    ("company_id", "=", company.id),
                ],
                limit=1,
            )
        )
        return 0.0 if welcomed else company.mlm_welcome_bonus

    def _mlm_confirm_makes_member(self):
        """Whether confirming this order makes its customer a member
        (Enrol on First Order; the web shop bridge adds its own orders)."""
        return bool(self.company_id.mlm_auto_enroll)

    # The member block of the POS receipt (pos.order._mlm_receipt), on the
    # order's portal page: that code reads only the order's partner, company,
    # model and id, so sale orders reuse it as it is.
    def _mlm_receipt(self, points=None):
        return type(self.env["pos.order"])._mlm_receipt(self, points)

    def _mlm_order_points(self):
        return type(self.env["pos.order"])._mlm_order_points(self)

    def _mlm_receipt_lines(self, card):
        return type(self.env["pos.order"])._mlm_receipt_lines(self, card)

    def _get_point_changes(self):
        """Announce each order's earn and redeem parts before native code adds
        them up per card (it writes one total for a whole batch of orders)."""
        changes = super()._get_point_changes()
        if any(coupon.mlm_merged_into_id for coupon in changes):
            # Points of a card emptied by a merge of contacts go to (or come
            # back from) the surviving member's card.
            merged = defaultdict(float)
            for coupon, points in changes.items():
                merged[coupon._mlm_surviving_card()] += points
            changes = dict(merged)
        mode = self.env.context.get("mlm_ledger_splitting")
        if not mode:
            return changes
        sign = 1 if mode == "confirm" else -1
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        ledger = self.env["loyalty.mlm.ledger"]
        for order in self:
            for card, parts in order._mlm_point_parts(member_ids).items():
                ledger._mlm_register_splits(
                    card,
                    [
                        {
                            "points": sign * points,
                            "kind": kind if mode == "confirm" else "reversal",
                            "res_model": self._name,
                            "res_id": order.id,
                            "reason": reason
                            if mode == "confirm"
                            else _("Order cancelled"),
                        }
                        for kind, points, reason in parts
                        if points
                    ],
                )
        return changes

    def _mlm_point_parts(self, member_ids):
        """{card: [(kind, signed points, reason)]} of one order, member cards only."""
        self.ensure_one()
        parts = {}
        for coupon_point in self.coupon_point_ids:
            card = coupon_point.coupon_id._mlm_surviving_card()
            if card.program_id.id in member_ids:
                parts.setdefault(card, []).append(
                    ("earn", coupon_point.points, mlm_reason("earned"))
                )
        for line in self.order_line.filtered(
            lambda line: line.reward_id and line.coupon_id
        ):
            if line.coupon_id.program_id.id in member_ids:
                parts.setdefault(line.coupon_id._mlm_surviving_card(), []).append(
                    ("redeem", -line.points_cost, line.reward_id.description)
                )
        return parts

    def _add_points_for_coupon(self, coupon_points):
        # The context travels with records: native code changes the cards it
        # is given, so those must carry the source, not only the order.
        order = self.with_context(
            mlm_ledger_source=self._mlm_ledger_source("earn", "reversal")
        )
        coupon_points = {
            coupon.with_env(order.env): points
            for coupon, points in coupon_points.items()
        }
        return super(SaleOrder, order)._add_points_for_coupon(coupon_points)

    def _apply_program_reward(self, reward, coupon, **kwargs):
        program = coupon.program_id | reward.program_id
        if any(p.company_id and p.company_id != self.company_id for p in program):
            return {
                "error": _(
                    "This reward or card belongs to a programme of another "
                    "company than the order's: it cannot be used here."
                )
            }
        if coupon.program_id.mlm_is_member_programme and coupon.points < 0:
            return {
                "error": _(
                    "Redemption is blocked for %(member)s: the points balance is "
                    "negative (%(points)s) because points were taken back after "
                    "they were spent.",
                    member=coupon.partner_id.display_name,
                    points=coupon.points,
                )
            }
        return super()._apply_program_reward(reward, coupon, **kwargs)
