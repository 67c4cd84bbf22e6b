from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError

EXPIRING_SOON_DAYS = 30


class ResPartner(models.Model):
    _inherit = "res.partner"

    mlm_member_since = fields.Date(string="Member Since", copy=False, tracking=True)
    mlm_card_id = fields.Many2one(
        "loyalty.card",
        string="Member Card",
        compute="_compute_mlm_card_id",
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_points = fields.Float(
        string="Points",
        compute="_compute_mlm_card_id",
        digits=(16, 2),
        groups="loyalty_mlm.group_loyalty_mlm_user",
    )
    mlm_redemption_blocked = fields.Boolean(
        string="Redemption Blocked",
        compute="_compute_mlm_card_id",
        groups="loyalty_mlm.group_loyalty_mlm_user",
        help="The balance is negative (points taken back after they were spent): "
        "no redemption until it is positive again.",
    )
    mlm_points_expiring_soon = fields.Float(
        string="Expiring Soon",
        compute="_compute_mlm_points_expiring_soon",
        digits=(16, 2),
        groups="loyalty_mlm.group_loyalty_mlm_user",
        help="Points that expire in the next 30 days.",
    )

    def _compute_mlm_card_id(self):
        program = self.env.company.mlm_program_id
        cards = self.env["loyalty.card"].sudo()
        if program and self.ids:
            cards = cards.search(
                [("program_id", "=", program.id), ("partner_id", "in", self.ids)]
            )
        card_per_partner = {card.partner_id.id: card for card in cards}
        for partner in self:
            card = card_per_partner.get(partner.id, cards.browse())
            partner.mlm_card_id = card
            partner.mlm_points = card.points
            partner.mlm_redemption_blocked = card.points < 0

    def _compute_mlm_points_expiring_soon(self):
        today = fields.Date.context_today(self)
        groups = (
            self.env["loyalty.mlm.ledger"]
            .sudo()
            ._read_group(
                [
                    ("partner_id", "in", self.ids),
                    ("remaining", ">", 0),
                    ("expiry_date", ">=", today),
                    ("expiry_date", "<=", today + timedelta(days=EXPIRING_SOON_DAYS)),
                    ("program_id", "=", self.env.company.mlm_program_id.id),
                ],
                ["partner_id"],
                ["remaining:sum"],
            )
        )
        expiring = {partner.id: total for partner, total in groups}
        for partner in self:
            partner.mlm_points_expiring_soon = expiring.get(partner.id, 0.0)

    # ------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------

    def action_mlm_enroll(self):
        self.ensure_one()
        self._mlm_enroll(self.env.company)
        return True

    def action_mlm_open_ledger(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "loyalty_mlm.loyalty_mlm_ledger_action"
        )
        action["domain"] = [("partner_id", "=", self.id)]
        action["context"] = {"default_partner_id": self.id}
        return action

    # ------------------------------------------------------------
    # Business methods
    # ------------------------------------------------------------

    def _mlm_mark_member(self):
        """Members since today, unless they already were."""
        newcomers = self.filtered(lambda partner: not partner.mlm_member_since)
        if newcomers:
            newcomers.sudo().write(
                {"mlm_member_since": fields.Date.context_today(self)}
            )

    def _mlm_enroll(self, company):
        """Make `self` members of the company's programme: one card each, ever."""
        program = company.mlm_program_id
        if not program:
            raise UserError(
                _(
                    "Choose a member programme for %s in Members > Configuration > "
                    "Settings first.",
                    company.name,
                )
            )
        cards = self.env["loyalty.card"].sudo()
        existing = cards.search(
            [("program_id", "=", program.id), ("partner_id", "in", self.ids)]
        )
        missing = self - existing.partner_id
        if missing:
            # sudo: salespeople and cashiers have no create right on cards.
            cards.create(
                [
                    {"program_id": program.id, "partner_id": p.id, "points": 0}
                    for p in missing
                ]
            )
        (self - missing)._mlm_mark_member()

    @api.model
    def _mlm_auto_enroll(self, partners, company):
        if company.mlm_auto_enroll and company.mlm_program_id and partners:
            partners._mlm_enroll(company)

    def _mlm_statement_entries(self):
        """Ledger lines of the points statement, oldest first, with a running
        balance and a printable source name."""
        self.ensure_one()
        entries = (
            self.env["loyalty.mlm.ledger"]
            .sudo()
            .search(
                [
                    ("partner_id", "=", self.id),
                    ("program_id", "=", self.env.company.mlm_program_id.id),
                ],
                order="date, id",
            )
        )
        balance, lines = 0.0, []
        for entry in entries:
            balance += entry.points
            source = entry.source_ref
            lines.append(
                {
                    "entry": entry,
                    "balance": round(balance, 2),
                    "source": source.display_name if source else "",
                }
            )
        return lines
