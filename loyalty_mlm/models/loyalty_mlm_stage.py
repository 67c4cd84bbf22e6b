import time
from collections import defaultdict
from datetime import timedelta

import pytz
from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, ormcache, split_every

from ..tools.lifecycle import STAGES, StageInput, StageParams, decide_stage
from ..tools.runtime import gc_paused

# Stage moves per statement (_mlm_write_moves): bounds the statement and its
# parameters, however many contacts move.
MOVE_BATCH_SIZE = 5000
# Customers the nightly stage step reads, decides and moves at a time.
STAGE_READ_CHUNK = 20000
# Seconds of stage moves per call of the stage job (as the score job's).
STAGE_TIME_BUDGET = 60.0


class LoyaltyMlmStage(models.Model):
    """The six stages of the Member Lifecycle Management model.

    The `code` is what the rules and the treatments use; admins may rename,
    describe, recolour and reorder a stage, never delete one of the six.
    """

    _name = "loyalty.mlm.stage"
    _description = "Member Lifecycle Stage"
    _order = "sequence, id"

    name = fields.Char(required=True, translate=True)
    code = fields.Selection(
        [
            ("acquisition", "Acquisition"),
            ("onboarding", "Onboarding"),
            ("growth", "Growth"),
            ("ambassadorship", "Ambassadorship"),
            ("retention", "Retention"),
            ("winback", "Winback"),
        ],
        required=True,
        readonly=True,
    )
    description = fields.Text(translate=True, help="When a member is in this stage.")
    sequence = fields.Integer(default=10)
    fold = fields.Boolean(string="Folded in Kanban")
    color = fields.Integer()
    partner_count = fields.Integer(compute="_compute_partner_count", string="Members")

    _sql_constraints = [
        ("code_unique", "UNIQUE(code)", "Each lifecycle stage exists once."),
    ]

    def _compute_partner_count(self):
        counts = dict(
            self.env["res.partner"]._read_group(
                [("mlm_stage_id", "in", self.ids)], ["mlm_stage_id"], ["__count"]
            )
        )
        for stage in self:
            stage.partner_count = counts.get(stage, 0)

    @api.model_create_multi
    def create(self, vals_list):
        # The stages are every company's (see res.company).
        self.env["res.company"]._mlm_check_shared_config(_("Lifecycle stages"))
        self.env.registry.clear_cache()  # _mlm_ids_by_code
        return super().create(vals_list)

    def write(self, vals):
        self.env["res.company"]._mlm_check_shared_config(_("Lifecycle stages"))
        if "code" in vals:
            self.env.registry.clear_cache()  # _mlm_ids_by_code
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_lifecycle_stage(self):
        if any(stage.code in STAGES for stage in self):
            raise UserError(
                _(
                    "The six lifecycle stages cannot be deleted: rename, describe "
                    "or reorder them instead."
                )
            )

    @api.model
    def _by_code(self):
        """{code: stage} of the six stages (one query)."""
        return {stage.code: stage for stage in self.sudo().search([])}

    @api.model
    @ormcache()
    def _mlm_ids_by_code(self):
        """{code: stage id}, cached: every paid order asks (the stage codes
        never change, see `code`)."""
        return {
            stage.code: stage.id for stage in self.sudo().search_fetch([], ["code"])
        }

    # ------------------------------------------------------------
    # Lifecycle engine
    # ------------------------------------------------------------
    # The rules are pure functions (tools/lifecycle.py:decide_stage); this
    # reads their inputs in SQL, applies them and moves the contacts. The
    # nightly score job calls _mlm_refresh_all_stages once the scores are
    # fresh; an order calls _mlm_stage_event.

    def _mlm_set_manually(self, partners, reason, locked_until=None):
        """A Loyalty Manager's choice of the stage `self` for `partners`, logged
        with the reason; locked if asked."""
        if not (
            self.env.su
            or self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager")
        ):
            raise UserError(_("Only Loyalty Managers can set a stage by hand."))
        # The stage and its lock are the current company's (company-dependent).
        partners = partners.with_company(self.env.company)
        moving = partners.filtered(lambda partner: partner.mlm_stage_id != self)
        partners.sudo().write({"mlm_stage_locked_until": locked_until or False})
        self._mlm_move(moving, "manual", reason=reason, automatic=False, tracking=True)

    def _mlm_move(
        self, partners, reason_code, reason="", automatic=True, tracking=False
    ):
        """Put `partners` in the stage `self` of the current company
        (`self.env.company`: the stage fields are company-dependent), with one
        history row each.

        Automatic moves skip chatter tracking and are written in SQL
        (_mlm_write_moves): the history rows already say who moved, when and
        why, and 100k tracking messages would cost more than the move. A move
        with `tracking` (by hand) goes through the ORM for its chatter. Calls
        the stage-entry hook last.
        """
        if not partners:
            return
        self.ensure_one()
        partners = partners.with_company(self.env.company)
        now = self._mlm_move_date()
        if tracking:
            self._mlm_move_tracked(partners, now, reason_code, reason, automatic)
        else:
            self._mlm_write_moves(
                self.env.company,
                [
                    # NULL, not False (0), for a contact without a stage yet
                    (
                        partner.id,
                        partner.mlm_stage_id.id or None,
                        self.id,
                        now,
                        reason_code,
                    )
                    for partner in partners
                ],
                reason=reason,
                automatic=automatic,
            )
        self._mlm_on_stage_enter(partners)

    @api.model
    def _mlm_move_date(self):
        """When a move happens: now, unless the context dates it."""
        # Importing history (and the demo) dates the moves of its orders at
        # their real date, as the ledger does with its entries.
        return (
            fields.Datetime.to_datetime(self.env.context.get("mlm_ledger_date"))
            or fields.Datetime.now()
        )

    def _mlm_move_tracked(self, partners, now, reason_code, reason, automatic):
        """_mlm_move through the ORM, so that the chatter tracks the stage."""
        history = [
            {
                "partner_id": partner.id,
                "from_stage_id": partner.mlm_stage_id.id,
                "to_stage_id": self.id,
                "date": now,
                "reason_code": reason_code,
                "reason": reason,
                "automatic": automatic,
                "user_id": self.env.uid,
                "company_id": self.env.company.id,
            }
            for partner in partners
        ]
        partners.sudo().with_context(tracking_disable=False).write(
            {"mlm_stage_id": self.id, "mlm_stage_date": now}
        )
        self.env["loyalty.mlm.stage.history"].sudo().create(history)

    @api.model
    def _mlm_write_moves(self, company, moves, reason="", automatic=True):
        """Write `moves`, a list of (partner id, from stage id, to stage id,
        date, reason code), in `company`: each contact's stage and stage date
        and his history row, as the ORM would write them (same values, write
        date and user), with one statement per MOVE_BATCH_SIZE moves.

        The ORM updates a company-dependent field and inserts history rows
        100 rows per statement, and its partner write reads each contact's
        users and children: a first assignment at 100,000 customers cost
        some 2,300 queries (issue #22). Unlike the ORM, the company's key is
        kept even when it holds a default's value (ir.default): the stage
        queries read the key itself. The caller calls the stage-entry hook."""
        Partner = self.env["res.partner"]
        History = self.env["loyalty.mlm.stage.history"]
        fnames = ["mlm_stage_id", "mlm_stage_date", "write_uid", "write_date"]
        # Values still pending in the ORM would overwrite ours at the next flush.
        Partner.flush_model(fnames)
        reason = History._fields["reason"].convert_to_column(reason, History)
        # In the order of the contacts' ids: each batch then rewrites a range
        # of neighbouring rows, found by a range scan of the primary key,
        # rather than rows scattered over the table that the planner finds
        # by scanning all of it (per batch: 1.0 s instead of 1.7 s at
        # 100,000 customers on a loaded 2-core machine).
        for batch in split_every(MOVE_BATCH_SIZE, sorted(moves)):
            partner_ids, from_ids, to_ids, dates, codes = zip(*batch, strict=True)
            self.env.cr.execute(
                SQL(
                    """
                    WITH moves AS (
                        SELECT *
                          FROM unnest(%(partners)s::int[], %(from_ids)s::int[],
                                      %(to_ids)s::int[], %(dates)s::timestamp[],
                                      %(codes)s::varchar[])
                            AS m(partner_id, from_id, to_id, date, code)
                    ), moved AS (
                        -- the company's key of the jsonb columns, the others
                        -- kept; the date as the ORM stores a company-dependent
                        -- datetime (to the second)
                        UPDATE res_partner p
                           SET mlm_stage_id = COALESCE(p.mlm_stage_id, '{}')
                                   || jsonb_build_object(%(key)s, m.to_id),
                               mlm_stage_date = COALESCE(p.mlm_stage_date, '{}')
                                   || jsonb_build_object(
                                       %(key)s,
                                       to_char(m.date, 'YYYY-MM-DD HH24:MI:SS')
                                   ),
                               write_uid = %(uid)s,
                               write_date = %(now)s
                          FROM moves m
                         WHERE p.id = m.partner_id
                           AND p.id BETWEEN %(first)s AND %(last)s
                    )
                    INSERT INTO loyalty_mlm_stage_history (
                        partner_id, from_stage_id, to_stage_id, date,
                        reason_code, reason, automatic, user_id, company_id
                    )
                    SELECT partner_id, from_id, to_id, date, code, %(reason)s,
                           %(automatic)s, %(uid)s, %(company)s
                      FROM moves
                    """,
                    partners=list(partner_ids),
                    first=partner_ids[0],
                    last=partner_ids[-1],
                    from_ids=list(from_ids),
                    to_ids=list(to_ids),
                    dates=list(dates),
                    codes=list(codes),
                    key=str(company.id),
                    reason=reason,
                    automatic=bool(automatic),
                    uid=self.env.uid,
                    company=company.id,
                    now=self.env.cr.now(),
                )
            )
            # What the ORM's write and create would have done to the cache.
            partners = Partner.browse(partner_ids)
            partners.invalidate_recordset([*fnames, "mlm_stage_history_ids"])
            partners.modified(fnames)

    def _mlm_on_stage_enter(self, partners):
        """Hook: `partners` just entered the stage `self`: their stage-entry
        treatments."""
        self.env["loyalty.mlm.treatment"]._mlm_on_stage_enter(partners)

    @api.model
    def _mlm_stage_params(self, company):
        return StageParams(
            lapse_days=company.mlm_lapse_days,
            onboarding_days=company.mlm_onboarding_days,
            onboarding_max_orders=company.mlm_onboarding_max_orders,
            at_risk_churn=company.mlm_at_risk_churn,
            at_risk_rise=company.mlm_at_risk_rise,
            drop_pct=company.mlm_order_drop_pct,
            ambassador_referrals=company.mlm_ambassador_referrals,
        )

    @api.model
    def _mlm_stage_rows(self, partners, company):
        """{partner id: (stage id, kept until, churn, segment, quadrant, scored
        on, churn rise)} of `partners` in one query: the contact row and its
        score row in the company (an ORM read of 100k contacts costs
        seconds)."""
        # Scores are written through the contact's fields: flush everything.
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT p.id, (p.mlm_stage_id ->> %(key)s)::int,
                       (p.mlm_stage_locked_until ->> %(key)s)::date,
                       s.churn_risk, s.usage_segment, s.quadrant, s.score_date,
                       s.churn_rise
                  FROM res_partner p
             LEFT JOIN loyalty_mlm_partner_score s
                    ON s.partner_id = p.id AND s.company_id = %(company)s
                 WHERE p.id = ANY(%(partners)s)
                """,
                company=company.id,
                key=str(company.id),
                partners=partners.ids,
            )
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    @api.model
    def _mlm_stage_inputs(self, partners, company, today, rows=None):
        """{partner id: StageInput} for `partners`: order dates and counts from one
        query, segment and quadrant from the stored scores (see
        _mlm_stage_input)."""
        stats = self._mlm_stage_order_stats(partners, company, today)
        referrals = self._mlm_referral_counts(partners)
        rows = rows if rows is not None else self._mlm_stage_rows(partners, company)
        inputs = {}
        for partner_id in partners.ids:
            scores = rows.get(partner_id, (None,) * 7)[2:]
            inputs[partner_id] = self._mlm_stage_input(
                stats.get(partner_id, (None, None, 0, 0, 0)),
                scores,
                referrals.get(partner_id, 0),
            )
        return inputs

    @staticmethod
    def _mlm_stage_input(orders, scores, referrals):
        """The StageInput of one contact from his order figures (first, last,
        total, last 12 months, the 12 before), his stored scores (churn,
        segment, quadrant, scored on, churn rise) and his successful
        referrals.

        A churn score computed before the customer's latest order no longer
        describes them and is ignored (the nightly refresh recomputes scores,
        then stages)."""
        first, last, total, last_12m, prev_12m = orders
        churn, segment, quadrant, score_date, rise = scores
        fresh = bool(score_date and last and last <= score_date)
        return StageInput(
            first_order=first,
            last_order=last,
            orders_total=total,
            orders_12m=last_12m,
            orders_prev_12m=prev_12m,
            churn_risk=churn if fresh else None,
            churn_rise=rise if fresh else None,
            usage_segment=segment or None,
            quadrant=quadrant or None,
            referrals=referrals,
        )

    @api.model
    def _mlm_stage_order_stats(self, partners, company, today):
        """{commercial partner id: (first, last, total, last 12 months, the 12
        before)} of `partners`' qualifying orders (_mlm_stage_order_stats_query)."""
        self._mlm_flush_order_fields()
        self.env.cr.execute(
            self._mlm_stage_order_stats_query(company, today, partners.ids)
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    @api.model
    def _mlm_stage_order_stats_query(self, company, today, partner_ids=None):
        """One row per commercial partner with an order in `company`: id,
        first and last order day, orders, orders in the last 12 months and in
        the 12 before. Orders: confirmed sale orders and paid POS orders; a POS
        refund is no order, but its customer has a row (of no orders): he is
        one of the company's customers. `partner_ids`: only these.

        Order days are local days, in the time zone `today` comes from."""
        # The stage rules count days from fields.Date.context_today (the
        # user's local date, the one Odoo shows him); date_order is stored in
        # UTC. Both must be days of the same calendar: an order at 23:30 UTC
        # on 1 June is a 2 June order in Brussels. Same time zone as
        # context_today: the context's, else the user's, else UTC.
        tz = self.env.context.get("tz") or self.env.user.tz
        if tz not in pytz.all_timezones_set:
            tz = "UTC"
        year_ago = today - relativedelta(years=1)
        two_years_ago = today - relativedelta(years=2)
        restrict = SQL()
        if partner_ids is not None:
            restrict = SQL("AND p.commercial_partner_id = ANY(%s)", list(partner_ids))
        return SQL(
            """
            SELECT o.partner_id,
                   MIN(o.day) FILTER (WHERE o.is_order) AS first_order,
                   MAX(o.day) FILTER (WHERE o.is_order) AS last_order,
                   COUNT(*) FILTER (WHERE o.is_order) AS orders,
                   COUNT(*) FILTER (WHERE o.is_order AND o.day > %(year_ago)s)
                       AS orders_12m,
                   COUNT(*) FILTER (
                       WHERE o.is_order AND o.day > %(two_years_ago)s
                         AND o.day <= %(year_ago)s
                   ) AS orders_prev_12m
              FROM (
                SELECT p.commercial_partner_id AS partner_id,
                       timezone(%(tz)s, timezone('UTC', so.date_order))::date
                           AS day,
                       TRUE AS is_order
                  FROM sale_order so
                  JOIN res_partner p ON p.id = so.partner_id
                 WHERE so.state = 'sale' AND so.company_id = %(company)s
                       %(restrict)s
                 UNION ALL
                SELECT p.commercial_partner_id,
                       timezone(%(tz)s, timezone('UTC', po.date_order))::date,
                       po.amount_total > 0
                  FROM pos_order po
                  JOIN res_partner p ON p.id = po.partner_id
                 WHERE po.state IN ('paid', 'done', 'invoiced')
                   AND po.company_id = %(company)s
                       %(restrict)s
              ) o
          GROUP BY o.partner_id
            """,
            company=company.id,
            year_ago=year_ago,
            two_years_ago=two_years_ago,
            restrict=restrict,
            tz=tz,
        )

    @api.model
    def _mlm_referral_counts(self, partners):
        """{partner id: successful referrals} of `partners`."""
        return self.env["loyalty.mlm.referral"]._mlm_successful_referrals(partners)

    @api.model
    def _mlm_refresh_stages(self, partners, company, today=None):
        """Decide the stage of `partners` and move those whose stage changed.

        Contacts whose manual stage is locked stay put. Returns the number
        of contacts moved. A contact leaving winback is logged as won back.
        """
        today = today or fields.Date.context_today(self)
        rows = self._mlm_stage_rows(partners, company)
        inputs = self._mlm_stage_inputs(partners, company, today, rows)
        return self._mlm_apply_stages(company, today, inputs, rows)

    @api.model
    def _mlm_apply_stages(self, company, today, inputs, rows):
        """Move the contacts of `inputs` ({partner id: StageInput}) whose
        decided stage differs from their current one; `rows`: {partner id:
        (stage id, kept until, ...)}. Written in bulk (_mlm_write_moves),
        then the stage-entry hook per target stage, reason and date, as
        _mlm_move calls it. Returns the number of contacts moved."""
        params = self._mlm_stage_params(company)
        stages = self._by_code()
        winback_id = stages["winback"].id
        # A first computation on existing data (install, the demo) describes
        # the past: each move is dated by the order history it stands for,
        # not by the day the add-on was installed.
        backfill = self.env.context.get("mlm_stage_backfill")
        now = self._mlm_move_date()
        moves = defaultdict(list)
        for partner_id, inp in inputs.items():
            from_id, locked = rows[partner_id][:2]
            if locked and locked >= today:
                continue
            code, reason = decide_stage(inp, today, params)
            stage = stages[code]
            if from_id == stage.id:
                continue
            if from_id == winback_id:
                reason = "won_back"
            when = None
            if backfill and inp.last_order:
                day = inp.last_order
                if code == "winback":
                    day += timedelta(days=params.lapse_days + 1)
                when = fields.Datetime.to_datetime(min(day, today))
            moves[stage, reason, when].append(partner_id)
        self._mlm_write_moves(
            company,
            [
                (partner_id, rows[partner_id][0], stage.id, when or now, reason)
                for (stage, reason, when), partner_ids in moves.items()
                for partner_id in partner_ids
            ],
        )
        # The stage-entry hook per move as before, in the company of the
        # moves (company-dependent stage fields) and dated as they are.
        partners = self.env["res.partner"].with_company(company)
        for (stage, _reason, when), partner_ids in moves.items():
            stage = self.with_company(company).browse(stage.id)
            if when:
                stage = stage.with_context(mlm_ledger_date=when)
            stage._mlm_on_stage_enter(partners.browse(partner_ids))
        return sum(len(ids) for ids in moves.values())

    @api.model
    def _mlm_flush_order_fields(self):
        """The stage queries read orders in SQL: write pending ORM changes."""
        self.env["sale.order"].flush_model(
            ["state", "date_order", "partner_id", "company_id"]
        )
        self.env["pos.order"].flush_model(
            ["state", "date_order", "partner_id", "company_id", "amount_total"]
        )
        self.env["res.partner"].flush_model(
            ["commercial_partner_id", "customer_rank", "mlm_member_since"]
        )

    @api.model
    def _mlm_lifecycle_rows(self, company, today):
        """Every customer contact of the company (commercial partners only),
        each with what decides his stage in the company (see
        _mlm_lifecycle_query), fetched at once."""
        self.env.flush_all()
        self.env.cr.execute(self._mlm_lifecycle_query(company, today))
        return self.env.cr.fetchall()

    def _mlm_lifecycle_chunks(self, company, today, size=None):
        """The rows of _mlm_lifecycle_query, `size` (default
        STAGE_READ_CHUNK) at a time (a generator: consume it to the end).

        The query runs once, into a temporary table (its aggregation of the
        orders may use parallel workers there), which a cursor then reads a
        chunk at a time: the caller moves a chunk's contacts before it reads
        the next, so its memory does not grow with the customers. The cursor
        sees the table as it was filled, whatever the moves write."""
        size = size or STAGE_READ_CHUNK
        cr = self.env.cr
        # Scores are written through the contact's fields: flush everything.
        self.env.flush_all()
        # No JIT: the per-contact look-ups of _mlm_lifecycle_query raise the
        # estimated cost above PostgreSQL's JIT thresholds, and compiling
        # the query (in every parallel worker) cost more than it ran: 11 s
        # instead of 1.7 s for an unchanged night at 100,000 customers.
        cr.execute(
            SQL(
                "SET LOCAL jit = off;"
                " CREATE TEMPORARY TABLE mlm_lifecycle ON COMMIT DROP AS"
                " SELECT * FROM (%s) AS row_values(%s);"
                " RESET jit",
                self._mlm_lifecycle_query(company, today),
                SQL(", ").join(SQL.identifier(f"c{i}") for i in range(15)),
            )
        )
        cr.execute(
            "DECLARE mlm_lifecycle_rows NO SCROLL CURSOR FOR"
            " SELECT * FROM mlm_lifecycle"
        )
        while True:
            cr.execute(SQL("FETCH %s FROM mlm_lifecycle_rows", size))
            rows = cr.fetchall()
            if not rows:
                break
            yield rows
        self._mlm_lifecycle_close()

    @api.model
    def _mlm_lifecycle_close(self):
        """Drop what _mlm_lifecycle_chunks made (also when its caller stops
        early: the next company makes its own in the same transaction)."""
        self.env.cr.execute("CLOSE mlm_lifecycle_rows; DROP TABLE mlm_lifecycle")

    def _mlm_lifecycle_query(self, company, today):
        """Every customer contact of the company (commercial partners only),
        each with what decides his stage in the company, in one query: id,
        stage id, kept until, churn, segment, quadrant, scored on, the five
        order figures of _mlm_stage_order_stats_query, successful referrals,
        churn rise, whether he is the company's customer (False: a contact
        with a stage here who became another company's customer only).

        The company's customers: anyone with a qualifying order (or a POS
        refund) in it, and the customers and members (customer rank, member
        since) who are its own contacts, members of its programme, or shared
        contacts who are nobody's customer yet (prospects of every company).
        A customer of another company only has no stage here: company B's
        rules and treatments do not reach company A's customers. With one
        company, this is every customer, as before."""
        elsewhere = self._mlm_customer_elsewhere(company)
        return SQL(
            """
                WITH orders AS (%(orders)s),
                -- as loyalty.mlm.referral counts them, for everybody
                referrals AS (
                    SELECT mlm_referrer_id AS id, COUNT(*) AS count
                      FROM res_partner
                     WHERE mlm_referrer_id IS NOT NULL
                       AND mlm_referral_date IS NOT NULL
                  GROUP BY mlm_referrer_id
                )
                SELECT p.id, (p.mlm_stage_id ->> %(key)s)::int,
                       (p.mlm_stage_locked_until ->> %(key)s)::date,
                       s.churn_risk, s.usage_segment, s.quadrant, s.score_date,
                       o.first_order, o.last_order, COALESCE(o.orders, 0),
                       COALESCE(o.orders_12m, 0), COALESCE(o.orders_prev_12m, 0),
                       COALESCE(r.count, 0), s.churn_rise, %(customer)s
                  FROM res_partner p
             LEFT JOIN orders o ON o.partner_id = p.id
             LEFT JOIN loyalty_mlm_partner_score s
                    ON s.partner_id = p.id AND s.company_id = %(company)s
             LEFT JOIN referrals r ON r.id = p.id
                 WHERE %(customer)s
                    -- no longer ours: a prospect who became another's customer
                    OR ((p.mlm_stage_id ->> %(key)s) IS NOT NULL AND %(elsewhere)s)
                """,
            # Member of the programme, customer of another company: looked
            # up per contact (indexes), and only for the contacts without
            # orders here. As `id IN (SELECT ...)` under an OR, PostgreSQL
            # reads the whole list again for every contact once it expects
            # it not to fit in work_mem (300,000 members at 1,000,000
            # customers: hours; issue #22).
            customer=SQL(
                """(o.partner_id IS NOT NULL
                    OR (p.active AND p.id = p.commercial_partner_id
                        AND (p.customer_rank > 0 OR p.mlm_member_since IS NOT NULL)
                        AND (p.company_id = %(company)s
                             OR (p.company_id IS NULL
                                 AND (EXISTS (SELECT 1
                                                FROM res_partner mp
                                                JOIN loyalty_card c
                                                  ON c.partner_id = mp.id
                                               WHERE mp.commercial_partner_id = p.id
                                                 AND c.program_id = %(program)s)
                                      OR NOT %(elsewhere)s)))))""",
                company=company.id,
                program=company.mlm_program_id.id or 0,
                elsewhere=elsewhere,
            ),
            elsewhere=elsewhere,
            orders=self._mlm_stage_order_stats_query(company, today),
            company=company.id,
            key=str(company.id),
            program=company.mlm_program_id.id or 0,
        )

    @api.model
    def _mlm_customer_elsewhere(self, company):
        """SQL: the contact `p` (a commercial partner) is a customer of
        another company (an order there, or its member card)."""
        return SQL(
            """(EXISTS (SELECT 1
                          FROM res_partner cp
                          JOIN sale_order so ON so.partner_id = cp.id
                         WHERE cp.commercial_partner_id = p.id
                           AND so.state = 'sale' AND so.company_id != %(company)s)
                OR EXISTS (SELECT 1
                             FROM res_partner cp
                             JOIN pos_order po ON po.partner_id = cp.id
                            WHERE cp.commercial_partner_id = p.id
                              AND po.state IN ('paid', 'done', 'invoiced')
                              AND po.company_id != %(company)s)
                OR EXISTS (SELECT 1
                             FROM res_partner cp
                             JOIN loyalty_card c ON c.partner_id = cp.id
                             JOIN res_company rc
                               ON rc.mlm_program_id = c.program_id
                              AND rc.id != %(company)s
                            WHERE cp.commercial_partner_id = p.id))""",
            company=company.id,
        )

    @api.model
    def _mlm_refresh_all_stages(self, companies=None):
        """Every customer's stage from the rules; run by the nightly score job
        once the scores are fresh. Resumable by construction: contacts already
        in their stage are skipped. Returns the number of contacts moved."""
        return self._mlm_refresh_stages_until(companies)[0]

    @api.model
    def _mlm_refresh_stages_until(self, companies=None, deadline=None):
        """_mlm_refresh_all_stages, a chunk of customers at a time, with no
        new chunk once time.monotonic() passed `deadline` and the call moved
        someone (chunks of contacts already in their stage cost no budget:
        every call moves some or finishes). Returns (contacts moved, whether
        every company is done)."""
        moved = 0
        for company in companies or self.env["res.company"].search([]):
            if moved and deadline is not None and time.monotonic() > deadline:
                return moved, False
            # A chunk's rows and inputs are built in memory at once.
            with gc_paused():
                company_moved, finished = self._mlm_refresh_company_stages(
                    company, deadline=deadline, moved=moved
                )
            moved += company_moved
            if not finished:
                return moved, False
        return moved, True

    @api.model
    def _cron_refresh_stages(self, time_budget=STAGE_TIME_BUDGET):
        """Finish the stage step the nightly score job left for lack of time
        (a first assignment at 1,000,000 customers takes minutes: in the score
        job's last call alone it would outlast limit_time_real_cron, and,
        killed, start over every night). Chunks of customers until
        `time_budget` seconds have passed; ir.cron commits and calls again
        while some remain; the treatments and KPI snapshots follow."""
        deadline = time.monotonic() + time_budget
        moved, finished = self.with_context(
            mlm_defer_treatments=True
        )._mlm_refresh_stages_until(deadline=deadline)
        if finished and moved:
            # (Its nightly run, a safety net, finds nothing to move: the
            # score job started them already.)
            self.env["loyalty.mlm.treatment"]._mlm_trigger_run()
            self.env["loyalty.mlm.kpi.snapshot"]._mlm_trigger_snapshots()
        self.env["ir.cron"]._notify_progress(done=moved, remaining=0 if finished else 1)
        return moved

    @api.model
    def _mlm_refresh_company_stages(self, company, deadline=None, moved=0):
        """_mlm_refresh_stages of every customer of `company` (see
        _mlm_lifecycle_rows), from one query rather than one per input; no
        new chunk once time.monotonic() passed `deadline` and someone moved
        (`moved`: the call's moves before this company). Returns (contacts
        moved, whether every customer was decided)."""
        before = moved
        today = fields.Date.context_today(self)
        stage_input = self._mlm_stage_input
        # A chunk of customers at a time (see _mlm_lifecycle_chunks).
        chunks = self._mlm_lifecycle_chunks(company, today)
        for chunk in chunks:
            rows, inputs, stale = {}, {}, []
            for row in chunk:
                # id | stage, kept until | 4 scores | 5 order figures |
                # referrals | churn rise | the company's customer
                if not row[14]:
                    # A stage kept by hand stays.
                    if not (row[2] and row[2] >= today):
                        stale.append(row[0])
                    continue
                rows[row[0]] = row[1:3]
                inputs[row[0]] = stage_input(row[7:12], (*row[3:7], row[13]), row[12])
            self._mlm_clear_stages(company, stale)
            moved += self._mlm_apply_stages(company, today, inputs, rows)
            if moved and deadline is not None and time.monotonic() > deadline:
                # The rest next call: its contacts are not in their stage yet.
                chunks.close()
                self._mlm_lifecycle_close()
                return moved - before, False
        return moved - before, True

    @api.model
    def _mlm_clear_stages(self, company, partner_ids):
        """`partner_ids` are no longer customers of `company` (a prospect who
        bought in another company only, see _mlm_lifecycle_rows): they have
        no stage there any more. One write; no history row (the history
        records moves between stages)."""
        if partner_ids:
            self.env["res.partner"].with_company(company).browse(
                partner_ids
            ).sudo().with_context(tracking_disable=True).write(
                {
                    "mlm_stage_id": False,
                    "mlm_stage_date": False,
                    "mlm_stage_locked_until": False,
                }
            )
        return len(partner_ids)

    @api.model
    def _mlm_stage_event(self, customers, company):
        """An order of `customers` was confirmed or paid: first order
        (acquisition to onboarding) and winback customers move now, not at
        night."""
        # The stage of the order's company (company-dependent).
        partners = customers.commercial_partner_id.with_company(company)
        ids = self._mlm_ids_by_code()
        moving = {ids.get("acquisition"), ids.get("winback")}
        waiting = partners.filtered(
            lambda p: not p.mlm_stage_id or p.mlm_stage_id.id in moving
        )
        if waiting:
            # Stage bookkeeping is the system's: a salesperson or cashier need
            # not read every order involved (the history keeps who caused it).
            self.sudo()._mlm_refresh_stages(waiting.sudo(), company)
