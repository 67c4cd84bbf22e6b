import math
from collections import Counter
from contextlib import contextmanager

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, float_compare, float_is_zero, float_round

from .loyalty_mlm_ledger import (
    MAX_POINTS,
    PRECISION,
    SPLITS_KEY,
    mlm_reason,
    mlm_source,
)

MANAGER_GROUP = "loyalty_mlm.group_loyalty_mlm_manager"
# Server-side flows in progress (see mlm_flow), kept on the transaction.
FLOWS_KEY = "loyalty_mlm.flows"
POINTS_FLOW = "points"  # a document flow that changes points as the user
MERGE_FLOW = "merge"  # the partner merge moving cards to the surviving contact


@contextmanager
def mlm_flow(env, flow):
    """Mark the transaction as inside the server-side flow `flow` meanwhile.

    The mark lives on the cursor (env.cr.cache), not in the context: a client
    sends any context key it likes over RPC, but only server code reaches the
    cursor. The card guards below trust the mark, never a context key.
    """
    flows = env.cr.cache.setdefault(FLOWS_KEY, Counter())
    flows[flow] += 1
    try:
        yield
    finally:
        flows[flow] -= 1


def mlm_in_flow(env, flow):
    return env.cr.cache.get(FLOWS_KEY, Counter())[flow] > 0


class LoyaltyCard(models.Model):
    _inherit = "loyalty.card"

    mlm_ledger_ids = fields.One2many("loyalty.mlm.ledger", "card_id", string="Ledger")
    mlm_merged_into_id = fields.Many2one(
        "loyalty.card",
        string="Merged Into",
        readonly=True,
        index="btree_not_null",
        copy=False,
        help="Set when a merge of contacts moved this card's points to another "
        "card: later reversals of this card's orders land there.",
    )
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

    @api.constrains("active")
    def _check_mlm_archived_balance(self):
        # An archived card is invisible to the next order, which would open a
        # second card and strand these points. Checked when a card is
        # archived (not on every points change: the order sync's hot path).
        for card in self._mlm_member_cards():
            if not card.active and not float_is_zero(
                card.points, precision_digits=PRECISION
            ):
                raise ValidationError(
                    _(
                        "The member card %(code)s of %(member)s holds %(points)s "
                        "points: move the balance first (Adjust Points), then "
                        "archive the card.",
                        code=card.code,
                        member=card.partner_id.display_name or "-",
                        points=card.points,
                    )
                )

    # ------------------------------------------------------------
    # CRUD: every points change of a member card lands in the ledger
    # ------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        for vals in vals_list:
            if "points" not in vals:
                continue
            vals["points"] = self._mlm_points_value(vals["points"])
            program_id = (
                vals["program_id"]
                if "program_id" in vals
                else self.default_get(["program_id"]).get("program_id")
            )
            if program_id in member_ids:
                # The ledger's precision, as for every change (see write).
                vals["points"] = float_round(vals["points"], PRECISION)
        cards = super().create(vals_list)
        members = cards._mlm_member_cards()
        if members:
            funded = members.filtered(
                lambda card: not float_is_zero(card.points, precision_digits=PRECISION)
            )
            funded._mlm_check_points_rights()
            funded._mlm_check_points_range(funded.mapped("points"))
            self._mlm_mark_member(members.partner_id)
            ledger = self.env["loyalty.mlm.ledger"]
            if not self.env.context.get("mlm_ledger_source"):
                # A card born in the member programme with points: its
                # balance opens its ledger.
                ledger = ledger.with_context(
                    mlm_ledger_source=mlm_source(
                        False,
                        0,
                        "opening",
                        "opening",
                        _("Balance of the card when it joined the member programme"),
                    )
                )
            ledger._mlm_record_changes({card: card.points for card in members})
        return cards

    def write(self, vals):
        if "points" in vals:
            vals = {**vals, "points": self._mlm_points_value(vals["points"])}
        members = self._mlm_member_cards()
        if "points" in vals and members and members != self:
            # Member cards keep the ledger's precision, other cards Odoo's.
            others = self - members
            return others.write(vals) and members.write(vals)
        entering = self._mlm_check_program_change(vals, members)
        if entering and "points" in vals:
            vals["points"] = float_round(vals["points"], PRECISION)
            self._mlm_check_points_range([vals["points"]])
        for card in entering:
            # A card joins with a balance to the ledger's precision.
            rounded = float_round(card.points, PRECISION)
            self._mlm_check_points_range([rounded])
            if rounded != card.points:
                super(LoyaltyCard, card).write({"points": rounded})
        self._mlm_check_holder_change(vals, members)
        if "points" in vals and members:
            vals["points"] = float_round(vals["points"], PRECISION)
            self._mlm_check_points_range([vals["points"]])
            members.filtered(
                lambda card: (
                    float_compare(
                        card.points, vals["points"], precision_digits=PRECISION
                    )
                    != 0
                )
            )._mlm_check_points_rights()
        if "points" not in vals:
            res = super().write(vals)
            if vals.get("partner_id"):
                self._mlm_mark_member(self._mlm_member_cards().partner_id)
        else:
            before = {card: card.points for card in members}
            res = super().write(vals)
            self.env["loyalty.mlm.ledger"]._mlm_record_changes(
                {card: card.points - points for card, points in before.items()}
            )
        if entering:
            entering._mlm_enter_programme()
        return res

    # ------------------------------------------------------------
    # Guards: points are money
    # ------------------------------------------------------------
    # On member-programme cards the balance is the sum of the ledger and a
    # liability of the company. Who may change it:
    # * code running as superuser: it elevated on purpose, and a client never
    #   gets a superuser environment over RPC. Our postings (_mlm_post_points:
    #   bonuses, adjustments, donations), the expiry job, the POS
    #   confirmation, Odoo's _add_points_for_coupon and the partner merge all
    #   write the cards with sudo();
    # * a Loyalty Manager: Adjust Points, Odoo's balance wizard (both leave a
    #   reason on the ledger), a correction by hand;
    # * the document flows that change points as the user: a sale order's
    #   confirmation and cancellation announce each card's change to the
    #   ledger (_mlm_register_splits) before Odoo writes it, and reward lines
    #   of confirmed orders run inside mlm_flow(POINTS_FLOW). Both marks live
    #   on the transaction, which a client cannot reach (a context key would
    #   be no proof: RPC sends any context).
    # Everyone else (a salesperson or cashier writing `points` over RPC or
    # through Odoo's balance wizard) is refused.

    @api.model
    def _mlm_points_value(self, value):
        """`value` as a finite float, or a clear error (NaN, Infinity, text)."""
        try:
            points = float(value or 0.0)
        except (TypeError, ValueError):
            points = math.nan
        if not math.isfinite(points):
            raise ValidationError(
                _("%(value)s is not a number of points.", value=value)
            )
        return points

    @api.model
    def _mlm_check_points_range(self, values):
        if any(abs(points) > MAX_POINTS for points in values):
            # Formatted outside _(): Babel evaluates what the call contains.
            limit = f"{MAX_POINTS:,.0f}"
            raise ValidationError(
                _(
                    "A member card holds at most %(max)s points (plus or minus).",
                    max=limit,
                )
            )

    def _mlm_may_change_points(self):
        if not self or self.env.su or mlm_in_flow(self.env, POINTS_FLOW):
            return True
        if self.env.user.has_group(MANAGER_GROUP):
            return True
        announced = self.env.cr.cache.get(SPLITS_KEY, {})
        return all(card.id in announced for card in self)

    def _mlm_check_points_rights(self):
        if not self._mlm_may_change_points():
            raise AccessError(
                _(
                    "Only Loyalty Managers can change the points of a member "
                    "card (Adjust Points on the member), so that every change "
                    "has a reason in the ledger. Cards: %(codes)s",
                    codes=", ".join(self.mapped("code")),
                )
            )

    def _mlm_check_program_change(self, vals, members):
        """Cards leaving or entering the member programme; returns those
        entering (they get an opening entry after the write)."""
        if "program_id" not in vals:
            return self.browse()
        program_id = vals["program_id"] or False
        if members.filtered(lambda card: card.program_id.id != program_id):
            raise UserError(
                _(
                    "A member card stays in the member programme: its balance "
                    "and ledger belong there. Move the points with Adjust "
                    "Points instead."
                )
            )
        member_ids = self.env["loyalty.program"]._mlm_member_programme_ids()
        entering = (self - members) if program_id in member_ids else self.browse()
        if entering and not (self.env.su or self.env.user.has_group(MANAGER_GROUP)):
            # Its points would become member points: a change of balance.
            raise AccessError(
                _("Only Loyalty Managers can move a card into the member programme.")
            )
        return entering

    def _mlm_check_holder_change(self, vals, members):
        if "partner_id" not in vals or mlm_in_flow(self.env, MERGE_FLOW):
            return
        partner_id = vals["partner_id"] or False
        moved = members.filtered(lambda card: card.partner_id.id != partner_id)
        if moved.filtered("partner_id"):
            raise UserError(
                _(
                    "A member card stays with its member: its points are theirs. "
                    "Merge the contacts if they are the same person."
                )
            )
        if moved and not (self.env.su or self.env.user.has_group(MANAGER_GROUP)):
            raise AccessError(
                _("Only Loyalty Managers can give a member card a holder.")
            )

    def _mlm_enter_programme(self):
        """Cards that just joined the member programme: their balance (to the
        ledger's precision, see write) opens their ledger, so balance ==
        ledger."""
        self._mlm_post_opening_balance()
        self._mlm_mark_member(self.partner_id)

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

    @api.model
    def _mlm_lock_partner_cards(self, partner, program_ids):
        """`partner`'s active cards in `program_ids`, locked as _mlm_lock
        does and read (points, programme) in the same query: the register's
        spend checks the balance only once nobody else can change it."""
        if not partner or not program_ids:
            return self.browse()
        self.flush_model(["partner_id", "program_id", "points", "active"])
        rows = self.env.execute_query(
            SQL(
                "SELECT id, program_id, points FROM loyalty_card "
                "WHERE partner_id = %s AND program_id = ANY(%s) AND active "
                "ORDER BY id FOR NO KEY UPDATE",
                partner.id,
                list(program_ids),
            )
        )
        cards = self.browse([row[0] for row in rows])
        for index, fname in enumerate(("program_id", "points"), start=1):
            self.env.cache.insert_missing(
                cards, self._fields[fname], [row[index] for row in rows]
            )
        return cards

    def _mlm_surviving_card(self):
        """The card that holds this card's points now: itself, or the card a
        partner merge moved them to (followed to the end)."""
        if not self:
            return self
        self.ensure_one()
        card, seen = self, set()
        while card.mlm_merged_into_id and card.id not in seen:
            seen.add(card.id)
            card = card.mlm_merged_into_id
        return card

    def _mlm_post_opening_balance(self):
        """Opening entry for member cards whose balance the ledger does not hold."""
        reason = mlm_reason("opening")
        for card in self._mlm_member_cards():
            rounded = float_round(card.points, PRECISION)
            if rounded != card.points:
                # Cards of a programme just chosen as the member programme
                # start at the ledger's precision too (the change is part of
                # the opening). sudo: choosing the programme is the
                # manager's decision, the cards follow.
                card.sudo().with_context(
                    mlm_ledger_source=mlm_source(
                        card._name, card.id, "opening", "opening", reason
                    )
                ).points = rounded
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
                        "reason": reason,
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
        # A card emptied by a merge of contacts: its member's points are on
        # the surviving card now.
        card = self._mlm_surviving_card()
        card._mlm_lock()
        card._mlm_change_points(points, kind, source, reason)

    def _mlm_change_points(self, points, kind, source, reason):
        """Change the native points of the (locked) card `self`: the ledger
        writes the entry from the context's source (the card itself when
        there is no `source`)."""
        context_source = mlm_source(
            source._name if source else self._name,
            source.id if source else self.id,
            kind,
            kind,
            reason,
        )
        self.with_context(mlm_ledger_source=context_source).sudo().points += points

    @api.model
    def _mlm_post_points_batch(self, postings):
        """_mlm_post_points for many cards at once: `postings` is a list of
        (card, points, kind, source, reason). The same native card changes
        (one per posting, each with its own source document), but the cards
        are locked by one query and the ledger entries inserted and allocated
        together (_mlm_deferred_posting): a batch job's cost does not grow
        by a few queries per card."""
        if not postings:
            return
        cards = self.browse([card.id for card, *_rest in postings])
        # Read together (one query), then followed one by one: merged cards
        # are rare.
        cards.mapped("mlm_merged_into_id")
        surviving = [card._mlm_surviving_card() for card, *_rest in postings]
        self.browse(sorted({card.id for card in surviving}))._mlm_lock()
        with self.env["loyalty.mlm.ledger"]._mlm_deferred_posting():
            for card, (_card, points, kind, source, reason) in zip(
                surviving, postings, strict=True
            ):
                card._mlm_change_points(points, kind, source, reason)

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
