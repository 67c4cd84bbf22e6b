from collections import defaultdict
from datetime import timedelta

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..tools.lifecycle import StageInput, StageParams, decide_stage

EXPIRING_SOON_DAYS = 30


class ResPartner(models.Model):
    _inherit = "res.partner"

    mlm_member_since = fields.Date(string="Member Since", copy=False, tracking=True)
    mlm_card_id = fields.Many2one(
        "loyalty.card",
        string="Member Card",
        compute="_compute_mlm_card_id",
    )
    mlm_points = fields.Float(
        string="Points",
        compute="_compute_mlm_card_id",
        digits=(16, 2),
    )
    mlm_redemption_blocked = fields.Boolean(
        string="Redemption Blocked",
        compute="_compute_mlm_card_id",
        help="The balance is negative (points taken back after they were spent): "
        "no redemption until it is positive again.",
    )
    # For the cashier's badge (the POS loads no lifecycle stage model).
    mlm_stage_name = fields.Char(related="mlm_stage_id.name", string="Stage Name")
    mlm_points_expiring_soon = fields.Float(
        string="Expiring Soon",
        compute="_compute_mlm_points_expiring_soon",
        digits=(16, 2),
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

    @api.model
    def _load_pos_data_fields(self, config_id):
        # Loaded with the customers: selecting one costs no extra request.
        return [
            *super()._load_pos_data_fields(config_id),
            "mlm_member_since",
            "mlm_stage_name",
            "mlm_points",
            "mlm_points_expiring_soon",
            "mlm_redemption_blocked",
        ]

    def action_mlm_enroll(self):
        self.ensure_one()
        self._mlm_enroll(self.env.company)
        return True

    def mlm_pos_enroll(self):
        """The cashier's one click: make the selected customers members.

        Enrolling is a cashier's job even where cashiers may not edit
        contacts, so it asks for POS (or Loyalty) access, not contact rights.
        """
        user = self.env.user
        if not (
            user.has_group("point_of_sale.group_pos_user")
            or user.has_group("loyalty_mlm.group_loyalty_mlm_user")
        ):
            raise AccessError(_("Only cashiers and loyalty staff can enrol members."))
        self.check_access("read")
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

    # ------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------

    mlm_stage_id = fields.Many2one(
        "loyalty.mlm.stage",
        string="Lifecycle Stage",
        index=True,
        tracking=True,
        copy=False,
        ondelete="restrict",
        group_expand="_read_group_mlm_stage_ids",
    )
    mlm_stage_code = fields.Selection(related="mlm_stage_id.code", string="Stage Code")
    mlm_stage_pick_id = fields.Many2one(
        "loyalty.mlm.stage",
        string="Stage",
        compute="_compute_mlm_stage_pick_id",
        inverse="_inverse_mlm_stage_pick_id",
        help="Clicking a stage on the contact sets it by hand.",
    )
    mlm_stage_date = fields.Datetime(string="In Stage Since", copy=False, readonly=True)
    mlm_stage_days = fields.Integer(
        string="Days in Stage", compute="_compute_mlm_stage_days"
    )
    mlm_stage_locked_until = fields.Date(
        string="Stage Kept Until",
        copy=False,
        readonly=True,
        help="Set with a manual stage: the automatic rules leave the contact "
        "in its stage until this date (included).",
    )
    mlm_stage_history_ids = fields.One2many(
        "loyalty.mlm.stage.history", "partner_id", string="Stage History"
    )

    @api.model
    def _read_group_mlm_stage_ids(self, stages, domain):
        # Every stage is a kanban column, even an empty one.
        return stages.search([])

    @api.depends("mlm_stage_id")
    def _compute_mlm_stage_pick_id(self):
        for partner in self:
            partner.mlm_stage_pick_id = partner.mlm_stage_id

    def _inverse_mlm_stage_pick_id(self):
        for partner in self:
            if partner.mlm_stage_pick_id != partner.mlm_stage_id:
                partner._mlm_set_stage_manually(
                    partner.mlm_stage_pick_id, _("Set from the contact form")
                )

    @api.depends("mlm_stage_date")
    def _compute_mlm_stage_days(self):
        now = fields.Datetime.now()
        for partner in self:
            start = partner.mlm_stage_date
            partner.mlm_stage_days = (now - start).days if start else 0

    def action_mlm_set_stage(self):
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "loyalty_mlm.loyalty_mlm_stage_wizard_action"
        )
        action["context"] = {
            "default_partner_ids": self.ids,
            "default_stage_id": self[:1].mlm_stage_id.id,
        }
        return action

    def _mlm_set_stage_manually(self, stage, reason, locked_until=None):
        """A Loyalty Manager's choice, logged with the reason; locked if asked."""
        if not (
            self.env.su
            or self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager")
        ):
            raise UserError(_("Only Loyalty Managers can set a stage by hand."))
        moving = self.filtered(lambda partner: partner.mlm_stage_id != stage)
        self.sudo().write({"mlm_stage_locked_until": locked_until or False})
        moving._mlm_move(stage, "manual", reason=reason, automatic=False, tracking=True)

    def _mlm_move(self, stage, reason_code, reason="", automatic=True, tracking=False):
        """Put `self` in `stage`: one write for all, one history row each.

        Bulk moves (the nightly refresh) skip chatter tracking: the history
        rows already say who moved, when and why, and 100k tracking messages
        would cost more than the move. Calls the stage-entry hook last.
        """
        if not self:
            return
        now = fields.Datetime.now()
        history = [
            {
                "partner_id": partner.id,
                "from_stage_id": partner.mlm_stage_id.id,
                "to_stage_id": stage.id,
                "date": now,
                "reason_code": reason_code,
                "reason": reason,
                "automatic": automatic,
                "user_id": self.env.uid,
                "company_id": self.env.company.id,
            }
            for partner in self
        ]
        partners = self.sudo().with_context(tracking_disable=not tracking)
        partners.write({"mlm_stage_id": stage.id, "mlm_stage_date": now})
        self.env["loyalty.mlm.stage.history"].sudo().create(history)
        self._mlm_on_stage_enter(stage)

    def _mlm_on_stage_enter(self, stage):
        """Hook: `self` just entered `stage` (treatments plug in here)."""

    # Stage rules ---------------------------------------------------

    @api.model
    def _mlm_stage_params(self, company):
        return StageParams(
            lapse_days=company.mlm_lapse_days,
            onboarding_days=company.mlm_onboarding_days,
            onboarding_max_orders=company.mlm_onboarding_max_orders,
            at_risk_churn=company.mlm_at_risk_churn,
            drop_pct=company.mlm_order_drop_pct,
            ambassador_referrals=company.mlm_ambassador_referrals,
        )

    def _mlm_stage_inputs(self, company, today):
        """{partner id: StageInput} for `self`: order dates and counts from one
        query, segment and quadrant from the stored scores. A churn score
        computed before the customer's latest order no longer describes them
        and is ignored (the nightly refresh recomputes scores, then stages)."""
        stats = self._mlm_stage_order_stats(company, today)
        referrals = self._mlm_referral_counts()
        score_fields = [
            name
            for name in (
                "mlm_churn_risk",
                "mlm_usage_segment",
                "mlm_quadrant",
                "mlm_score_date",
            )
            if name in self._fields
        ]
        scores = {
            row["id"]: row
            for row in self.with_context(active_test=False).search_read(
                [("id", "in", self.ids)], score_fields
            )
        }
        inputs = {}
        for partner_id in self.ids:
            first, last, total, last_12m, prev_12m = stats.get(
                partner_id, (None, None, 0, 0, 0)
            )
            score = scores.get(partner_id, {})
            score_date = score.get("mlm_score_date")
            fresh = bool(score_date and last and last <= score_date)
            inputs[partner_id] = StageInput(
                first_order=first,
                last_order=last,
                orders_total=total,
                orders_12m=last_12m,
                orders_prev_12m=prev_12m,
                churn_risk=score.get("mlm_churn_risk") if fresh else None,
                usage_segment=score.get("mlm_usage_segment") or None,
                quadrant=score.get("mlm_quadrant") or None,
                referrals=referrals.get(partner_id, 0),
            )
        return inputs

    def _mlm_stage_order_stats(self, company, today):
        """{commercial partner id: (first, last, total, last 12 months, the 12
        before)} of qualifying orders: confirmed sale orders and paid POS
        orders (refunds are not orders)."""
        self._mlm_flush_order_fields()
        year_ago = today - relativedelta(years=1)
        two_years_ago = today - relativedelta(years=2)
        self.env.cr.execute(
            SQL(
                """
                WITH orders AS (
                    SELECT p.commercial_partner_id AS partner_id,
                           so.date_order::date AS day
                      FROM sale_order so
                      JOIN res_partner p ON p.id = so.partner_id
                     WHERE so.state = 'sale' AND so.company_id = %(company)s
                     UNION ALL
                    SELECT p.commercial_partner_id, po.date_order::date
                      FROM pos_order po
                      JOIN res_partner p ON p.id = po.partner_id
                     WHERE po.state IN ('paid', 'done', 'invoiced')
                       AND po.company_id = %(company)s
                       AND po.amount_total > 0
                )
                SELECT partner_id, MIN(day), MAX(day), COUNT(*),
                       COUNT(*) FILTER (WHERE day > %(year_ago)s),
                       COUNT(*) FILTER (
                           WHERE day > %(two_years_ago)s AND day <= %(year_ago)s
                       )
                  FROM orders
                 WHERE partner_id = ANY(%(partners)s)
              GROUP BY partner_id
                """,
                company=company.id,
                year_ago=year_ago,
                two_years_ago=two_years_ago,
                partners=self.ids,
            )
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    def _mlm_referral_counts(self):
        """{partner id: successful referrals}; 0 until referrals exist."""
        return {}

    def _mlm_refresh_stages(self, company, today=None):
        """Decide the stage of `self` and move those whose stage changed.

        Contacts whose manual stage is locked stay put. Returns the number
        of contacts moved. A contact leaving winback is logged as won back.
        """
        today = today or fields.Date.context_today(self)
        params = self._mlm_stage_params(company)
        stages = self.env["loyalty.mlm.stage"]._by_code()
        current = {
            row["id"]: row
            for row in self.with_context(active_test=False).search_read(
                [("id", "in", self.ids)], ["mlm_stage_id", "mlm_stage_locked_until"]
            )
        }
        moves = defaultdict(list)
        for partner_id, inp in self._mlm_stage_inputs(company, today).items():
            row = current[partner_id]
            locked = row["mlm_stage_locked_until"]
            if locked and locked >= today:
                continue
            code, reason = decide_stage(inp, today, params)
            stage = stages[code]
            from_id = row["mlm_stage_id"] and row["mlm_stage_id"][0]
            if from_id == stage.id:
                continue
            if from_id == stages["winback"].id:
                reason = "won_back"
            moves[stage, reason].append(partner_id)
        for (stage, reason), partner_ids in moves.items():
            self.browse(partner_ids)._mlm_move(stage, reason)
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
        self.flush_model(["commercial_partner_id", "customer_rank", "mlm_member_since"])

    @api.model
    def _mlm_lifecycle_population(self, company):
        """Every customer contact of the company: customers, members and
        anyone with a qualifying order (commercial partners only)."""
        self._mlm_flush_order_fields()
        self.env.cr.execute(
            SQL(
                """
                SELECT id FROM res_partner
                 WHERE active AND id = commercial_partner_id
                   AND (customer_rank > 0 OR mlm_member_since IS NOT NULL)
                   AND (company_id IS NULL OR company_id = %(company)s)
                 UNION
                SELECT p.commercial_partner_id FROM sale_order so
                  JOIN res_partner p ON p.id = so.partner_id
                 WHERE so.state = 'sale' AND so.company_id = %(company)s
                 UNION
                SELECT p.commercial_partner_id FROM pos_order po
                  JOIN res_partner p ON p.id = po.partner_id
                 WHERE po.state IN ('paid', 'done', 'invoiced')
                   AND po.company_id = %(company)s
                """,
                company=company.id,
            )
        )
        return self.browse([row[0] for row in self.env.cr.fetchall()])

    @api.model
    def _cron_refresh_stages(self, batch_size=20000):
        """Nightly: every customer's stage from the rules (after the scores).

        Resumable by construction: contacts already in their stage are
        skipped, so a run stopped midway continues where it was.
        """
        moved = 0
        for company in self.env["res.company"].search([]):
            population = self._mlm_lifecycle_population(company)
            for start in range(0, len(population), batch_size):
                moved += population[start : start + batch_size]._mlm_refresh_stages(
                    company
                )
        self.env["ir.cron"]._notify_progress(done=moved, remaining=0)
        return moved

    def _mlm_stage_event(self, company):
        """An order was confirmed or paid: first order (acquisition to
        onboarding) and winback customers move now, not at night."""
        partners = self.commercial_partner_id
        waiting = partners.filtered(
            lambda p: p.mlm_stage_code in (False, "acquisition", "winback")
        )
        if waiting:
            # Stage bookkeeping is the system's: a salesperson or cashier need
            # not read every order involved (the history keeps who caused it).
            waiting.sudo()._mlm_refresh_stages(company)
