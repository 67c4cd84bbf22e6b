import calendar
from collections import defaultdict
from datetime import datetime, timedelta

from odoo import api, fields, models
from odoo.tools import SQL, float_round

from .loyalty_mlm_ledger import BONUS_KINDS, PRECISION, mlm_reason


class LoyaltyMlmBonus(models.AbstractModel):
    """The bonuses a member earns on top of his orders' points.

    A service without a table: every bonus credits the member card through
    loyalty.card._mlm_post_points (one balance, each bonus a ledger entry
    with its kind and source). Where each step runs:

    * order bonuses (tier, campaign), tier upgrade, referral: on sale order
      confirmation (SaleOrder._mlm_post_order_bonuses) and when the POS
      confirms an order's points (PosOrder.confirm_coupon_programs; referral
      on payment, PosOrder._process_saved_order); reversed with the order;
    * welcome bonus and referral code: when a contact becomes a member
      (loyalty.card._mlm_enroll, order confirmation), with a nightly catch-up
      (loyalty.mlm.tier._cron_review);
    * the birthday bonus: a nightly job (_cron_birthday_bonus).
    """

    _name = "loyalty.mlm.bonus"
    _description = "Member Bonuses"

    @api.model
    def _mlm_on_member(self, partners, company):
        """Referral code and welcome bonus for the members among `partners`.

        Called when contacts become members (_mlm_enroll, order confirmation)
        and by the nightly review as a catch-up (cards Odoo creates by itself,
        e.g. on a quotation). Idempotent.
        """
        members = partners.filtered("mlm_member_since")
        self.env["loyalty.mlm.referral"]._mlm_ensure_referral_codes(members)
        self._mlm_grant_welcome_bonus(members, company)

    @api.model
    def _mlm_catch_up_due(self, company, alias):
        """SQL condition on the contact row `alias` (res_partner): the
        new-member catch-up (_mlm_on_member) may have work for that member in
        `company` (a referral code or a welcome bonus missing).

        Lets the nightly review hand only those to the ORM (usually none)
        instead of reading every member; _mlm_on_member still decides. The
        caller flushes the contacts' fields."""
        partner = SQL.identifier(alias)
        self.env["loyalty.mlm.ledger"].flush_model(["partner_id", "kind", "company_id"])
        start = company.mlm_welcome_bonus_start
        welcome = SQL("FALSE")
        if company.mlm_welcome_bonus > 0 and start and company.mlm_program_id:
            welcome = SQL(
                """%(partner)s.mlm_member_since >= %(start)s
                   AND NOT EXISTS (
                       SELECT 1 FROM loyalty_mlm_ledger l
                        WHERE l.partner_id = %(partner)s.id AND l.kind = 'welcome'
                          AND l.company_id = %(company)s
                   )""",
                partner=partner,
                start=start,
                company=company.id,
            )
        return SQL(
            """(%(partner)s.mlm_member_since IS NOT NULL
                AND (COALESCE(%(partner)s.mlm_referral_code, '') = ''
                     OR (%(welcome)s)))""",
            partner=partner,
            welcome=welcome,
        )

    @api.model
    def _mlm_grant_welcome_bonus(self, partners, company):
        """Welcome bonus for members of `partners` who joined since the bonus was
        switched on and never had one in `company` (once per member, ever)."""
        amount = company.mlm_welcome_bonus
        start = company.mlm_welcome_bonus_start
        program = company.mlm_program_id
        if amount <= 0 or not start or not program:
            return
        candidates = partners.filtered(
            lambda partner: (
                partner.mlm_member_since and partner.mlm_member_since >= start
            )
        )
        if not candidates:
            return
        ledger = self.env["loyalty.mlm.ledger"].sudo()
        welcomed = {
            partner.id
            for (partner,) in ledger._read_group(
                [
                    ("partner_id", "in", candidates.ids),
                    ("kind", "=", "welcome"),
                    ("company_id", "=", company.id),
                ],
                ["partner_id"],
            )
        }
        cards = (
            self.env["loyalty.card"]
            .sudo()
            .search(
                [
                    ("program_id", "=", program.id),
                    ("partner_id", "in", candidates.ids),
                    ("partner_id", "not in", list(welcomed)),
                ]
            )
        )
        for card in cards:
            card._mlm_post_points(
                amount, "welcome", source=card.partner_id, reason=mlm_reason("welcome")
            )

    @api.model
    def _mlm_order_bonuses(self, order, channel, earned, lines):
        """Post the tier and campaign bonuses of `order` (a confirmed sale
        order or a paid POS order; see _mlm_order_bonus_parts for the
        arguments), each with the order as source, so cancelling or refunding
        the order reverses them (_mlm_reverse_order_bonuses). Returns what was
        posted: {card: [(kind, points)]}.
        """
        posted = defaultdict(list)
        parts = self._mlm_order_bonus_parts(order, channel, earned, lines)
        for card, bonuses in parts.items():
            for kind, points, reason in bonuses:
                card._mlm_post_points(points, kind, source=order, reason=reason)
                posted[card].append((kind, points))
        return posted

    @api.model
    def _mlm_order_bonus_parts(self, order, channel, earned, lines, when=None):
        """Tier and campaign bonuses of `order`, not posted:
        {card: [(kind, points, reason)]}, positive points only.

        `earned`: {member card: points the order earned on it}; `lines`:
        [(product, untaxed amount)] of its product lines. Bonuses are computed
        on the earned points only (never on other bonuses) and add up: a Gold
        member (x1.5) in a double points campaign (x2) gets 50% + 100%.
        The POS posts them in the same card write as the earned points.
        `when`: the moment campaigns are looked up at (default: the order's
        date; a preview passes now, when confirmation will date the order).
        """
        company = order.company_id
        parts = {}
        for card, base in earned.items():
            partner = card.partner_id
            if base <= 0 or not partner:
                continue
            bonuses = []
            # The whole ladder in one read (the tier upgrade reads it next).
            self.env["loyalty.mlm.tier"]._mlm_ladder(company).mapped("multiplier")
            # sudo: cashiers and portal checkouts earn bonuses without any
            # right on tiers.
            tier = partner.sudo().with_company(company).mlm_tier_id
            if tier.multiplier > 1:
                bonuses.append(
                    (
                        "tier_bonus",
                        float_round(base * (tier.multiplier - 1), PRECISION),
                        mlm_reason(
                            "tier_bonus", tier=tier.id, multiplier=tier.multiplier
                        ),
                    )
                )
            campaigns = self.env["loyalty.mlm.campaign"]._mlm_bonuses(
                company, channel, when or order.date_order, partner, lines, base
            )
            bonuses += [
                ("campaign_bonus", points, campaign._mlm_reason())
                for campaign, points in campaigns
            ]
            bonuses = [bonus for bonus in bonuses if bonus[1] > 0]
            if bonuses:
                parts[card] = bonuses
        return parts

    @api.model
    def _mlm_reverse_order_bonuses(self, orders):
        """Take back the tier and campaign bonuses of cancelled orders.

        Runs after the native cancellation took back what the order earned
        and gave back what it spent: what the order still holds on a card is
        its bonuses, posted back as one reversal (never a deletion).
        """
        if not orders:
            return
        ledger = self.env["loyalty.mlm.ledger"].sudo()
        base_domain = [
            ("res_model", "=", orders._name),
            ("res_id", "in", orders.ids),
            ("card_id", "!=", False),
        ]
        # Per surviving card: after a merge, an order's entries sit on the
        # merged-away card and its native reversal on the survivor.
        bonus_keys = {
            (res_id, card._mlm_surviving_card())
            for res_id, card in ledger._read_group(
                [*base_domain, ("kind", "in", BONUS_KINDS)], ["res_id", "card_id"]
            )
        }
        if not bonus_keys:
            return
        held = defaultdict(float)
        for res_id, card, points in ledger._read_group(
            base_domain, ["res_id", "card_id"], ["points:sum"]
        ):
            held[res_id, card._mlm_surviving_card()] += points
        for (res_id, card), points in held.items():
            points = float_round(points, PRECISION)
            if (res_id, card) in bonus_keys and points > 0:
                order = orders.browse(res_id)
                card._mlm_post_points(
                    -points,
                    "reversal",
                    source=order,
                    reason=mlm_reason("cancelled_bonuses", order=order.name),
                )

    @api.model
    def _mlm_birthday_due(self, company, today):
        """Members of `company` whose birthday is `today` (29 February
        birthdays on 28 February in other years) without a birthday bonus
        this calendar year: one query."""
        self.env["res.partner"].flush_model(["mlm_birthdate", "active"])
        self.env["loyalty.card"].flush_model(["partner_id", "program_id", "active"])
        self.env["loyalty.mlm.ledger"].flush_model(
            ["partner_id", "kind", "company_id", "date"]
        )
        leap_day_today = (
            today.month == 2 and today.day == 28 and not calendar.isleap(today.year)
        )
        self.env.cr.execute(
            SQL(
                """
                SELECT DISTINCT p.id
                  FROM res_partner p
                  JOIN loyalty_card c
                    ON c.partner_id = p.id AND c.program_id = %(program)s
                       AND c.active
                 WHERE p.active AND p.mlm_birthdate IS NOT NULL
                   AND (
                        (EXTRACT(MONTH FROM p.mlm_birthdate) = %(month)s
                         AND EXTRACT(DAY FROM p.mlm_birthdate) = %(day)s)
                     OR (%(leap_day_today)s
                         AND EXTRACT(MONTH FROM p.mlm_birthdate) = 2
                         AND EXTRACT(DAY FROM p.mlm_birthdate) = 29)
                   )
                   AND NOT EXISTS (
                        SELECT 1 FROM loyalty_mlm_ledger l
                         WHERE l.partner_id = p.id AND l.kind = 'birthday'
                           AND l.company_id = %(company)s
                           AND l.date >= %(year_start)s AND l.date < %(year_end)s
                   )
              ORDER BY p.id
                """,
                program=company.mlm_program_id.id,
                month=today.month,
                day=today.day,
                leap_day_today=leap_day_today,
                company=company.id,
                year_start=datetime(today.year, 1, 1),
                year_end=datetime(today.year + 1, 1, 1),
            )
        )
        return [row[0] for row in self.env.cr.fetchall()]

    @api.model
    def _mlm_grant_birthday_bonus(self, partners, company, today):
        """Credit the birthday bonus to `partners` and queue the birthday mail."""
        amount = company.mlm_birthday_bonus
        cards = (
            self.env["loyalty.card"]
            .sudo()
            .search(
                [
                    ("program_id", "=", company.mlm_program_id.id),
                    ("partner_id", "in", partners.ids),
                ]
            )
        )
        template = self.env.ref(
            "loyalty_mlm.mail_template_mlm_birthday", raise_if_not_found=False
        )
        for card in cards:
            card._mlm_post_points(
                amount,
                "birthday",
                source=card.partner_id,
                reason=mlm_reason("birthday", year=today.year),
            )
            if template and card.partner_id.email:
                # Queued, sent by the mail queue job (no force_send).
                template.with_company(company).with_context(
                    mlm_bonus_points=amount
                ).send_mail(card.partner_id.id)

    @api.model
    def _cron_birthday_bonus(self, batch_size=1000):
        """Daily: the birthday bonus of the members born on this day.

        At most `batch_size` members per call; ir.cron calls again while
        some remain. Idempotent: a member with a birthday entry this calendar
        year is skipped, so a rerun on the same day credits nobody twice.
        """
        today = fields.Date.context_today(self)
        done = remaining = 0
        companies = (
            self.env["res.company"]
            .sudo()
            .search([("mlm_program_id", "!=", False), ("mlm_birthday_bonus", ">", 0)])
        )
        for company in companies:
            due = self._mlm_birthday_due(company, today)
            todo = due[: max(batch_size - done, 0)]
            self._mlm_grant_birthday_bonus(
                self.env["res.partner"].browse(todo), company, today
            )
            done += len(todo)
            remaining += len(due) - len(todo)
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done

    @api.model
    def _mlm_demo_bonuses(self):
        """Demo: a referral chain (Anna brought Gijs, who brought Hanna), a
        donation to the food bank, and every member's tier."""
        ref = self.env.ref
        company = self.env.company
        if not company.mlm_program_id:
            return
        anna = ref("loyalty_mlm.res_partner_anna_demo")
        gijs = ref("loyalty_mlm.res_partner_gijs_demo")
        hanna = ref("loyalty_mlm.res_partner_hanna_demo")
        tea = ref("loyalty_mlm.product_organic_tea_demo")
        anna._mlm_enroll(company)
        # As the cashier does it: type the code Anna gave Gijs.
        gijs.mlm_referrer_code = anna.mlm_referral_code
        order = self.env["sale.order"].create(
            {
                "partner_id": gijs.id,
                "order_line": [
                    (
                        0,
                        0,
                        {
                            "product_id": tea.id,
                            "product_uom_qty": 6,
                        },
                    )
                ],
            }
        )
        order._update_programs_and_rewards()
        # Dated as the story goes (the referral five weeks ago, the donation
        # last week), not on the day the demo was loaded.
        referred_at = fields.Datetime.now() - timedelta(days=35)
        order.with_context(mlm_ledger_date=referred_at).action_confirm()
        order.date_order = referred_at
        gijs.mlm_member_since = referred_at.date()
        hanna.mlm_referrer_id = gijs
        self.env["loyalty.mlm.donation.wizard"].with_context(
            mlm_ledger_date=fields.Datetime.now() - timedelta(days=6)
        ).create(
            {
                "partner_id": anna.id,
                "charity_id": ref("loyalty_mlm.res_partner_food_bank_demo").id,
                "points": 50,
            }
        ).action_donate()
        self.env["loyalty.mlm.tier"]._cron_review()
        self._cron_birthday_bonus()
