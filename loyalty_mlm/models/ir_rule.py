from odoo import _, models
from odoo.exceptions import AccessError


class IrRule(models.Model):
    _inherit = "ir.rule"

    def _make_access_error(self, operation, records):
        # The scores keep their company as a plain Integer (written in bulk
        # SQL); core's message reads `company_id` as a company record and
        # would fail with a TypeError instead of refusing with this error.
        if records._name == "loyalty.mlm.partner.score":
            return AccessError(
                _(
                    "The segment scores of a company you do not work in are "
                    "closed to you."
                )
            )
        return super()._make_access_error(operation, records)
