from odoo import _, models

from .loyalty_mlm_ledger import mlm_source


class SaleOrder(models.Model):
    _inherit = "sale.order"

    def _mlm_ledger_source(self, positive, negative):
        # A batch of orders is split per order by _get_point_changes below.
        res_id = self.id if len(self) == 1 else 0
        return mlm_source(self._name, res_id, positive, negative)

    def action_confirm(self):
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
            self.env["res.partner"]._mlm_auto_enroll(order.partner_id, order.company_id)
            order.partner_id._mlm_stage_event(order.company_id)
        return res

    def _action_cancel(self):
        ledger = self.env["loyalty.mlm.ledger"]
        orders = self.with_context(
            mlm_ledger_source=self._mlm_ledger_source("reversal", "reversal"),
            mlm_ledger_splitting="cancel",
        )
        try:
            return super(SaleOrder, orders)._action_cancel()
        finally:
            ledger._mlm_clear_splits()

    def _get_point_changes(self):
        """Announce each order's earn and redeem parts before native code adds
        them up per card (it writes one total for a whole batch of orders)."""
        changes = super()._get_point_changes()
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
            card = coupon_point.coupon_id
            if card.program_id.id in member_ids:
                parts.setdefault(card, []).append(
                    ("earn", coupon_point.points, _("Points earned"))
                )
        for line in self.order_line.filtered(
            lambda line: line.reward_id and line.coupon_id
        ):
            if line.coupon_id.program_id.id in member_ids:
                parts.setdefault(line.coupon_id, []).append(
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
