import math

from odoo import _, api, models
from odoo.exceptions import ValidationError

from .loyalty_card import POINTS_FLOW, mlm_flow
from .loyalty_mlm_ledger import mlm_source


class SaleOrderLine(models.Model):
    _inherit = "sale.order.line"

    def _mlm_with_source(self, orders):
        """Reward lines changed on a confirmed order spend or give back points."""
        res_id = orders.id if len(orders) == 1 else 0
        return self.with_context(
            mlm_ledger_source=mlm_source("sale.order", res_id, "reversal", "redeem")
        )

    @api.constrains("points_cost", "coupon_id")
    def _check_mlm_points_cost(self):
        # A reward costs points: a negative cost would turn a redemption on a
        # member card into a credit.
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        for line in self:
            if line.coupon_id.program_id.id not in member_ids:
                continue
            if not math.isfinite(line.points_cost) or line.points_cost < 0:
                raise ValidationError(
                    _(
                        "A reward on a member card costs a positive number of "
                        "points, not %(points)s.",
                        points=line.points_cost,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        orders = self.env["sale.order"].browse(
            {vals["order_id"] for vals in vals_list if vals.get("order_id")}
        )
        # Odoo spends (or gives back) the reward's points as the user: the
        # card guards let this flow through (see loyalty.card).
        with mlm_flow(self.env, POINTS_FLOW):
            return super(SaleOrderLine, self._mlm_with_source(orders)).create(vals_list)

    def write(self, vals):
        if "points_cost" not in vals:
            return super().write(vals)
        with mlm_flow(self.env, POINTS_FLOW):
            return super(SaleOrderLine, self._mlm_with_source(self.order_id)).write(
                vals
            )

    def unlink(self):
        with mlm_flow(self.env, POINTS_FLOW):
            return super(SaleOrderLine, self._mlm_with_source(self.order_id)).unlink()
