from odoo import fields, models

from ..tools.lifecycle import REASON_LABELS


class LoyaltyMlmStageHistory(models.Model):
    """One row per stage move of a contact, automatic or by hand."""

    _name = "loyalty.mlm.stage.history"
    _description = "Member Lifecycle Stage History"
    _order = "date desc, id desc"
    # A move is never edited, and its date and user say when and by whom:
    # the log columns would repeat them and cost two foreign-key checks a
    # row, a quarter of a first assignment's history insert (issue #22).
    _log_access = False

    partner_id = fields.Many2one(
        "res.partner", required=True, index=True, ondelete="cascade"
    )
    from_stage_id = fields.Many2one("loyalty.mlm.stage", string="From")
    to_stage_id = fields.Many2one("loyalty.mlm.stage", string="To", required=True)
    date = fields.Datetime(required=True, default=fields.Datetime.now, index=True)
    reason_code = fields.Selection(
        # The rules' own sentences (tools/lifecycle.py), translated as labels.
        [
            *REASON_LABELS.items(),
            ("manual", "Set by hand."),
            ("won_back", "Ordered again after a lapse."),
        ],
        required=True,
    )
    reason = fields.Char(help="Why the contact moved, in words.")
    automatic = fields.Boolean(default=True)
    user_id = fields.Many2one(
        "res.users", string="By", default=lambda self: self.env.user
    )
    company_id = fields.Many2one(
        "res.company", default=lambda self: self.env.company, index=True
    )
