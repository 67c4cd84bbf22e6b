import secrets
from collections import defaultdict

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL, float_round

from .loyalty_mlm_ledger import PRECISION, mlm_reason

# Referral code letters (no 0/O, 1/I/L look-alikes).
REFERRAL_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class LoyaltyMlmReferral(models.AbstractModel):
    """Referrals: the member's code, the referral bonuses and their reversal.

    A service without a table: a referral is the referred contact's own
    fields (res.partner: mlm_referrer_id, mlm_referral_date, the member's
    mlm_referral_code), shown and checked on the contact; this owns what
    happens to them. Both sides get their bonus on the referred contact's
    first qualifying order (a confirmed sale order or a paid POS order),
    sourced to the referred contact, and lose it if that order is cancelled.
    """

    _name = "loyalty.mlm.referral"
    _description = "Member Referrals"

    # ------------------------------------------------------------
    # The referrer of a contact (checked on res.partner)
    # ------------------------------------------------------------

    @api.model
    def _mlm_referrer_of_code(self, code):
        """The member whose referral code is `code` (none for no code);
        a code nobody has is refused."""
        referrer = self.env["res.partner"]
        if code:
            # sudo: whoever registers a customer may look a code up.
            referrer = referrer.sudo().search(
                [("mlm_referral_code", "=", code)], limit=1
            )
            if not referrer:
                raise ValidationError(
                    _("No member has the referral code %(code)s.", code=code)
                )
        return referrer

    @api.model
    def _mlm_refused_code(self, partner):
        """Why the referral code typed on `partner` (a form's record) would be
        refused, or None (see res.partner._onchange_mlm_referrer_code)."""
        code = (partner.mlm_referrer_code or "").strip().upper()
        if not code or code == (partner.mlm_referrer_id.mlm_referral_code or ""):
            return None
        # sudo: whoever registers a customer may look a code up.
        referrer = (
            self.env["res.partner"]
            .sudo()
            .search([("mlm_referral_code", "=", code)], limit=1)
        )
        if not referrer:
            return _("No member has the referral code %(code)s.", code=code)
        if partner._origin and partner._origin in self._mlm_referrer_chain(referrer):
            return _(
                "%(name)s cannot be referred by %(referrer)s: nobody can refer "
                "themselves, directly or through the chain of referrers.",
                name=partner._origin.display_name,
                referrer=referrer.display_name,
            )
        return None

    @api.model
    def _mlm_referrer_chain(self, partner):
        """`partner` and its referrers, up the chain (stops on a loop)."""
        partner.ensure_one()
        chain = partner.browse()
        while partner and partner not in chain:
            chain |= partner
            partner = partner.mlm_referrer_id
        return chain

    @api.model
    def _mlm_check_referrers(self, partners):
        """The constraint on the referrer of `partners` (res.partner): only a
        member refers, nobody himself or his company, directly or through a
        chain; a rewarded referral's referrer no longer changes."""
        for partner in partners:
            referrer = partner.mlm_referrer_id
            if partner.mlm_referral_date:
                raise ValidationError(
                    _(
                        "The referral of %(name)s was rewarded on %(date)s: the "
                        "referrer can no longer change.",
                        name=partner.display_name,
                        date=partner.mlm_referral_date,
                    )
                )
            if not referrer:
                continue
            if referrer.commercial_partner_id == partner.commercial_partner_id:
                raise ValidationError(
                    _(
                        "%(name)s cannot be referred by %(referrer)s: nobody can "
                        "refer themselves or their own company.",
                        name=partner.display_name,
                        referrer=referrer.display_name,
                    )
                )
            if not referrer.mlm_member_since:
                raise ValidationError(
                    _(
                        "%(referrer)s is not a member: only members can refer new "
                        "customers.",
                        referrer=referrer.display_name,
                    )
                )
        if partners._has_cycle("mlm_referrer_id"):
            raise ValidationError(
                _(
                    "This referral would make a loop: %(name)s would end up "
                    "referring themselves through the chain of referrers.",
                    name=partners[:1].display_name,
                )
            )

    @api.model
    def _mlm_ensure_referral_codes(self, partners):
        """A referral code for each of `partners` without one."""
        missing = partners.filtered(lambda partner: not partner.mlm_referral_code)
        if not missing:
            return
        codes = self._mlm_new_referral_codes(len(missing))
        for partner, code in zip(missing, codes, strict=True):
            partner.sudo().mlm_referral_code = code

    @api.model
    def _mlm_new_referral_codes(self, count):
        """`count` short codes no contact has: 8 characters, no look-alikes."""
        codes = set()
        while len(codes) < count:
            wanted = count - len(codes)
            batch = {
                "".join(secrets.choice(REFERRAL_ALPHABET) for _i in range(8))
                for _j in range(wanted)
            }
            taken = (
                self.env["res.partner"]
                .sudo()
                .with_context(active_test=False)
                .search_fetch(
                    [("mlm_referral_code", "in", list(batch))], ["mlm_referral_code"]
                )
            )
            codes |= batch - set(taken.mapped("mlm_referral_code"))
        return sorted(codes)[:count]

    @api.model
    def _mlm_successful_referrals(self, partners):
        """{partner id: referred contacts of `partners` whose referral was
        rewarded}."""
        groups = (
            partners.sudo()
            .with_context(active_test=False)
            ._read_group(
                [
                    ("mlm_referrer_id", "in", partners.ids),
                    ("mlm_referral_date", "!=", False),
                ],
                ["mlm_referrer_id"],
                ["__count"],
            )
        )
        return {partner.id: count for partner, count in groups}

    @api.model
    def _mlm_referral_rewards(self, orders):
        """Referral bonuses for the referred customers of `orders` (confirmed
        sale or paid POS orders of one model) for whom one of them is the
        first qualifying order: both the referrer and the new customer get
        their bonus, once (the referred contact's row is locked, then checked
        again)."""
        for order in orders.sorted("date_order"):
            referred = order.partner_id
            if not referred.mlm_referrer_id or referred.mlm_referral_date:
                continue
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM res_partner WHERE id = %s FOR NO KEY UPDATE",
                    referred.id,
                )
            )
            referred.invalidate_recordset(["mlm_referral_date", "mlm_referrer_id"])
            if referred.mlm_referral_date or not referred.mlm_referrer_id:
                continue
            if self._mlm_has_other_qualifying_order(referred, orders):
                continue
            self._mlm_reward_referral(referred, order)

    @api.model
    def _mlm_reverse_referral_rewards(self, orders):
        """Take back the referral bonuses of cancelled `orders` (sale orders).

        When a cancelled order was the referred customer's only qualifying
        order, the bonuses it earned both sides are reversed (never deleted)
        and the referral waits for the customer's next qualifying order: it
        still pays once, net. The bonuses are sourced to the referred
        contact, so what a card still holds from them is the sum of its
        referral entries and their reversals."""
        ledger = self.env["loyalty.mlm.ledger"].sudo()
        for referred in orders.partner_id.filtered("mlm_referral_date"):
            if self._mlm_has_other_qualifying_order(referred, orders):
                continue
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM res_partner WHERE id = %s FOR NO KEY UPDATE",
                    referred.id,
                )
            )
            held = ledger._read_group(
                [
                    ("res_model", "=", referred._name),
                    ("res_id", "=", referred.id),
                    ("kind", "in", ("referral", "reversal")),
                    ("card_id", "!=", False),
                ],
                ["card_id"],
                ["points:sum"],
            )
            per_card = defaultdict(float)
            for card, points in held:
                per_card[card._mlm_surviving_card()] += points
            for card, points in per_card.items():
                points = float_round(points, PRECISION)
                if points > 0:
                    card._mlm_post_points(
                        -points,
                        "reversal",
                        source=referred,
                        reason=mlm_reason(
                            "referral_cancelled", name=referred.display_name
                        ),
                    )
            referred.sudo().mlm_referral_date = False

    @api.model
    def _mlm_has_other_qualifying_order(self, partner, orders):
        """Whether `partner` has a confirmed sale or paid POS order besides
        `orders` (sale or POS orders)."""
        partner.ensure_one()
        sale_ids = orders.ids if orders._name == "sale.order" else []
        pos_ids = orders.ids if orders._name == "pos.order" else []
        return bool(
            self.env["sale.order"]
            .sudo()
            .search_count(
                [
                    ("partner_id", "=", partner.id),
                    ("state", "=", "sale"),
                    ("id", "not in", sale_ids),
                ],
                limit=1,
            )
            or self.env["pos.order"]
            .sudo()
            .search_count(
                [
                    ("partner_id", "=", partner.id),
                    ("state", "in", ("paid", "done", "invoiced")),
                    ("amount_total", ">", 0),
                    ("id", "not in", pos_ids),
                ],
                limit=1,
            )
        )

    @api.model
    def _mlm_reward_referral(self, referred, order):
        """Credit the referral bonuses of the referred contact `referred`."""
        referred.ensure_one()
        company = order.company_id
        referrer = referred.mlm_referrer_id
        if not company.mlm_program_id:
            return
        # Both become members if they were not (the referrer always is).
        self.env["loyalty.card"].sudo()._mlm_enroll(
            (referrer | referred).sudo(), company
        )
        cards = (
            self.env["loyalty.card"]
            .sudo()
            .search(
                [
                    ("program_id", "=", company.mlm_program_id.id),
                    ("partner_id", "in", (referrer | referred).ids),
                ]
            )
        )
        card_of = {card.partner_id: card for card in cards}
        for partner, amount, reason in (
            (
                referrer,
                company.mlm_referral_bonus,
                _("Referral of %(name)s", name=referred.display_name),
            ),
            (
                referred,
                company.mlm_referral_bonus_referred,
                _("Referred by %(name)s", name=referrer.display_name),
            ),
        ):
            if amount > 0 and partner in card_of:
                card_of[partner]._mlm_post_points(
                    amount, "referral", source=referred, reason=reason
                )
        referred.sudo().mlm_referral_date = fields.Date.context_today(self)
