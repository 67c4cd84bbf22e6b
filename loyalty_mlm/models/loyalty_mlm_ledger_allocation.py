from odoo import _, api, fields, models
from odoo.exceptions import UserError


class LoyaltyMlmLedgerAllocation(models.Model):
    """Which earned lot a negative ledger entry consumed, and how much of it.

    Append-only like the ledger: a lot's remaining points are derived from
    these rows, so FIFO expiry never edits an amount.
    """

    _name = "loyalty.mlm.ledger.allocation"
    _description = "Member Point Lot Consumption"
    _order = "id"
    # Never written after its creation, and made with its entry: the entry
    # says who and when. Without the four log columns an allocation is
    # narrower and checks two foreign keys, not four (the expiry job makes
    # one per expired lot; issue 22).
    _log_access = False

    lot_id = fields.Many2one(
        "loyalty.mlm.ledger", required=True, index=True, ondelete="restrict"
    )
    entry_id = fields.Many2one(
        "loyalty.mlm.ledger", required=True, index=True, ondelete="restrict"
    )
    points = fields.Float(required=True, digits=(16, 2))

    _sql_constraints = [
        (
            "points_positive",
            "CHECK(points > 0)",
            "An allocation takes a positive amount.",
        ),
    ]

    def write(self, vals):
        if vals:
            raise UserError(_("Point lot allocations cannot be changed."))
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(_("Point lot allocations cannot be deleted."))
