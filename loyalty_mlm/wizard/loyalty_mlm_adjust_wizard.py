from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError


class LoyaltyMlmAdjustWizard(models.TransientModel):
    _name = "loyalty.mlm.adjust.wizard"
    _description = "Adjust Member Points"

    partner_id = fields.Many2one("res.partner", string="Member", required=True)
    card_id = fields.Many2one(
        "loyalty.card",
        compute="_compute_card_id",
        string="Member Card",
    )
    current_points = fields.Float(related="card_id.points", string="Current Balance")
    points = fields.Float(
        string="Points to Add",
        required=True,
        digits=(16, 2),
        help="Positive to credit, negative to debit.",
    )
    reason = fields.Char(required=True)

    @api.depends("partner_id")
    def _compute_card_id(self):
        for wizard in self:
            wizard.card_id = wizard.partner_id.sudo().mlm_card_id

    def action_apply(self):
        self.ensure_one()
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager"):
            raise UserError(_("Only Loyalty Managers can adjust points."))
        if not self.points:
            raise UserError(_("Enter a number of points other than zero."))
        if not (self.reason or "").strip():
            raise UserError(_("Say why the points are adjusted."))
        if not self.card_id:
            self.env["loyalty.card"]._mlm_enroll(self.partner_id, self.env.company)
            self._compute_card_id()
        self.card_id._mlm_adjust(self.points, self.reason)
        self.partner_id.message_post(
            body=Markup("%s<br/>%s")
            % (
                _(
                    "Points adjusted by %(points)+g (new balance %(balance)g).",
                    points=self.points,
                    balance=self.card_id.points,
                ),
                _("Reason: %s", self.reason),
            ),
            subtype_xmlid="mail.mt_note",
        )
        return {"type": "ir.actions.act_window_close"}
