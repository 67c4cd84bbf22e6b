from odoo import _, api, models
from odoo.exceptions import AccessError

from ..models.res_partner import LOYALTY_GROUPS


class ReportPointsStatement(models.AbstractModel):
    """The Points Statement: a member's ledger, printed for loyalty staff.

    The report action is only offered to Loyalty Users, but a report is
    reachable by its URL and by RPC whatever the menu shows: the rights are
    checked here, where the documents are read.
    """

    _name = "report.loyalty_mlm.report_points_statement"
    _description = "Points Statement"

    @api.model
    def _get_report_values(self, docids, data=None):
        if not self.env.su and not self.env.user.has_group(LOYALTY_GROUPS):
            raise AccessError(_("Only Loyalty Users can print points statements."))
        docs = self.env["res.partner"].browse(docids)
        docs.check_access("read")
        return {
            "doc_ids": docids,
            "doc_model": "res.partner",
            "docs": docs,
        }
