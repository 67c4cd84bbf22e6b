from collections import defaultdict

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL, float_compare, float_round, ormcache, split_every

from .loyalty_mlm_ledger import BONUS_KINDS, PRECISION
from .loyalty_mlm_stage import MOVE_BATCH_SIZE


def reaches(value, threshold):
    """Whether a qualification `value` reaches a tier's `threshold`, to the
    cent: float_compare(value, threshold, 2) >= 0, called only where the
    rounding can decide (three calls per member were half the time of a
    nightly review)."""
    delta = value - threshold
    return delta >= 0.01 or (
        delta > -0.01 and float_compare(value, threshold, precision_digits=2) >= 0
    )


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
            if reaches(value, tier.threshold):
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
        """Nightly decision for the members `partners` of `company` (a batch
        of the review); returns the ids of those the new-member catch-up has
        work for (see _mlm_tier_states).

        Up at once when they reach a higher tier; below the threshold, the
        first review starts the grace period and a review at least `grace
        days` later downgrades them to the tier they reach, unless they
        qualified again meanwhile.

        Set-based: one query for the qualification values, one for the
        current tiers, one statement for every change (_mlm_write_tier_changes);
        nothing of the members is read into the ORM cache, so the memory of
        a batch is its tuples, whatever the population.
        """
        values = self._mlm_tier_values(company, partners.ids, today)
        states, due = self._mlm_tier_states(company, partners.ids)
        grace = company.mlm_tier_grace_days
        # The ladder as plain values: (id, threshold), lowest first.
        rungs = [(tier.id, tier.threshold) for tier in ladder]
        ranks = {tier_id: rank for rank, (tier_id, _threshold) in enumerate(rungs)}
        changes = []
        for partner_id in partners.ids:
            value = values.get(partner_id, 0.0)
            target, target_rank = None, -1
            for rank, (tier_id, threshold) in enumerate(rungs):
                if reaches(value, threshold):
                    target, target_rank = tier_id, rank
            current, below_since = states.get(partner_id, (None, None))
            current_rank = ranks.get(current, -1)
            # (partner, moved, from, to, reason code, metric, below since)
            if current and current_rank < 0:
                # Its tier was archived or belongs to another company.
                if target:
                    changes.append(
                        (partner_id, True, current, target, "start", value, None)
                    )
            elif target_rank > current_rank:
                code = "upgrade" if current else "start"
                changes.append((partner_id, True, current, target, code, value, None))
            elif target_rank == current_rank:
                if below_since:
                    changes.append((partner_id, False, current, current, None, 0, None))
            elif not below_since:
                changes.append((partner_id, False, current, current, None, 0, today))
            elif (today - below_since).days >= grace:
                changes.append(
                    (partner_id, True, current, target, "downgrade", value, None)
                )
        self._mlm_write_tier_changes(company, changes)
        return due

    @api.model
    def _mlm_tier_states(self, company, partner_ids):
        """({partner id: (tier id, below since)} of `partner_ids` in
        `company`, ids of those the new-member catch-up has work for) in one
        query (loyalty.mlm.bonus._mlm_catch_up_due)."""
        Partner = self.env["res.partner"]
        Partner.flush_model(
            [
                "mlm_tier_id",
                "mlm_tier_below_since",
                "mlm_member_since",
                "mlm_referral_code",
            ]
        )
        key = str(company.id)
        self.env.cr.execute(
            SQL(
                """
                SELECT p.id, (p.mlm_tier_id ->> %(key)s)::int,
                       (p.mlm_tier_below_since ->> %(key)s)::date, %(due)s
                  FROM res_partner p
                 WHERE p.id = ANY(%(partners)s)
                """,
                key=key,
                due=self.env["loyalty.mlm.bonus"]._mlm_catch_up_due(company, "p"),
                partners=list(partner_ids),
            )
        )
        states, due = {}, []
        for partner_id, tier_id, below_since, catch_up in self.env.cr.fetchall():
            states[partner_id] = (tier_id, below_since)
            if catch_up:
                due.append(partner_id)
        return states, due

    @api.model
    def _mlm_write_tier_changes(self, company, changes):
        """Write the review's `changes`, a list of (partner id, moved, from
        tier id, to tier id, reason code, metric, below since) in `company`:
        each contact's tier (when `moved`; no tier when the target is None)
        and below-since date (None: cleared), and a history row per move, as
        the ORM would write them (same values, write date and user), with one
        statement per MOVE_BATCH_SIZE contacts.

        The ORM wrote per target tier and reason, with res.partner's write
        preparing the chatter tracking of every tracked field of each contact
        (kept until the commit) and reading its users and children, and
        created the history 100 rows per statement: at 30,000 members, 800
        queries and 200 MiB (issue #22). The tier fields are not tracked:
        the history rows say who moved, when and why. As the ORM does, a
        cleared value drops the company's key of the jsonb column."""
        if not changes:
            return
        Partner = self.env["res.partner"]
        History = self.env["loyalty.mlm.tier.history"]
        fnames = ["mlm_tier_id", "mlm_tier_below_since", "write_uid", "write_date"]
        # Values still pending in the ORM would overwrite ours at the next flush.
        Partner.flush_model(fnames)
        key = str(company.id)
        # The history's default date, the same for the whole batch.
        date = fields.Datetime.now()
        metric = History._fields["metric"]
        # In the order of the contacts' ids (a range scan of the primary key,
        # see loyalty.mlm.stage._mlm_write_moves).
        for batch in split_every(MOVE_BATCH_SIZE, sorted(changes)):
            partner_ids, moved, from_ids, to_ids, codes, metrics, below = zip(
                *batch, strict=True
            )
            self.env.cr.execute(
                SQL(
                    """
                    WITH changes AS (
                        SELECT *
                          FROM unnest(%(partners)s::int[], %(moved)s::bool[],
                                      %(from_ids)s::int[], %(to_ids)s::int[],
                                      %(codes)s::varchar[], %(metrics)s::numeric[],
                                      %(below)s::date[])
                            AS c(partner_id, moved, from_id, to_id, code, metric,
                                 below)
                    ), written AS (
                        UPDATE res_partner p
                           SET mlm_tier_id = CASE
                                   WHEN NOT c.moved THEN p.mlm_tier_id
                                   WHEN c.to_id IS NULL
                                       THEN p.mlm_tier_id - %(key)s
                                   ELSE COALESCE(p.mlm_tier_id, '{}')
                                       || jsonb_build_object(%(key)s, c.to_id)
                               END,
                               mlm_tier_below_since = CASE
                                   WHEN c.below IS NULL
                                       THEN p.mlm_tier_below_since - %(key)s
                                   ELSE COALESCE(p.mlm_tier_below_since, '{}')
                                       || jsonb_build_object(
                                           %(key)s, to_char(c.below, 'YYYY-MM-DD')
                                       )
                               END,
                               write_uid = %(uid)s,
                               write_date = %(now)s
                          FROM changes c
                         WHERE p.id = c.partner_id
                           AND p.id BETWEEN %(first)s AND %(last)s
                    )
                    INSERT INTO loyalty_mlm_tier_history (
                        partner_id, company_id, from_tier_id, to_tier_id, date,
                        reason_code, metric, user_id
                    )
                    SELECT partner_id, %(company)s, from_id, to_id, %(date)s,
                           code, metric, %(uid)s
                      FROM changes
                     WHERE moved
                    """,
                    partners=list(partner_ids),
                    first=partner_ids[0],
                    last=partner_ids[-1],
                    moved=list(moved),
                    from_ids=list(from_ids),
                    to_ids=list(to_ids),
                    codes=list(codes),
                    metrics=[
                        metric.convert_to_column(value, History) for value in metrics
                    ],
                    below=list(below),
                    key=key,
                    company=company.id,
                    date=date,
                    uid=self.env.uid,
                    now=self.env.cr.now(),
                )
            )
            # What the ORM's write and create would have done to the cache.
            partners = Partner.browse(partner_ids)
            partners.invalidate_recordset([*fnames, "mlm_tier_history_ids"])
            partners.modified(fnames)

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
        """Ids of the contacts with a card in `company`'s member programme
        (all at once: the nightly review reads them by batch)."""
        return [
            partner_id
            for batch in self._mlm_programme_member_batches(company, 100000)
            for partner_id in batch
        ]

    @api.model
    def _mlm_programme_member_batches(self, company, batch_size):
        """Ids of the contacts with a card in `company`'s member programme,
        `batch_size` at a time in id order, each batch read when needed (one
        query each, after the previous one's last id): the job never holds
        the ids, let alone the records, of every member."""
        self.env["loyalty.card"].flush_model(["partner_id", "program_id", "active"])
        last = 0
        while True:
            self.env.cr.execute(
                SQL(
                    """
                    SELECT DISTINCT partner_id
                      FROM loyalty_card
                     WHERE program_id = %(program)s AND active
                       AND partner_id > %(last)s
                     ORDER BY partner_id
                     LIMIT %(limit)s
                    """,
                    program=company.mlm_program_id.id,
                    last=last,
                    limit=batch_size,
                )
            )
            ids = [row[0] for row in self.env.cr.fetchall()]
            if ids:
                yield ids
            if len(ids) < batch_size:
                return
            last = ids[-1]

    @api.model
    def _cron_review(self, batch_size=5000):
        """Nightly: tiers of every member (downgrades after the grace period),
        plus the new-member catch-up (referral codes, welcome bonuses).

        Batches of `batch_size` members, a fixed number of queries each
        (_mlm_tier_review); idempotent, so an interrupted run simply runs
        again. Only the members the catch-up has work for go through the
        ORM (usually none).
        """
        today = fields.Date.context_today(self)
        done = 0
        companies = (
            self.env["res.company"].sudo().search([("mlm_program_id", "!=", False)])
        )
        Bonus = self.env["loyalty.mlm.bonus"]
        for company in companies:
            ladder = self._mlm_ladder(company)
            for ids in self._mlm_programme_member_batches(company, batch_size):
                batch = self.env["res.partner"].browse(ids)
                if ladder:
                    due = self._mlm_tier_review(batch, company, ladder, today)
                else:
                    due = self._mlm_tier_states(company, batch.ids)[1]
                if due:
                    Bonus._mlm_on_member(batch.browse(due), company)
                    # What the catch-up read and wrote stays in the ORM
                    # cache until the transaction ends: written out and let
                    # go, so the job's memory is bounded by the batch.
                    self.env.flush_all()
                    self.env.invalidate_all()
                done += len(batch)
        self.env["ir.cron"]._notify_progress(done=done, remaining=0)
        return done
