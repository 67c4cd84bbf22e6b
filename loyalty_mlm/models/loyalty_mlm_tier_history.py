from odoo import fields, models


class LoyaltyMlmTierHistory(models.Model):
    """One row per tier change of a member: upgrades on the qualifying order,
    downgrades at the nightly review after the grace period."""

    _name = "loyalty.mlm.tier.history"
    _description = "Member Tier History"
    _order = "date desc, id desc"
    # Never edited; the date and user say when and by whom (see the stage
    # history: two foreign-key checks fewer per row, issue #22).
    _log_access = False

    partner_id = fields.Many2one(
        "res.partner", string="Member", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    from_tier_id = fields.Many2one("loyalty.mlm.tier", string="From")
    to_tier_id = fields.Many2one("loyalty.mlm.tier", string="To")
    date = fields.Datetime(required=True, default=fields.Datetime.now, index=True)
    reason_code = fields.Selection(
        [
            ("start", "First tier"),
            ("upgrade", "Upgrade"),
            ("downgrade", "Downgrade after grace period"),
        ],
        string="Reason",
        required=True,
    )
    metric = fields.Float(
        string="Qualification Value",
        digits=(16, 2),
        help="Points earned or net spend over the 12 months before the change.",
    )
    reason = fields.Char(string="Details")
    user_id = fields.Many2one(
        "res.users", string="By", default=lambda self: self.env.user
    )
