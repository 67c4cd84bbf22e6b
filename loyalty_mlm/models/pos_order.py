from odoo import _, models
from odoo.tools import float_round

from .loyalty_mlm_ledger import PRECISION, mlm_source


class PosOrder(models.Model):
    _inherit = "pos.order"

    def validate_coupon_programs(self, point_changes, new_codes):
        """Say plainly why a member with a negative balance cannot redeem."""
        point_changes = {str(key): value for key, value in point_changes.items()}
        changes = {int(key): value for key, value in point_changes.items()}
        cards = self.env["loyalty.card"].browse(list(changes)).exists()
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
        """Source the card changes to this order; split earn from redeem."""
        self.ensure_one()
        data = {int(key): value for key, value in coupon_data.items()}
        cards = (
            self.env["loyalty.card"].sudo().browse([k for k in data if k > 0]).exists()
        )
        member_cards = cards._mlm_member_cards()
        member_cards._mlm_lock()
        ledger = self.env["loyalty.mlm.ledger"]
        for card in member_cards:
            codes = set(data[card.id].get("line_codes") or [])
            spent = sum(
                line.points_cost
                for line in self.lines
                if line.reward_identifier_code in codes
            )
            net = data[card.id].get("points") or 0.0
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
        order = self.with_context(
            mlm_ledger_source=mlm_source(self._name, self.id, "earn", "redeem")
        )
        try:
            return super(PosOrder, order).confirm_coupon_programs(coupon_data)
        finally:
            ledger._mlm_clear_splits()

    def _process_saved_order(self, draft):
        res = super()._process_saved_order(draft)
        if not draft and self.state in ("paid", "done", "invoiced"):
            if self.partner_id:
                self.env["res.partner"]._mlm_auto_enroll(
                    self.partner_id, self.company_id
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
                ("kind", "=", "earn"),
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
