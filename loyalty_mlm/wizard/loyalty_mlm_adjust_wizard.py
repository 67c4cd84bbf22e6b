from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_is_zero, float_round, formatLang

from ..models.loyalty_card import MANAGER_GROUP
from ..models.loyalty_mlm_ledger import PRECISION


class LoyaltyMlmAdjustWizard(models.TransientModel):
    _name = "loyalty.mlm.adjust.wizard"
    _inherit = "loyalty.mlm.points.input"
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

    @api.model
    def default_get(self, fields_list):
        # Launched from the contacts' Action menu: one member at a time.
        context = self.env.context
        if (
            context.get("active_model") == "res.partner"
            and len(context.get("active_ids") or []) > 1
        ):
            raise UserError(_("Adjust the points of one member at a time."))
        return super().default_get(fields_list)

    def action_apply(self):
        if len(self) != 1:
            raise UserError(_("Adjust the points of one member at a time."))
        if not self.env.user.has_group(MANAGER_GROUP):
            raise UserError(_("Only Loyalty Managers can adjust points."))
        points = float_round(self._mlm_check_points(self.points), PRECISION)
        if float_is_zero(points, precision_digits=PRECISION):
            raise UserError(_("Enter a number of points other than zero."))
        if not (self.reason or "").strip():
            raise UserError(_("Say why the points are adjusted."))
        # The partner's card is computed per request: read it afresh.
        card = self.partner_id.sudo().with_context(active_test=True).mlm_card_id
        if len(card) != 1:
            raise UserError(
                _(
                    "%(contact)s is not a member: make them a member before "
                    "adjusting their points.",
                    contact=self.partner_id.display_name,
                )
            )
        card._mlm_check_points_range([card.points + points])
        card._mlm_adjust(points, self.reason)
        # The note is stored once: written in the member's language (as his
        # statement), points as the programme shows them ("+50", "-173.02").
        # sudo: adjusting points is the Loyalty Manager's right, editing the
        # contact is not needed to leave the note; the author stays the user.
        member = self.partner_id.sudo()
        lang_env = self.with_context(lang=member.lang or self.env.lang).env
        digits = card.program_id.mlm_points_digits
        member.message_post(
            author_id=self.env.user.partner_id.id,
            body=Markup("%s<br/>%s")
            % (
                lang_env._(
                    "Points adjusted by %(points)s (new balance %(balance)s).",
                    points=("+" if points > 0 else "")
                    + formatLang(lang_env, points, digits=digits),
                    balance=formatLang(lang_env, card.points, digits=digits),
                ),
                lang_env._("Reason: %s", self.reason),
            ),
            subtype_xmlid="mail.mt_note",
        )
        return {"type": "ir.actions.act_window_close"}
