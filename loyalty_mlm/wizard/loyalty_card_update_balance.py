from odoo import _, models
from odoo.exceptions import AccessError

from ..models.loyalty_card import MANAGER_GROUP
from ..models.loyalty_mlm_ledger import mlm_source


class LoyaltyCardUpdateBalance(models.TransientModel):
    _inherit = "loyalty.card.update.balance"

    def action_update_card_point(self):
        if self.card_id._mlm_member_cards() and not (
            self.env.su or self.env.user.has_group(MANAGER_GROUP)
        ):
            # Said before Odoo writes its history line (the card refuses the
            # change anyway).
            raise AccessError(
                _("Only Loyalty Managers can change the balance of a member card.")
            )
        self.card_id._mlm_lock()
        # The description is the reason of the ledger entry.
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
