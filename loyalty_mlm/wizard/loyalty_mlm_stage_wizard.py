from odoo import _, fields, models
from odoo.exceptions import UserError


class LoyaltyMlmStageWizard(models.TransientModel):
    """A Loyalty Manager sets a stage by hand, with a reason and a lock."""

    _name = "loyalty.mlm.stage.wizard"
    _description = "Set Lifecycle Stage"

    partner_ids = fields.Many2many("res.partner", string="Contacts", required=True)
    stage_id = fields.Many2one("loyalty.mlm.stage", string="Stage", required=True)
    reason = fields.Char(required=True)
    locked_until = fields.Date(
        string="Keep Until",
        help="The automatic rules leave these contacts in this stage until this "
        "date (included). Empty: the next automatic refresh may move them.",
    )

    def action_apply(self):
        self.ensure_one()
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager"):
            raise UserError(_("Only Loyalty Managers can set a stage by hand."))
        if not (self.reason or "").strip():
            raise UserError(_("Say why the stage is set by hand."))
        if self.locked_until and self.locked_until < fields.Date.context_today(self):
            raise UserError(_("The lock date cannot be in the past."))
        self.stage_id._mlm_set_manually(
            self.partner_ids, self.reason, self.locked_until
        )
        return {"type": "ir.actions.act_window_close"}
