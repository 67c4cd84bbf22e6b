from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_compare, formatLang

from ..models.loyalty_mlm_ledger import mlm_reason


class LoyaltyMlmDonationWizard(models.TransientModel):
    """A member (through a salesperson) gives points to a charity.

    The points leave the member's card like any other movement: the native
    balance goes down and the ledger gets a donation entry whose source is
    the charity. A donation never takes the balance below zero.
    """

    _name = "loyalty.mlm.donation.wizard"
    _inherit = "loyalty.mlm.points.input"
    _description = "Donate Member Points"

    partner_id = fields.Many2one("res.partner", string="Member", required=True)
    card_id = fields.Many2one(
        "loyalty.card", string="Member Card", compute="_compute_card_id"
    )
    balance = fields.Float(string="Balance", compute="_compute_card_id", digits=(16, 2))
    charity_id = fields.Many2one(
        "res.partner",
        string="Charity",
        required=True,
        domain="[('mlm_is_charity', '=', True)]",
    )
    points = fields.Float(string="Points to Donate", required=True, digits=(16, 2))

    @api.depends("partner_id")
    def _compute_card_id(self):
        for wizard in self:
            # sudo: Loyalty Users read cards, the balance of the card is what
            # the wizard shows.
            card = wizard.partner_id.sudo().mlm_card_id
            wizard.card_id = card
            wizard.balance = card.points

    def action_donate(self):
        if len(self) != 1:
            raise UserError(_("Record one donation at a time."))
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_user"):
            raise UserError(_("Only Loyalty Users can record donations."))
        self._mlm_donate(self.partner_id, self.charity_id, self.points)
        return {"type": "ir.actions.act_window_close"}

    @api.model
    def _mlm_donate(self, partner, charity, points):
        """Move `points` of the member `partner` to the charity `charity`: the
        rules of every donation, whoever records it (this wizard, the member
        on the portal). The caller checks who may donate for `partner`."""
        points = self._mlm_check_points(points)
        if float_compare(points, 0.0, precision_digits=2) <= 0:
            raise UserError(_("Enter a positive number of points to donate."))
        if not charity.mlm_is_charity:
            raise UserError(
                _(
                    "%(charity)s is not on the list of charities.",
                    charity=charity.display_name,
                )
            )
        # sudo: Loyalty Users read cards; the portal donates its own points.
        card = partner.sudo().mlm_card_id
        if not card:
            raise UserError(
                _(
                    "%(member)s is not a member: there are no points to donate.",
                    member=partner.display_name,
                )
            )
        # Lock first, then read the balance of this transaction's snapshot: two
        # donations at once cannot both pass the check.
        card._mlm_lock()
        card.invalidate_recordset(["points"])
        if float_compare(points, card.points, precision_digits=2) > 0:
            raise UserError(
                _(
                    "%(member)s has %(balance)s points: they cannot donate %(points)s.",
                    member=partner.display_name,
                    balance=card.points,
                    points=points,
                )
            )
        card._mlm_post_points(
            -points,
            "donation",
            source=charity,
            reason=mlm_reason("donation", charity=charity.display_name),
        )
        # Points as the programme shows them ("50", "600", not "50.0"), in the
        # member's language (the note is stored once, as his statement reads).
        digits = card.program_id.mlm_points_digits
        member = partner.sudo()
        lang_env = self.with_context(lang=member.lang or self.env.lang).env
        # sudo: the note records what the user may do (donate); salespeople
        # need no write right on the contact to leave it.
        member.message_post(
            author_id=self.env.user.partner_id.id,
            body=lang_env._(
                "%(points)s points donated to %(charity)s (new balance %(balance)s).",
                points=formatLang(lang_env, points, digits=digits),
                charity=charity.display_name,
                balance=formatLang(lang_env, card.points, digits=digits),
            ),
            subtype_xmlid="mail.mt_note",
        )
        return card
