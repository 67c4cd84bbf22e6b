from odoo import models

from ..models.loyalty_mlm_ledger import mlm_source


class LoyaltyCardUpdateBalance(models.TransientModel):
    _inherit = "loyalty.card.update.balance"

    def action_update_card_point(self):
        self.card_id._mlm_lock()
        source = mlm_source(
            "loyalty.card",
            self.card_id.id,
            "adjustment",
            "adjustment",
            self.description,
        )
        return super(
            LoyaltyCardUpdateBalance, self.with_context(mlm_ledger_source=source)
        ).action_update_card_point()
