from odoo import _, models

from ..models.loyalty_card import MERGE_FLOW, mlm_flow
from ..models.loyalty_mlm_ledger import mlm_source


class MergePartnerAutomatic(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _merge_loyalty_cards(self, src_partners, dst_partner):
        """Native merge moves the points onto one card: log it as the merge,
        and remember on each emptied card where its points went, so that a
        later reversal of one of its orders (cancel, refund) lands on the
        surviving member's card, not on the archived one."""
        Card = self.env["loyalty.card"].sudo().with_context(active_test=False)
        partners = src_partners | dst_partner
        before = Card.search(
            [("partner_id", "in", partners.ids), ("active", "=", True)]
        )
        source = mlm_source(
            "res.partner",
            dst_partner.id,
            "adjustment",
            "adjustment",
            _("Contacts merged into %s", dst_partner.display_name),
        )
        # The one way a member card changes holder (see loyalty.card guards).
        with mlm_flow(self.env, MERGE_FLOW):
            res = super(
                MergePartnerAutomatic, self.with_context(mlm_ledger_source=source)
            )._merge_loyalty_cards(src_partners, dst_partner)
            for cards in before.grouped("program_id").values():
                survivor = cards.filtered(
                    lambda card: card.active and card.partner_id == dst_partner
                )[:1]
                emptied = (cards - survivor).filtered(lambda card: not card.active)
                if survivor and emptied:
                    emptied.write({"mlm_merged_into_id": survivor.id})
        return res

    def _update_values(self, src_partners, dst_partner):
        """Referral codes are unique: the code the destination inherits (it
        had none) leaves its source first, so a member's shared code keeps
        working after the merge."""
        donors = src_partners.filtered("mlm_referral_code")
        code = not dst_partner.mlm_referral_code and donors[-1:].mlm_referral_code
        if donors:
            donors.sudo().write({"mlm_referral_code": False})
        res = super()._update_values(src_partners, dst_partner)
        if code:
            dst_partner.sudo().mlm_referral_code = code
        return res
