from odoo import api, models

from .loyalty_mlm_ledger import mlm_source


class SaleOrderLine(models.Model):
    _inherit = "sale.order.line"

    def _mlm_with_source(self, orders):
        """Reward lines changed on a confirmed order spend or give back points."""
        res_id = orders.id if len(orders) == 1 else 0
        return self.with_context(
            mlm_ledger_source=mlm_source("sale.order", res_id, "reversal", "redeem")
        )

    @api.model_create_multi
    def create(self, vals_list):
        orders = self.env["sale.order"].browse(
            {vals["order_id"] for vals in vals_list if vals.get("order_id")}
        )
        return super(SaleOrderLine, self._mlm_with_source(orders)).create(vals_list)

    def write(self, vals):
        if "points_cost" not in vals:
            return super().write(vals)
        return super(SaleOrderLine, self._mlm_with_source(self.order_id)).write(vals)

    def unlink(self):
        return super(SaleOrderLine, self._mlm_with_source(self.order_id)).unlink()
