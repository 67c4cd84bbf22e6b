from odoo import _, models

from ..models.loyalty_card import MERGE_FLOW, mlm_flow
from ..models.loyalty_mlm_ledger import mlm_source


class MergePartnerAutomatic(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _merge_loyalty_cards(self, src_partners, dst_partner):
        """Native merge moves the points onto one card: log it as the merge."""
        source = mlm_source(
            "res.partner",
            dst_partner.id,
            "adjustment",
            "adjustment",
            _("Contacts merged into %s", dst_partner.display_name),
        )
        # The one way a member card changes holder (see loyalty.card guards).
        with mlm_flow(self.env, MERGE_FLOW):
            return super(
                MergePartnerAutomatic, self.with_context(mlm_ledger_source=source)
            )._merge_loyalty_cards(src_partners, dst_partner)
