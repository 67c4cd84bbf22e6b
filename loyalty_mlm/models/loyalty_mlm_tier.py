from collections import defaultdict

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL, float_compare, float_round, ormcache, split_every

from .loyalty_mlm_ledger import BONUS_KINDS, PRECISION


class LoyaltyMlmTier(models.Model):
    """A rung of the member tier ladder (Bronze, Silver, Gold...).

    A member reaches the highest tier whose threshold their qualification
    value over the last 12 months reaches (points earned or net spend, a
    setting); each earning order then gets a tier bonus of (multiplier - 1)
    times the points it earned. See res.partner "Bonuses, tiers, referral".
    """

    _name = "loyalty.mlm.tier"
    _description = "Member Tier"
    _order = "threshold, sequence, id"

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    color = fields.Integer()
    company_id = fields.Many2one(
        "res.company",
        string="Company",
        index=True,
        help="Leave empty to use the tier in every company.",
    )
    threshold = fields.Float(
        string="Qualification Threshold",
        digits=(16, 2),
        help="Points earned (or net spend, see Settings) over the last 12 months "
        "a member needs to reach this tier.",
    )
    multiplier = fields.Float(
        string="Earn Multiplier",
        default=1.0,
        digits=(16, 2),
        help="1.5: each order earns a tier bonus of 50% of the points it earned.",
    )
    benefits = fields.Text(translate=True, help="What members of this tier get.")
    partner_count = fields.Integer(string="Members", compute="_compute_partner_count")

    def _compute_partner_count(self):
        counts = dict(
            self.env["res.partner"]
            .sudo()
            ._read_group(
                [("mlm_tier_id", "in", self.ids)], ["mlm_tier_id"], ["__count"]
            )
        )
        for tier in self:
            tier.partner_count = counts.get(tier, 0)

    @api.constrains("threshold", "multiplier", "company_id", "active")
    def _check_threshold_and_multiplier(self):
        for tier in self:
            if tier.threshold < 0:
                raise ValidationError(_("A tier threshold cannot be negative."))
            if tier.multiplier < 1:
                raise ValidationError(
                    _("A tier multiplier is at least 1 (1: no tier bonus).")
                )
        for tier in self.filtered("active"):
            same = self.search_count(
                [
                    ("id", "!=", tier.id),
                    ("company_id", "in", [tier.company_id.id, False]),
                    ("threshold", "=", tier.threshold),
                ]
            )
            if same:
                raise ValidationError(
                    _(
                        "Another tier already starts at %(threshold)s: each tier "
                        "needs its own threshold.",
                        threshold=tier.threshold,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        if any(not vals.get("company_id") for vals in vals_list):
            self.env["res.company"]._mlm_check_shared_config(_("Shared tiers"))
        self.env.registry.clear_cache()  # _mlm_ladder_ids
        return super().create(vals_list)

    def write(self, vals):
        self._mlm_check_shared(vals)
        if {"threshold", "sequence", "company_id", "active"} & set(vals):
            self.env.registry.clear_cache()  # _mlm_ladder_ids
        return super().write(vals)

    def unlink(self):
        self._mlm_check_shared({})
        self.env.registry.clear_cache()  # _mlm_ladder_ids
        return super().unlink()

    def _mlm_check_shared(self, vals):
        """A tier without a company is every company's (see res.company)."""
        if any(not record.company_id for record in self) or (
            "company_id" in vals and not vals["company_id"]
        ):
            self.env["res.company"]._mlm_check_shared_config(_("Shared tiers"))

    def action_mlm_open_members(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "loyalty_mlm.res_partner_action_member"
        )
        action["domain"] = [("mlm_tier_id", "=", self.id)]
        action["context"] = {}
        return action

    # ------------------------------------------------------------
    # Business methods
    # ------------------------------------------------------------

    @api.model
    def _mlm_ladder(self, company):
        """The active tiers of `company`, lowest threshold first."""
        return self.sudo().browse(self._mlm_ladder_ids(company.id))

    @api.model
    @ormcache("company_id")
    def _mlm_ladder_ids(self, company_id):
        # Cached: every earning order asks (see create/write/unlink).
        return tuple(
            self.sudo()
            .search(
                [("company_id", "in", [company_id, False])],
                order="threshold, sequence, id",
            )
            .ids
        )

    def _mlm_qualifying(self, value):
        """The highest tier of the ladder `self` that `value` reaches."""
        reached = self.browse()
        for tier in self:
            if float_compare(value, tier.threshold, precision_digits=2) >= 0:
                reached = tier
        return reached

    def _mlm_rank(self, tier):
        """Position of `tier` in the ladder `self`; -1 when not on it."""
        return self.ids.index(tier.id) if tier.id in self.ids else -1

    # ------------------------------------------------------------
    # Tier engine
    # ------------------------------------------------------------
    # Tiers are per company (res.partner.mlm_tier_id is company-dependent),
    # like the member programme. Up at once on the order that qualifies
    # (_mlm_tier_upgrade), down at the nightly review after the grace period
    # (_cron_review).

    @api.model
    def _mlm_tier_values(self, company, partner_ids, today=None):
        """{partner id: tier qualification value over the last 12 months}.

        Points: earn, tier and campaign bonus entries of the member programme,
        minus what cancellations and refunds took back (negative reversals
        sourced to an order). Spend: untaxed amount of confirmed sale orders
        and paid POS orders (refunds subtract), in company currency. One
        query either way.
        """
        today = today or fields.Date.context_today(self)
        since = fields.Datetime.to_datetime(today - relativedelta(years=1))
        if company.mlm_tier_metric == "spend":
            return self._mlm_tier_spend(company, partner_ids, since)
        groups = (
            self.env["loyalty.mlm.ledger"]
            .sudo()
            ._read_group(
                [
                    ("partner_id", "in", list(partner_ids)),
                    ("program_id", "=", company.mlm_program_id.id),
                    ("date", ">=", since),
                    "|",
                    ("kind", "in", ("earn", *BONUS_KINDS)),
                    "&",
                    "&",
                    ("kind", "=", "reversal"),
                    ("points", "<", 0),
                    ("res_model", "in", ("sale.order", "pos.order")),
                ],
                ["partner_id"],
                ["points:sum"],
            )
        )
        return {partner.id: points for partner, points in groups}

    @api.model
    def _mlm_tier_spend(self, company, partner_ids, since):
        """{partner id: net spend since `since`} (see _mlm_tier_values)."""
        self.env["loyalty.mlm.stage"]._mlm_flush_order_fields()
        self.env["sale.order"].flush_model(["amount_untaxed", "currency_rate"])
        self.env["pos.order"].flush_model(["amount_tax", "currency_rate"])
        self.env.cr.execute(
            SQL(
                """
                SELECT partner_id, SUM(amount) FROM (
                    SELECT so.partner_id,
                           so.amount_untaxed
                               / COALESCE(NULLIF(so.currency_rate, 0), 1) AS amount
                      FROM sale_order so
                     WHERE so.state = 'sale' AND so.company_id = %(company)s
                       AND so.date_order >= %(since)s
                       AND so.partner_id = ANY(%(partners)s)
                     UNION ALL
                    SELECT po.partner_id,
                           (po.amount_total - po.amount_tax)
                               / COALESCE(NULLIF(po.currency_rate, 0), 1)
                      FROM pos_order po
                     WHERE po.state IN ('paid', 'done', 'invoiced')
                       AND po.company_id = %(company)s
                       AND po.date_order >= %(since)s
                       AND po.partner_id = ANY(%(partners)s)
                ) AS orders
              GROUP BY partner_id
                """,
                company=company.id,
                since=since,
                partners=list(partner_ids),
            )
        )
        return {
            row[0]: float_round(row[1], PRECISION) for row in self.env.cr.fetchall()
        }

    @api.model
    def _mlm_tier_upgrade(self, partners, company):
        """Move the members of `partners` up at once when they reach a higher
        tier (on the order that makes them qualify); a member back above
        their tier's threshold is no longer counted as below it."""
        ladder = self._mlm_ladder(company)
        if not ladder or not partners:
            return
        # Members on the top rung cannot move up: no need to add up their
        # year (the order sync's hot path), unless they were found below.
        top = ladder[-1]
        climbing = partners.with_company(company).filtered(
            lambda partner: partner.mlm_tier_id != top or partner.mlm_tier_below_since
        )
        if not climbing:
            return
        values = self._mlm_tier_values(company, climbing.ids)
        moves = defaultdict(list)
        back_above = partners.browse()
        for partner in climbing:
            value = values.get(partner.id, 0.0)
            target = ladder._mlm_qualifying(value)
            current_rank = ladder._mlm_rank(partner.mlm_tier_id)
            target_rank = ladder._mlm_rank(target)
            if target and target_rank > current_rank:
                code = "upgrade" if partner.mlm_tier_id else "start"
                moves[target, code].append(partner.id)
            elif partner.mlm_tier_below_since and target_rank >= current_rank:
                back_above |= partner
        back_above.sudo().write({"mlm_tier_below_since": False})
        for (tier, code), partner_ids in moves.items():
            self._mlm_tier_move(
                partners.browse(partner_ids), company, tier, code, values
            )

    @api.model
    def _mlm_tier_review(self, partners, company, ladder, today):
        """Nightly decision for the members `partners` of `company`.

        Up at once when they reach a higher tier; below the threshold, the
        first review starts the grace period and a review at least `grace
        days` later downgrades them to the tier they reach, unless they
        qualified again meanwhile.
        """
        values = self._mlm_tier_values(company, partners.ids, today)
        grace = company.mlm_tier_grace_days
        moves = defaultdict(list)
        start_below = partners.browse()
        back_above = partners.browse()
        for partner in partners.with_company(company):
            target = ladder._mlm_qualifying(values.get(partner.id, 0.0))
            current = partner.mlm_tier_id
            current_rank = ladder._mlm_rank(current)
            target_rank = ladder._mlm_rank(target)
            if current and current_rank < 0:
                # Its tier was archived or belongs to another company.
                if target:
                    moves[target, "start"].append(partner.id)
            elif target_rank > current_rank:
                moves[target, "upgrade" if current else "start"].append(partner.id)
            elif target_rank == current_rank:
                if partner.mlm_tier_below_since:
                    back_above |= partner
            elif not partner.mlm_tier_below_since:
                start_below |= partner
            elif (today - partner.mlm_tier_below_since).days >= grace:
                moves[target, "downgrade"].append(partner.id)
        writer = partners.with_company(company).sudo()
        writer.browse(start_below.ids).write({"mlm_tier_below_since": today})
        writer.browse(back_above.ids).write({"mlm_tier_below_since": False})
        for (tier, code), partner_ids in moves.items():
            self._mlm_tier_move(
                partners.browse(partner_ids), company, tier, code, values
            )

    @api.model
    def _mlm_tier_move(self, partners, company, tier, reason_code, values):
        """Put `partners` in `tier` (may be empty) in `company`: one write,
        one history row each."""
        if not partners:
            return
        partners = partners.with_company(company).sudo()
        history = [
            {
                "partner_id": partner.id,
                "company_id": company.id,
                "from_tier_id": partner.mlm_tier_id.id,
                "to_tier_id": tier.id,
                "reason_code": reason_code,
                "metric": values.get(partner.id, 0.0),
                "user_id": self.env.uid,
            }
            for partner in partners
        ]
        partners.write({"mlm_tier_id": tier.id, "mlm_tier_below_since": False})
        self.env["loyalty.mlm.tier.history"].sudo().create(history)

    @api.model
    def _mlm_programme_member_ids(self, company):
        """Ids of the contacts with a card in `company`'s member programme."""
        groups = (
            self.env["loyalty.card"]
            .sudo()
            ._read_group(
                [
                    ("program_id", "=", company.mlm_program_id.id),
                    ("partner_id", "!=", False),
                ],
                ["partner_id"],
            )
        )
        return sorted(partner.id for (partner,) in groups)

    @api.model
    def _cron_review(self, batch_size=5000):
        """Nightly: tiers of every member (downgrades after the grace period),
        plus the new-member catch-up (referral codes, welcome bonuses).

        Batches of `batch_size` members, one qualification query each;
        idempotent, so an interrupted run simply runs again.
        """
        today = fields.Date.context_today(self)
        done = 0
        companies = (
            self.env["res.company"].sudo().search([("mlm_program_id", "!=", False)])
        )
        for company in companies:
            ladder = self._mlm_ladder(company)
            for batch in split_every(
                batch_size,
                self._mlm_programme_member_ids(company),
                self.env["res.partner"].browse,
            ):
                if done:
                    # What a batch read and wrote stays in the ORM cache
                    # until the transaction ends: written out and let go
                    # before the next, so the job's memory is bounded by the
                    # batch, not the members.
                    self.env.flush_all()
                    self.env.invalidate_all()
                if ladder:
                    self._mlm_tier_review(batch, company, ladder, today)
                self.env["loyalty.mlm.bonus"]._mlm_on_member(batch, company)
                done += len(batch)
        self.env["ir.cron"]._notify_progress(done=done, remaining=0)
        return done
