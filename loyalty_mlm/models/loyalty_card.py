from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from .loyalty_mlm_ledger import mlm_source


class LoyaltyCard(models.Model):
    _inherit = "loyalty.card"

    mlm_ledger_ids = fields.One2many("loyalty.mlm.ledger", "card_id", string="Ledger")
    mlm_ledger_mismatch = fields.Boolean(
        string="Ledger Mismatch",
        readonly=True,
        help="Set by the daily ledger check when the balance differs from the "
        "sum of the ledger.",
    )

    # ------------------------------------------------------------
    # Constraints
    # ------------------------------------------------------------

    @api.constrains("partner_id", "program_id", "active")
    def _check_mlm_single_member_card(self):
        member_cards = self._mlm_member_cards().filtered("partner_id")
        if not member_cards:
            return
        groups = self.with_context(active_test=True)._read_group(
            [
                ("partner_id", "in", member_cards.partner_id.ids),
                ("program_id", "in", member_cards.program_id.ids),
            ],
            ["partner_id", "program_id"],
            ["__count"],
        )
        for partner, program, count in groups:
            if count > 1:
                raise ValidationError(
                    _(
                        "%(partner)s already has a card in the member programme "
                        "%(program)s: a member has one card, never two.",
                        partner=partner.display_name,
                        program=program.display_name,
                    )
                )

    # ------------------------------------------------------------
    # CRUD: every points change of a member card lands in the ledger
    # ------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        cards = super().create(vals_list)
        members = cards._mlm_member_cards()
        if members:
            self._mlm_mark_member(members.partner_id)
            self.env["loyalty.mlm.ledger"]._mlm_record_changes(
                {card: card.points for card in members}
            )
        return cards

    def write(self, vals):
        if "points" not in vals:
            res = super().write(vals)
            if vals.get("partner_id"):
                self._mlm_mark_member(self._mlm_member_cards().partner_id)
            return res
        members = self._mlm_member_cards()
        before = {card: card.points for card in members}
        res = super().write(vals)
        self.env["loyalty.mlm.ledger"]._mlm_record_changes(
            {card: card.points - points for card, points in before.items()}
        )
        return res

    # ------------------------------------------------------------
    # Business methods
    # ------------------------------------------------------------

    def _mlm_member_cards(self):
        """The cards of `self` that belong to a member programme."""
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        return self.filtered(lambda card: card.program_id.id in member_ids)

    def _mlm_lock(self):
        """Lock the card rows (ordered by id, so two sessions never deadlock).

        FOR NO KEY UPDATE still lets other transactions insert rows pointing at
        the card (ledger entries, order lines). Under REPEATABLE READ a card
        changed since this transaction's snapshot raises a serialization error,
        and Odoo's request retry replays the whole request: nothing is lost or
        counted twice.
        """
        if self.ids:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM loyalty_card WHERE id = ANY(%s) "
                    "ORDER BY id FOR NO KEY UPDATE",
                    self.ids,
                )
            )

    @api.model
    def _mlm_lock_member_cards(self, card_ids, fnames):
        """The member cards among `card_ids`, locked as _mlm_lock does and
        with `fnames` (stored columns) read by the same query: the order
        sync's hot path locks and reads its cards in one round trip. Values
        already in the cache (pending changes) are kept, as search_fetch
        does."""
        member_ids = list(self.env["loyalty.program"]._mlm_member_programme_ids())
        if not card_ids or not member_ids:
            return self.browse()
        rows = self.env.execute_query(
            SQL(
                "SELECT id, %s FROM loyalty_card "
                "WHERE id = ANY(%s) AND program_id = ANY(%s) "
                "ORDER BY id FOR NO KEY UPDATE",
                SQL(", ").join(SQL.identifier(fname) for fname in fnames),
                list(card_ids),
                member_ids,
            )
        )
        cards = self.browse([row[0] for row in rows])
        for index, fname in enumerate(fnames, start=1):
            self.env.cache.insert_missing(
                cards, self._fields[fname], [row[index] for row in rows]
            )
        return cards

    def _mlm_post_opening_balance(self):
        """Opening entry for member cards whose balance the ledger does not hold."""
        mismatches = self.env["loyalty.mlm.ledger"]._mlm_reconcile(self)
        for card in self.browse(list(mismatches)):
            points, ledger = mismatches[card.id]
            self.env["loyalty.mlm.ledger"]._mlm_post(
                [
                    {
                        "card_id": card.id,
                        "partner_id": card.partner_id.id,
                        "card_code": card.code,
                        "program_id": card.program_id.id,
                        "company_id": (card.company_id or self.env.company).id,
                        "points": points - ledger,
                        "kind": "opening",
                        "res_model": card._name,
                        "res_id": card.id,
                        "reason": _("Balance before the ledger started"),
                    }
                ]
            )

    def _mlm_post_points(self, points, kind, source=None, reason=""):
        """Credit (or debit) points on this member card for our own reasons.

        The one way add-on code moves points (bonuses, adjustments,
        donations...): it changes the native card, so the balance stays the sum
        of the ledger, and the ledger entry gets `kind` and `source` (a record,
        shown as the source document).
        """
        self.ensure_one()
        self._mlm_lock()
        context_source = mlm_source(
            source._name if source else self._name,
            source.id if source else self.id,
            kind,
            kind,
            reason,
        )
        self.with_context(mlm_ledger_source=context_source).sudo().points += points

    def _mlm_adjust(self, points, reason):
        """Add (or remove) points by hand; the ledger gets an adjustment."""
        self._mlm_post_points(points, "adjustment", reason=reason)

    # ------------------------------------------------------------
    # Membership: a member is a contact with a card in the company's member
    # programme (res.partner shows it and has the buttons).
    # ------------------------------------------------------------

    @api.model
    def _mlm_mark_member(self, partners):
        """`partners` are members since today, unless they already were."""
        newcomers = partners.filtered(lambda partner: not partner.mlm_member_since)
        if newcomers:
            newcomers.sudo().write(
                {"mlm_member_since": fields.Date.context_today(self)}
            )

    @api.model
    def _mlm_enroll(self, partners, company):
        """Make `partners` members of the company's programme: one card each,
        ever."""
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
        existing = cards.search_fetch(
            [("program_id", "=", program.id), ("partner_id", "in", partners.ids)],
            ["partner_id"],
        )
        missing = partners - existing.partner_id
        if missing:
            # sudo: salespeople and cashiers have no create right on cards.
            cards.create(
                [
                    {"program_id": program.id, "partner_id": p.id, "points": 0}
                    for p in missing
                ]
            )
        self._mlm_mark_member(partners - missing)
        # Referral code and welcome bonus (see loyalty.mlm.bonus).
        self.env["loyalty.mlm.bonus"]._mlm_on_member(partners, company)

    @api.model
    def _mlm_auto_enroll(self, partners, company):
        if company.mlm_auto_enroll and company.mlm_program_id and partners:
            self._mlm_enroll(partners, company)
