import json
import logging
import re
from collections import defaultdict
from contextlib import contextmanager

from babel.numbers import format_decimal
from dateutil.relativedelta import relativedelta

from odoo import _, _lt, api, fields, models
from odoo.exceptions import AccessError, MissingError, UserError
from odoo.osv import expression
from odoo.tools import SQL, create_index, float_is_zero, float_round
from odoo.tools.misc import babel_locale_parse, format_date

_logger = logging.getLogger(__name__)

PRECISION = 2  # points are kept to two decimals, as the cards show them
# Largest balance (and movement) a member card may hold: far above any real
# balance, far below where floats lose the second decimal.
MAX_POINTS = 1e9
# Bonus kinds an order carries (reversed with it, counted for the tiers).
BONUS_KINDS = ("tier_bonus", "campaign_bonus")
SPLITS_KEY = "loyalty_mlm.ledger_splits"
# Entries of card changes made inside _mlm_deferred_posting, posted together
# when it ends (kept on the transaction, as the splits).
DEFERRED_KEY = "loyalty_mlm.ledger_deferred"

# The reasons the add-on writes: stored as a code and its values, rendered in
# the reader's language (the Points Statement: the member's), never frozen in
# the language of whoever posted. A reason typed by a user (adjustments) is
# stored as typed.
REASONS = {
    "earned": _lt("Points earned"),
    "opening": _lt("Balance before the ledger started"),
    "welcome": _lt("Welcome bonus"),
    "tier_bonus": _lt("%(tier)s tier bonus (x%(multiplier)s)"),
    "cancelled_bonuses": _lt("Bonuses of cancelled order %(order)s"),
    "birthday": _lt("Birthday bonus %(year)s"),
    "expired": _lt("Points earned on %(date)s expired"),
    "donation": _lt("Donation to %(charity)s"),
    "referral_cancelled": _lt(
        "Referral bonus of %(name)s: their first order was cancelled"
    ),
    "unattributed": _lt("Unattributed change"),
}
REASON_MARK = "mlm-reason:"


def mlm_reason(code, **values):
    """A reason the ledger stores as `code` and `values` (see REASONS): a
    string, as the ledger source travels in the (hashable) context.

    Values: `tier` (a tier id: its name in the reader's language),
    `multiplier` (a number), `date` (ISO date); others are shown as given."""
    return REASON_MARK + json.dumps([code, values], sort_keys=True, default=str)


def mlm_reason_split(reason):
    """(code, values) of a reason built by mlm_reason, else (False, {})."""
    if reason and reason.startswith(REASON_MARK):
        code, values = json.loads(reason[len(REASON_MARK) :])
        return code, values
    return False, {}


def mlm_source(model, res_id, positive, negative, reason=None):
    """Context value naming the source of the card changes that follow.

    A tuple (hashable, like everything in an Odoo context): source document,
    ledger kind for a positive and for a negative change, and a reason text.
    """
    return (model, res_id or 0, positive, negative, reason or "")


class LoyaltyMlmLedger(models.Model):
    _name = "loyalty.mlm.ledger"
    _description = "Member Point Ledger Entry"
    _order = "date desc, id desc"
    _rec_names_search = ["partner_id", "card_code", "reason"]

    # ------------------------------------------------------------
    # Fields
    # ------------------------------------------------------------

    date = fields.Datetime(required=True, default=fields.Datetime.now, index=True)
    partner_id = fields.Many2one("res.partner", string="Member", index=True)
    # Native code deletes cards (e.g. on sale order cancel): keep the entry and a
    # snapshot of what it was about.
    card_id = fields.Many2one("loyalty.card", ondelete="set null", index=True)
    card_code = fields.Char(string="Card Code")
    program_id = fields.Many2one("loyalty.program", string="Programme")
    # Not indexed on its own: one or a few companies, never selective; every
    # query that names it also names the date, member or card.
    company_id = fields.Many2one("res.company", required=True)
    points = fields.Float(required=True, digits=(16, PRECISION))
    kind = fields.Selection(
        [
            ("opening", "Opening balance"),
            ("earn", "Earned"),
            ("redeem", "Redeemed"),
            ("expire", "Expired"),
            ("reversal", "Reversal"),
            ("adjustment", "Adjustment"),
            ("welcome", "Welcome bonus"),
            ("birthday", "Birthday bonus"),
            ("referral", "Referral bonus"),
            ("tier_bonus", "Tier bonus"),
            ("campaign_bonus", "Campaign bonus"),
            ("donation", "Donation"),
            ("treatment", "Treatment bonus"),
        ],
        required=True,
    )
    res_model = fields.Char(string="Source Model")
    res_id = fields.Many2oneReference(string="Source ID", model_field="res_model")
    source_ref = fields.Reference(
        selection="_selection_source_ref",
        string="Source Document",
        compute="_compute_source_ref",
    )
    user_id = fields.Many2one(
        "res.users", string="Done By", default=lambda self: self.env.user
    )
    reason = fields.Char(
        string="Stored Reason",
        help="The reason in English (codes of the add-on's reasons) or as a "
        "user typed it; shown through Reason, in the reader's language.",
    )
    reason_code = fields.Char(readonly=True)
    reason_values = fields.Json(readonly=True)
    reason_display = fields.Char(
        string="Reason",
        compute="_compute_reason_display",
        help="Why the points moved, in your language.",
    )
    # Lots: every positive entry is a lot that later negative entries consume.
    expiry_date = fields.Date()
    expired_lot_id = fields.Many2one(
        "loyalty.mlm.ledger", string="Expired Lot", readonly=True
    )
    consumed_by_ids = fields.One2many(
        "loyalty.mlm.ledger.allocation", "lot_id", string="Consumed By"
    )
    consumes_ids = fields.One2many(
        "loyalty.mlm.ledger.allocation", "entry_id", string="Consumes"
    )
    remaining = fields.Float(
        compute="_compute_allocation_state",
        store=True,
        digits=(16, PRECISION),
        help="Points of this lot not yet redeemed, expired or taken back.",
    )
    unallocated = fields.Float(
        compute="_compute_allocation_state",
        store=True,
        digits=(16, PRECISION),
        help="Points this entry took that no lot covered yet (negative balance).",
    )

    def init(self):
        # Open lots and open debts of a card (_mlm_open_positions, on every
        # posting): partial indexes keep that lookup as cheap for a member
        # with years of entries as for a new one.
        create_index(
            self.env.cr,
            "loyalty_mlm_ledger_open_lot_index",
            self._table,
            ["card_id", "date"],
            where="remaining > 0",
        )
        create_index(
            self.env.cr,
            "loyalty_mlm_ledger_open_debt_index",
            self._table,
            ["card_id", "date"],
            where="unallocated > 0",
        )
        # The ledger takes an entry per order line and per expired lot, and
        # every lot the expiry job closes is a new row version with an entry
        # in each index whose predicate it meets (not a HOT update: remaining
        # is in the open-lot predicate). So the ledger has no index that no
        # query uses (none on company_id, kind or res_model alone), and
        # these are partial, to leave those rows out (issue 22,
        # bench/README.md "Points expiry"):
        # - expiry dates of open lots only: the expiry job, the expiry
        #   reminders and the points expiring soon all ask for remaining > 0;
        create_index(
            self.env.cr,
            "loyalty_mlm_ledger_open_expiry_index",
            self._table,
            ["expiry_date"],
            where="remaining > 0",
        )
        # - the entries of a source document (order, treatment log, ...):
        #   res_model and res_id together; an expire entry's source is its
        #   lot, which expired_lot_id already gives;
        create_index(
            self.env.cr,
            "loyalty_mlm_ledger_source_index",
            self._table,
            ["res_model", "res_id"],
            where="res_model <> 'loyalty.mlm.ledger'",
        )
        # - the rare kinds (donation and treatment reports, bonus checks),
        #   not the two the ledger is mostly made of.
        create_index(
            self.env.cr,
            "loyalty_mlm_ledger_kind_index",
            self._table,
            ["kind"],
            where="kind NOT IN ('earn', 'expire')",
        )

    # ------------------------------------------------------------
    # Computes
    # ------------------------------------------------------------

    @api.depends("reason", "reason_code", "reason_values")
    @api.depends_context("lang")
    def _compute_reason_display(self):
        for entry in self:
            entry.reason_display = entry._mlm_render_reason()

    def _mlm_render_reason(self, lang=None):
        """This entry's reason in `lang` (default: the environment's)."""
        self.ensure_one()
        template = REASONS.get(self.reason_code or "")
        if not template:
            return self.reason or ""
        env = self.with_context(lang=lang or self.env.lang or "en_US").env
        lang = env.lang or "en_US"
        values = dict(self.reason_values or {})
        if "tier" in values:
            # No exists() query: the poster just read the tier (cached).
            try:
                tier = env["loyalty.mlm.tier"].sudo().browse(values["tier"] or [])
                values["tier"] = tier.name or values.get("tier_name", "")
            except MissingError:
                values["tier"] = values.get("tier_name", "")
        if "multiplier" in values:
            values["multiplier"] = format_decimal(
                float(values["multiplier"]), locale=babel_locale_parse(lang)
            )
        if values.get("date"):
            values["date"] = format_date(env, values["date"], lang_code=lang)
        text = template._translate(lang)
        try:
            return text % values
        except (KeyError, TypeError, ValueError):
            return self.reason or ""

    @api.model
    def _mlm_reason_vals(self, reason):
        """{reason, reason_code, reason_values} to store for `reason` (built by
        mlm_reason, or free text): the code, its values and the English text."""
        code, values = mlm_reason_split(reason)
        if not code:
            return {"reason": reason or False}
        entry = self.new({"reason_code": code, "reason_values": values})
        return {
            "reason": entry._mlm_render_reason("en_US"),
            "reason_code": code,
            "reason_values": values,
        }

    @api.model
    def _mlm_backfill_reason_codes(self):
        """Entries posted before reasons had codes stored them as text in the
        poster's language: give the add-on's reasons their code and values
        back (matched in every installed language), so that they render in
        the reader's. Texts users typed stay as they are. Returns the number
        of entries changed."""
        langs = [code for code, _name in self.env["res.lang"].get_installed()]
        patterns = []
        for code, template in REASONS.items():
            sources = {template._translate(lang) for lang in {"en_US", *langs}}
            if code == "expired":
                # Before codes: "Points earned on %s expired" (ISO date).
                sources.add("Points earned on %(date)s expired")
            for text in sources:
                regex = re.sub(r"%\\\((\w+)\\\)s", r"(?P<\1>.+?)", re.escape(str(text)))
                patterns.append((code, re.compile(f"^{regex}$")))
        rows = self.env.execute_query(
            SQL(
                "SELECT DISTINCT reason FROM loyalty_mlm_ledger "
                "WHERE reason_code IS NULL AND COALESCE(reason, '') != ''"
            )
        )
        changed = 0
        Tier = self.env["loyalty.mlm.tier"].sudo().with_context(active_test=False)
        for (reason,) in rows:
            for code, pattern in patterns:
                match = pattern.match(reason)
                if not match:
                    continue
                values = match.groupdict()
                if "tier" in values:
                    tier = next(
                        (
                            tier
                            for lang in {"en_US", *langs}
                            for tier in Tier.with_context(lang=lang).search([])
                            if tier.name == values["tier"]
                        ),
                        None,
                    )
                    values["tier"] = tier.id if tier else False
                    values["tier_name"] = match.group("tier")
                if "multiplier" in values:
                    try:
                        values["multiplier"] = float(
                            values["multiplier"].replace(",", ".")
                        )
                    except ValueError:
                        continue
                vals = self._mlm_reason_vals(mlm_reason(code, **values))
                changed += len(
                    self.env.execute_query(
                        SQL(
                            """
                            UPDATE loyalty_mlm_ledger
                               SET reason_code = %s, reason_values = %s,
                                   reason = %s
                             WHERE reason = %s AND reason_code IS NULL
                         RETURNING id
                            """,
                            vals["reason_code"],
                            json.dumps(vals["reason_values"]),
                            vals["reason"],
                            reason,
                        )
                    )
                )
                break
        self.invalidate_model(["reason", "reason_code", "reason_values"])
        return changed

    @api.model
    def _selection_source_ref(self):
        return [
            (model.model, model.name)
            for model in self.env["ir.model"].sudo().search([])
        ]

    @api.depends("res_model", "res_id")
    def _compute_source_ref(self):
        for entry in self:
            if entry.res_model and entry.res_id and entry.res_model in self.env:
                entry.source_ref = f"{entry.res_model},{entry.res_id}"
            else:
                entry.source_ref = False

    @api.depends("points", "consumed_by_ids.points", "consumes_ids.points")
    def _compute_allocation_state(self):
        for entry in self:
            if entry.points > 0:
                used = sum(entry.consumed_by_ids.mapped("points"))
                entry.remaining = float_round(entry.points - used, PRECISION)
                entry.unallocated = 0.0
            else:
                covered = sum(entry.consumes_ids.mapped("points"))
                entry.remaining = 0.0
                entry.unallocated = float_round(-entry.points - covered, PRECISION)

    @api.depends("kind", "points", "partner_id")
    def _compute_display_name(self):
        kinds = dict(self._fields["kind"]._description_selection(self.env))
        for entry in self:
            entry.display_name = _(
                "%(kind)s %(points)s (%(member)s)",
                kind=kinds.get(entry.kind, ""),
                points=format(entry.points, "+g"),
                member=entry.partner_id.display_name or entry.card_code or "",
            )

    # ------------------------------------------------------------
    # CRUD: append-only
    # ------------------------------------------------------------

    def write(self, vals):
        if vals:
            raise UserError(
                _(
                    "Point ledger entries cannot be changed. Post an adjustment "
                    "to correct a balance."
                )
            )
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(
            _(
                "Point ledger entries cannot be deleted. Post an adjustment "
                "to correct a balance."
            )
        )

    # ------------------------------------------------------------
    # Posting
    # ------------------------------------------------------------

    @api.model
    def _mlm_register_splits(self, card, parts):
        """Announce how the next points change of `card` divides into entries.

        Native code changes a card once for several documents or movements
        (a batch confirm, earn and redeem on one order); `parts` are dicts with
        at least `points` and `kind` (and optional `res_model`, `res_id`,
        `reason`, `expired_lot_id`). Kept on the transaction, not the context,
        because contexts must hold hashable values.
        """
        splits = self.env.cr.cache.setdefault(SPLITS_KEY, {})
        splits.setdefault(card.id, []).extend(parts)

    @api.model
    def _mlm_clear_splits(self):
        self.env.cr.cache.pop(SPLITS_KEY, None)

    @api.model
    def _mlm_record_changes(self, deltas):
        """Post one entry per movement for the given {card: points delta}."""
        source = self.env.context.get("mlm_ledger_source")
        model, res_id, positive, negative, reason = source or (
            False,
            0,
            "adjustment",
            "adjustment",
            "",
        )
        splits = self.env.cr.cache.get(SPLITS_KEY, {})
        vals_list = []
        for card, delta in deltas.items():
            delta = float_round(delta, PRECISION)
            parts = splits.pop(card.id, [])
            rest = float_round(delta - sum(p["points"] for p in parts), PRECISION)
            if not float_is_zero(rest, precision_digits=PRECISION):
                if not source:
                    _logger.warning(
                        "Points of member card %s changed by %s without a known "
                        "source: posted as an unattributed adjustment.",
                        card.id,
                        rest,
                    )
                parts = [
                    *parts,
                    {
                        "points": rest,
                        "kind": positive if rest > 0 else negative,
                        "reason": reason
                        or ("" if source else mlm_reason("unattributed")),
                    },
                ]
            for part in parts:
                if float_is_zero(part["points"], precision_digits=PRECISION):
                    continue
                vals_list.append(
                    {
                        "res_model": model or False,
                        "res_id": res_id or False,
                        "reason": reason,
                        **part,
                        "card_id": card.id,
                        "partner_id": card.partner_id.id,
                        "card_code": card.code,
                        "program_id": card.program_id.id,
                        "company_id": (card.company_id or self.env.company).id,
                    }
                )
        deferred = self.env.cr.cache.get(DEFERRED_KEY)
        if deferred is not None:
            deferred.extend(vals_list)
            return self.browse()
        return self._mlm_post(vals_list)

    @contextmanager
    def _mlm_deferred_posting(self):
        """The entries of the card changes made meanwhile, posted (and
        allocated) together when the block ends: one insert for a batch of
        cards instead of one per card. Only for code that changes many cards
        and reads no ledger meanwhile: the balances run ahead of the ledger
        until the block ends. A block that raises posts nothing (the caller's
        savepoint undoes the card changes too). Nested blocks post with the
        outermost one."""
        cache = self.env.cr.cache
        if DEFERRED_KEY in cache:
            yield
            return
        deferred = cache[DEFERRED_KEY] = []
        try:
            yield
        finally:
            cache.pop(DEFERRED_KEY, None)
        self._mlm_post(deferred)

    @api.model
    def _mlm_post(self, vals_list):
        """Create entries and allocate them FIFO against the card's lots.

        The only way entries are created: callers change `loyalty.card.points`
        and the card reports here. sudo: POS users and salespeople create
        entries through the normal flows without any right on the ledger.
        """
        if not vals_list:
            return self.browse()
        for vals in vals_list:
            if vals.get("reason") and "reason_code" not in vals:
                vals.update(self._mlm_reason_vals(vals["reason"]))
        # Importing history (and the demo) posts movements at their real date.
        history_date = self.env.context.get("mlm_ledger_date")
        if history_date:
            for vals in vals_list:
                vals.setdefault("date", history_date)
        months = {}
        for vals in vals_list:
            if vals["points"] > 0 and "expiry_date" not in vals:
                company = self.env["res.company"].browse(vals["company_id"])
                months.setdefault(company, company.mlm_points_validity_months)
                if months[company]:
                    start = fields.Datetime.to_datetime(
                        vals.get("date") or fields.Datetime.now()
                    )
                    vals["expiry_date"] = start.date() + relativedelta(
                        months=months[company]
                    )
            vals.setdefault("user_id", self.env.uid)
            # A new entry's allocation state goes with the insert (no
            # recompute and update per entry); the allocations made below
            # recompute the entries they touch.
            vals.setdefault("remaining", max(vals["points"], 0.0))
            vals.setdefault("unallocated", max(-vals["points"], 0.0))
        entries = self.sudo().create(vals_list)
        entries._mlm_allocate()
        return entries

    def _mlm_allocate(self):
        """FIFO: negative entries consume open lots, lots repay open debts.

        Consumption order for a negative entry: lots from the same source
        document (cancelling an order takes back what that order earned), then
        unexpired lots oldest first, then lots past their expiry date that the
        daily expiry has not closed yet. An expire entry consumes its own lot.
        Whatever no lot covers stays as `unallocated` (a negative balance) and
        is repaid by the next lots.
        """
        allocations = []
        for card_id, entries in self._mlm_group_by_card().items():
            open_lots, debts = self._mlm_open_positions(card_id, entries)
            for entry in entries.sorted("id"):
                if entry.points > 0:
                    left = entry.points
                    for debt in debts:
                        if left <= 0:
                            break
                        take = min(left, debt["open"])
                        if take > 0:
                            allocations.append((entry.id, debt["entry"].id, take))
                            debt["open"] -= take
                            left -= take
                    debts = [d for d in debts if d["open"] > 0]
                    open_lots.append({"entry": entry, "open": left})
                elif entry.points < 0:
                    need = -entry.points
                    for lot in self._mlm_consumption_order(entry, open_lots):
                        if need <= 0:
                            break
                        take = min(need, lot["open"])
                        if take > 0:
                            allocations.append((lot["entry"].id, entry.id, take))
                            lot["open"] -= take
                            need -= take
                    if need > 0:
                        debts.append({"entry": entry, "open": need})
        self.env["loyalty.mlm.ledger.allocation"].sudo().create(
            [
                {"lot_id": lot, "entry_id": entry, "points": float_round(p, PRECISION)}
                for lot, entry, p in allocations
                if not float_is_zero(p, precision_digits=PRECISION)
            ]
        )

    def _mlm_group_by_card(self):
        grouped = defaultdict(lambda: self.browse())
        for entry in self.filtered("card_id"):
            grouped[entry.card_id.id] |= entry
        return grouped

    def _mlm_open_positions(self, card_id, new_entries):
        """Open lots and debts of a card before `new_entries`, oldest first.

        One query, and only what the new entries can touch: open lots when
        one of them is negative, debts when one is positive (the usual order
        earns only: its entries never read the card's lots, however many).

        No query at all for entries that only earn on a card that was not
        in debt: a negative entry consumes every open lot before it leaves a
        debt, and a lot repays every debt before it stays open, so a card
        has open debts only while its balance (the sum of its ledger) is
        below zero."""
        wanted = []
        if any(entry.points < 0 for entry in new_entries):
            wanted.append([("points", ">", 0), ("remaining", ">", 0)])
        if any(entry.points > 0 for entry in new_entries) and (
            wanted or self._mlm_may_owe(card_id, new_entries)
        ):
            wanted.append([("points", "<", 0), ("unallocated", ">", 0)])
        if not wanted:
            return [], []
        positions = self.sudo().search_fetch(
            expression.AND(
                [
                    [("card_id", "=", card_id), ("id", "not in", new_entries.ids)],
                    expression.OR(wanted),
                ]
            ),
            [
                "date",
                "points",
                "remaining",
                "unallocated",
                "res_model",
                "res_id",
                "expiry_date",
            ],
            order="date, id",
        )
        return (
            [{"entry": e, "open": e.remaining} for e in positions if e.points > 0],
            [{"entry": e, "open": e.unallocated} for e in positions if e.points < 0],
        )

    def _mlm_may_owe(self, card_id, new_entries):
        """Whether the card may have had open debts before `new_entries`: its
        balance before them was below zero (the card's balance is the sum of
        its ledger; the daily check flags a card where it is not)."""
        card = self.env["loyalty.card"].browse(card_id)
        before = card.points - sum(new_entries.mapped("points"))
        return float_round(before, PRECISION) < 0

    @staticmethod
    def _mlm_consumption_order(entry, open_lots):
        if entry.expired_lot_id:
            return [lot for lot in open_lots if lot["entry"] == entry.expired_lot_id]
        day = entry.date.date()
        same_source = [
            lot
            for lot in open_lots
            if entry.res_model
            and lot["entry"].res_model == entry.res_model
            and lot["entry"].res_id == entry.res_id
        ]
        unexpired = [
            lot
            for lot in open_lots
            if lot not in same_source
            and (not lot["entry"].expiry_date or lot["entry"].expiry_date >= day)
        ]
        expired = [lot for lot in open_lots if lot not in same_source + unexpired]
        return same_source + unexpired + expired

    # ------------------------------------------------------------
    # Reconciliation
    # ------------------------------------------------------------

    @api.model
    def _mlm_reconcile(self, cards=None):
        """Member cards whose points differ from the sum of their ledger.

        One set-based query; returns {card_id: (card points, ledger sum)}.
        """
        self.env["loyalty.card"].flush_model(["points", "program_id"])
        self.flush_model(["card_id", "points"])
        program_ids = list(self.env["loyalty.program"]._mlm_member_programme_ids())
        if not program_ids:
            return {}
        card_filter = SQL("AND c.id = ANY(%s)", cards.ids) if cards else SQL()
        self.env.cr.execute(
            SQL(
                """
                SELECT c.id, c.points, COALESCE(SUM(l.points), 0)
                  FROM loyalty_card c
             LEFT JOIN loyalty_mlm_ledger l ON l.card_id = c.id
                 WHERE c.program_id = ANY(%s) %s
              GROUP BY c.id, c.points
                HAVING ROUND(c.points::numeric, %s)
                       <> ROUND(COALESCE(SUM(l.points), 0)::numeric, %s)
                """,
                program_ids,
                card_filter,
                PRECISION,
                PRECISION,
            )
        )
        return {row[0]: (row[1], row[2]) for row in self.env.cr.fetchall()}

    @api.model
    def action_mlm_check_ledger(self):
        """Managers' button: run the balance check now and say what it found."""
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager"):
            raise UserError(_("Only Loyalty Managers can check the ledger."))
        mismatches = self._cron_check_ledger()
        if mismatches:
            message = _(
                "%s member cards have a balance that differs from their ledger; "
                "they are flagged on the card.",
                len(mismatches),
            )
        else:
            message = _("Every member card's balance equals its ledger.")
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "message": message,
                "type": "warning" if mismatches else "success",
                "sticky": bool(mismatches),
            },
        }

    # ------------------------------------------------------------
    # Crons
    # ------------------------------------------------------------

    @api.model
    def _cron_expire_points(self, batch_size=10000):
        """Expire what is left of each lot past its expiry date, one entry per lot.

        Set-based: per call, the cards of the `batch_size` oldest expired
        lots are locked, then one statement posts an expire entry per
        expired lot of those cards (with its allocation: an expire entry
        consumes its own lot), closes the lots and lowers each card's
        balance by the same total. No ORM write per card: the ledger is the
        record of an expiry, so no chatter message or tracking value is made
        per card; one summary line per call goes to the log. Idempotent: an
        expired lot has nothing left, so a second run finds nothing. Cards
        another transaction holds are skipped and expire on the next run.

        Each call is one consistent unit that costs the same whatever is
        left: the lots come oldest first from the index of open lots' expiry
        dates (closed lots leave it), not from a scan of everything still to
        expire; and the remaining work it reports is counted up to one more
        batch (enough for the scheduler to call again). A run killed midway
        loses only its current call.
        """
        today = fields.Date.context_today(self)
        card_ids = [
            row[0]
            for row in self.env.execute_query(
                SQL(
                    """
                    SELECT id FROM loyalty_card
                     WHERE id IN (
                           SELECT card_id FROM loyalty_mlm_ledger
                            WHERE remaining > 0 AND expiry_date < %(today)s
                              AND card_id IS NOT NULL
                            ORDER BY expiry_date
                            LIMIT %(limit)s)
                     ORDER BY id
                       FOR NO KEY UPDATE SKIP LOCKED
                    """,
                    today=today,
                    limit=batch_size,
                )
            )
        ]
        if not card_ids:
            self.env["ir.cron"]._notify_progress(done=0, remaining=0)
            return
        self.flush_model()
        self.env["loyalty.card"].flush_model(["points"])
        lots, points, cards = self._mlm_expire_lots(card_ids, today)
        _logger.info(
            "Points expiry: %s points of %s lots expired on %s member cards",
            points,
            lots,
            cards,
        )
        remaining = self.env.execute_query(
            SQL(
                """
                SELECT COUNT(*) FROM (
                       SELECT 1 FROM loyalty_mlm_ledger
                        WHERE remaining > 0 AND expiry_date < %(today)s
                          AND card_id IS NOT NULL
                        -- ordered: the front of the open-expiry index, not a
                        -- scan of the table to find the last lots left
                        ORDER BY expiry_date
                        LIMIT %(limit)s) next_batch
                """,
                today=today,
                limit=batch_size,
            )
        )[0][0]
        self.env["ir.cron"]._notify_progress(done=lots, remaining=remaining)

    def _mlm_expire_lots(self, card_ids, today):
        """Expire the open lots past `today` of the (locked) cards: one
        statement; returns (lots, points, cards) expired."""
        now = fields.Datetime.now()
        reason = str(REASONS["expired"]._translate("en_US")).replace(
            "%(date)s", "{date}"
        )
        (lots, points, cards) = self.env.execute_query(
            SQL(
                """
                WITH lots AS (
                    SELECT id, card_id, partner_id, card_code, program_id,
                           company_id, remaining, date
                      FROM loyalty_mlm_ledger
                     WHERE card_id = ANY(%(cards)s)
                       AND remaining > 0 AND expiry_date < %(today)s
                ), expired AS (
                    INSERT INTO loyalty_mlm_ledger (
                        date, partner_id, card_id, card_code, program_id,
                        company_id, points, kind, res_model, res_id, user_id,
                        reason, reason_code, reason_values, expired_lot_id,
                        remaining, unallocated,
                        create_uid, create_date, write_uid, write_date)
                    SELECT %(now)s, partner_id, card_id, card_code, program_id,
                           company_id, -remaining, 'expire', %(model)s, id,
                           %(uid)s, replace(%(reason)s, '{date}', date::date::text),
                           'expired', jsonb_build_object('date', date::date::text),
                           id, 0, 0, %(uid)s, %(now)s, %(uid)s, %(now)s
                      FROM lots
                     ORDER BY card_id, date, id
                    RETURNING id, expired_lot_id, points, card_id
                ), allocated AS (
                    INSERT INTO loyalty_mlm_ledger_allocation (
                        lot_id, entry_id, points)
                    SELECT expired_lot_id, id, -points
                      FROM expired
                ), closed AS (
                    -- the lots by id: a join would hash the whole ledger on
                    -- every call, a cost that grows with the table
                    UPDATE loyalty_mlm_ledger lot
                       SET remaining = 0, write_uid = %(uid)s, write_date = %(now)s
                     WHERE lot.id = ANY(ARRAY(SELECT id FROM lots))
                ), totals AS (
                    SELECT card_id, SUM(points) AS points
                      FROM expired
                     GROUP BY card_id
                ), cards AS (
                    UPDATE loyalty_card card
                       SET points = card.points + totals.points::float8,
                           write_uid = %(uid)s, write_date = %(now)s
                      FROM totals
                     WHERE card.id = totals.card_id
                 RETURNING card.id
                )
                SELECT (SELECT COUNT(*) FROM lots),
                       COALESCE((SELECT SUM(remaining) FROM lots), 0),
                       (SELECT COUNT(*) FROM cards)
                """,
                cards=card_ids,
                today=today,
                now=now,
                model=self._name,
                uid=self.env.uid,
                reason=reason,
            )
        )[0]
        # The statement changed rows the ORM may hold in its cache.
        self.invalidate_model()
        self.env["loyalty.mlm.ledger.allocation"].invalidate_model()
        self.env["loyalty.card"].invalidate_model(["points"])
        return lots, points, cards

    @api.model
    def _cron_check_ledger(self):
        """Log and flag every member card whose balance is not its ledger sum."""
        mismatches = self._mlm_reconcile()
        cards = self.env["loyalty.card"].sudo()
        cards.search([("mlm_ledger_mismatch", "=", True)]).write(
            {"mlm_ledger_mismatch": False}
        )
        if mismatches:
            cards.browse(list(mismatches)).write({"mlm_ledger_mismatch": True})
            for card_id, (points, ledger) in mismatches.items():
                _logger.error(
                    "Member card %s: balance %s but ledger sums to %s.",
                    card_id,
                    points,
                    ledger,
                )
        self.env["ir.cron"]._notify_progress(done=len(mismatches), remaining=0)
        return mismatches

    # ------------------------------------------------------------
    # Points statement (report/loyalty_mlm_statement_report.xml)
    # ------------------------------------------------------------

    @api.model
    def _mlm_statement_entries(self, partner):
        """Ledger lines of the points statement of `partner`, oldest first,
        with a running balance and a printable source name."""
        partner.ensure_one()
        # Read with sudo below: only for loyalty staff who may read the member.
        if not self.env.su:
            if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_user"):
                raise AccessError(_("Only Loyalty Users can read points statements."))
            partner.check_access("read")
        entries = self.sudo().search(
            [
                ("partner_id", "=", partner.id),
                ("program_id", "=", self.env.company.mlm_program_id.id),
            ],
            order="date, id",
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

    # ------------------------------------------------------------
    # Demo
    # ------------------------------------------------------------

    @api.model
    def _mlm_demo_history(self):
        """Demo members with a year of history, through the real sale flows."""
        ref = self.env.ref
        product = ref("loyalty_mlm.product_organic_coffee_demo")
        program = self.env.company.mlm_program_id
        if not program:
            return
        today = fields.Date.context_today(self)
        story = {
            # partner: [(months ago, quantity, redeem?, cancel?)]
            "anna": [(m, 4, m in (9, 5), False) for m in range(15, 0, -1)],
            "bram": [(m, 10, False, False) for m in (14, 12, 11, 10, 9)],
            "chloe": [(1, 2, False, False), (0, 3, False, False)],
            "daan": [(3, 8, False, False), (2, 1, True, False), (1, 0, False, True)],
            # Finn bought monthly last year, once this year: Retention.
            "finn": [(m, 2, False, False) for m in range(23, 13, -1)]
            + [(2, 2, False, False)],
        }
        first_orders = {}
        for name, orders in story.items():
            partner = ref(f"loyalty_mlm.res_partner_{name}_demo")
            earning = self.env["sale.order"]
            for months_ago, qty, redeem, cancel in orders:
                day = today - relativedelta(months=months_ago, days=3)
                when = fields.Datetime.to_datetime(day)
                if cancel:
                    # Daan's first order is cancelled after he spent its
                    # points (a month ago, as the story goes).
                    earning.with_context(mlm_ledger_date=when)._action_cancel()
                    continue
                order = self.env["sale.order"].create(
                    {
                        "partner_id": partner.id,
                        "order_line": [
                            (0, 0, {"product_id": product.id, "product_uom_qty": qty})
                        ],
                    }
                )
                order._update_programs_and_rewards()
                card = self.env["loyalty.card"].search(
                    [("partner_id", "=", partner.id), ("program_id", "=", program.id)]
                )
                if redeem and card.points >= program.reward_ids[:1].required_points:
                    order._apply_program_reward(program.reward_ids[:1], card)
                order.with_context(mlm_ledger_date=when).action_confirm()
                order.date_order = when
                first_orders.setdefault(partner, day)
                earning = earning or order
        # Members since the first order of their story, not since the day
        # the demo was loaded (the cockpit counts members per period).
        for partner, day in first_orders.items():
            partner.mlm_member_since = day
        # Eva joined at the counter twelve days ago but never ordered:
        # Acquisition since then (not since the day the demo was loaded).
        eva = ref("loyalty_mlm.res_partner_eva_demo")
        joined = today - relativedelta(days=12)
        eva._mlm_enroll(self.env.company)
        eva.mlm_member_since = joined
        if not eva.mlm_stage_id:
            self.env["loyalty.mlm.stage"]._by_code()["acquisition"].with_context(
                mlm_ledger_date=fields.Datetime.to_datetime(joined)
            )._mlm_move(eva, "no_order")
        self._cron_expire_points()
        # The nightly job would have expired each lot the day after its
        # expiry date, not all on the day the demo was loaded: date them so
        # (the ledger's graph and the KPI history show expiries per month).
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """
                UPDATE loyalty_mlm_ledger entry
                   SET date = (lot.expiry_date + 1)::timestamp
                  FROM loyalty_mlm_ledger lot
                 WHERE entry.expired_lot_id = lot.id AND entry.kind = 'expire'
                   AND entry.date > (lot.expiry_date + 1)::timestamp
                """
            )
        )
        self.invalidate_model(["date"])
