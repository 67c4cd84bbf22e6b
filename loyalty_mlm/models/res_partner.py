import calendar
import io
import logging
import secrets
import time
from collections import defaultdict
from datetime import datetime, timedelta
from operator import itemgetter

import psycopg2
import pytz
from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models, sql_db
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, float_round, format_date, split_every
from odoo.tools.query import Query

from ..tools.lifecycle import StageInput, StageParams, decide_stage
from ..tools.runtime import gc_paused
from ..tools.scoring import (
    SCORE_KEYS,
    CustomerStats,
    Population,
    ScoringParams,
    population_from_stats,
    population_interval,
    score_population,
    score_with_reference,
)
from .loyalty_mlm_ledger import PRECISION

_logger = logging.getLogger(__name__)

# Who reads members' data (field groups): a member's card, points, stage and
# tier are for loyalty staff and for cashiers, who serve members at the
# register (badge, customer list); segment scores and next best actions are
# for loyalty staff. Internal users outside both read none of it.
LOYALTY_GROUPS = "loyalty_mlm.group_loyalty_mlm_user"
MEMBER_GROUPS = "loyalty_mlm.group_loyalty_mlm_user,point_of_sale.group_pos_user"

EXPIRING_SOON_DAYS = 30

# Bonuses, tiers, referral: bonus kinds an order carries; referral code letters
# (no 0/O, 1/I/L look-alikes).
BONUS_KINDS = ("tier_bonus", "campaign_bonus")
REFERRAL_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

# Segment scores: contact field -> column of loyalty_mlm_partner_score.
SCORE_FIELDS = {
    "mlm_score_date": "score_date",
    "mlm_recency_score": "recency_score",
    "mlm_frequency_score": "frequency_score",
    "mlm_monetary_score": "monetary_score",
    "mlm_rfm_code": "rfm_code",
    "mlm_usage_segment": "usage_segment",
    "mlm_quadrant": "quadrant",
    "mlm_churn_risk": "churn_risk",
    "mlm_clv": "clv",
}
USAGE_SEGMENT_SELECTION = [
    ("heavy", "Heavy user"),
    ("medium", "Medium user"),
    ("low", "Low user"),
]
QUADRANT_SELECTION = [
    ("true_friend", "True Friend"),
    ("butterfly", "Butterfly"),
    ("barnacle", "Barnacle"),
    ("stranger", "Stranger"),
]
# Customers written per statement.
SCORE_BATCH_SIZE = 5000
# Seconds a call of the nightly job keeps writing batches before it hands back
# to ir.cron (which commits and calls again while work remains).
SCORE_TIME_BUDGET = 60.0
# Memory for the aggregation of all orders (PostgreSQL work_mem).
SCORE_WORK_MEM = "256MB"
# The incremental refresh looks this far before the previous run's start, for
# orders committed by transactions that were still open when it started.
SCORE_INCREMENTAL_OVERLAP = timedelta(hours=1)
# First key of the per-company score lock (pg_advisory_xact_lock(key, company)).
SCORE_LOCK_KEY = 0x4D4C4D53  # "MLMS"


def _mlm_score_searcher(fname):
    """The search method of the score field `fname` (see _mlm_search_score)."""

    def search(self, operator, value):
        return self._mlm_search_score(fname, operator, value)

    search.__name__ = f"_search_{fname}"
    return search


class ResPartner(models.Model):
    _inherit = "res.partner"

    mlm_member_since = fields.Date(string="Member Since", copy=False, tracking=True)
    mlm_card_id = fields.Many2one(
        "loyalty.card",
        string="Member Card",
        compute="_compute_mlm_card_id",
        groups=MEMBER_GROUPS,
    )
    mlm_points = fields.Float(
        string="Points",
        compute="_compute_mlm_card_id",
        digits=(16, 2),
        groups=MEMBER_GROUPS,
    )
    mlm_card_code = fields.Char(
        string="Member Card Code",
        compute="_compute_mlm_card_id",
        search="_search_mlm_card_code",
        help="Code of the member card: the register finds the member by it.",
        groups=MEMBER_GROUPS,
    )
    mlm_redemption_blocked = fields.Boolean(
        string="Redemption Blocked",
        compute="_compute_mlm_card_id",
        help="The balance is negative (points taken back after they were spent): "
        "no redemption until it is positive again.",
        groups=MEMBER_GROUPS,
    )
    # For the cashier's badge (the POS loads no lifecycle stage model).
    mlm_stage_name = fields.Char(
        related="mlm_stage_id.name", string="Stage Name", groups=MEMBER_GROUPS
    )
    mlm_points_expiring_soon = fields.Float(
        string="Expiring Soon",
        compute="_compute_mlm_points_expiring_soon",
        digits=(16, 2),
        help="Points that expire in the next 30 days.",
        groups=MEMBER_GROUPS,
    )

    # Targeted programmes (loyalty.program): the register offers a targeted
    # programme only to the customers listed eligible here, computed with the
    # server's own rule when the customers load (no request on selection).
    # compute_sudo: the rule may read any field of the contact (free domain);
    # the cashier only gets programme ids.
    mlm_pos_program_ids = fields.Json(
        string="Targeted Programmes (POS)",
        compute="_compute_mlm_pos_program_ids",
        compute_sudo=True,
    )

    @api.depends_context("company")
    def _compute_mlm_pos_program_ids(self):
        programs = self.env["loyalty.program"].search(
            [
                ("mlm_restricted", "=", True),
                ("pos_ok", "=", True),
                *self.env["loyalty.program"]._check_company_domain(self.env.company),
            ]
        )
        eligible = {partner.id: [] for partner in self}
        for program in programs:
            for partner in self.filtered(program._is_partner_valid):
                eligible[partner.id].append(program.id)
        for partner in self:
            partner.mlm_pos_program_ids = eligible[partner.id]

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
            partner.mlm_card_code = card.code
            partner.mlm_redemption_blocked = card.points < 0

    def _search_mlm_card_code(self, operator, value):
        # A search method bypasses the field's groups: finding contacts by
        # card code would tell who holds a card.
        self.check_field_access_rights("read", ["mlm_card_code"])
        # sudo: cashiers look members up by card without rights on cards.
        cards = (
            self.env["loyalty.card"]
            .sudo()
            ._search(
                [
                    ("program_id", "=", self.env.company.mlm_program_id.id),
                    ("code", operator, value),
                ]
            )
        )
        return [("id", "in", cards.subselect("partner_id"))]

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
            "mlm_pos_program_ids",
            # Tier, codes: badge, customer list columns and search, receipt.
            "mlm_tier_name",
            "mlm_tier_color",
            "mlm_referral_code",
            "mlm_card_code",
        ]

    def action_mlm_enroll(self):
        """Make Member on the contact form: loyalty staff only (a welcome
        bonus may come with it); cashiers use mlm_pos_enroll, orders enrol
        their customer on the server."""
        if len(self) != 1:
            raise UserError(_("Make one contact a member at a time."))
        if not self.env.user.has_group(LOYALTY_GROUPS):
            raise AccessError(_("Only Loyalty Users can make a contact a member."))
        self.check_access("read")
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
        existing = cards.search_fetch(
            [("program_id", "=", program.id), ("partner_id", "in", self.ids)],
            ["partner_id"],
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
        # Referral code and welcome bonus (see "Bonuses, tiers, referral").
        self._mlm_on_member(company)

    @api.model
    def _mlm_auto_enroll(self, partners, company):
        if company.mlm_auto_enroll and company.mlm_program_id and partners:
            partners._mlm_enroll(company)

    def _mlm_statement_entries(self):
        """Ledger lines of the points statement, oldest first, with a running
        balance and a printable source name."""
        self.ensure_one()
        # Read with sudo below: only for loyalty staff who may read the member.
        if not self.env.su:
            if not self.env.user.has_group(LOYALTY_GROUPS):
                raise AccessError(_("Only Loyalty Users can read points statements."))
            self.check_access("read")
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
        groups=MEMBER_GROUPS,
    )
    mlm_stage_code = fields.Selection(
        related="mlm_stage_id.code", string="Stage Code", groups=MEMBER_GROUPS
    )
    mlm_stage_pick_id = fields.Many2one(
        "loyalty.mlm.stage",
        string="Stage",
        compute="_compute_mlm_stage_pick_id",
        inverse="_inverse_mlm_stage_pick_id",
        help="Clicking a stage on the contact sets it by hand.",
        groups=LOYALTY_GROUPS,
    )
    mlm_stage_date = fields.Datetime(
        string="In Stage Since", copy=False, readonly=True, groups=MEMBER_GROUPS
    )
    mlm_stage_days = fields.Integer(
        string="Days in Stage", compute="_compute_mlm_stage_days", groups=MEMBER_GROUPS
    )
    mlm_stage_locked_until = fields.Date(
        string="Stage Kept Until",
        copy=False,
        readonly=True,
        help="Set with a manual stage: the automatic rules leave the contact "
        "in its stage until this date (included).",
        groups=MEMBER_GROUPS,
    )
    mlm_stage_history_ids = fields.One2many(
        "loyalty.mlm.stage.history",
        "partner_id",
        string="Stage History",
        groups=MEMBER_GROUPS,
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
        """Hook: `self` just entered `stage`: their stage-entry treatments."""
        self.env["loyalty.mlm.treatment"]._mlm_on_stage_enter(self)

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

    def _mlm_stage_rows(self, company):
        """{partner id: (stage id, kept until, churn, segment, quadrant, scored
        on)} of `self` in one query: the contact row and its score row in the
        company (an ORM read of 100k contacts costs seconds)."""
        # Scores are written through the contact's fields: flush everything.
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT p.id, p.mlm_stage_id, p.mlm_stage_locked_until,
                       s.churn_risk, s.usage_segment, s.quadrant, s.score_date
                  FROM res_partner p
             LEFT JOIN loyalty_mlm_partner_score s
                    ON s.partner_id = p.id AND s.company_id = %(company)s
                 WHERE p.id = ANY(%(partners)s)
                """,
                company=company.id,
                partners=self.ids,
            )
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    def _mlm_stage_inputs(self, company, today, rows=None):
        """{partner id: StageInput} for `self`: order dates and counts from one
        query, segment and quadrant from the stored scores (see
        _mlm_stage_input)."""
        stats = self._mlm_stage_order_stats(company, today)
        referrals = self._mlm_referral_counts()
        rows = rows if rows is not None else self._mlm_stage_rows(company)
        inputs = {}
        for partner_id in self.ids:
            _stage, _kept, churn, segment, quadrant, score_date = rows.get(
                partner_id, (None, None, None, None, None, None)
            )
            inputs[partner_id] = self._mlm_stage_input(
                stats.get(partner_id, (None, None, 0, 0, 0)),
                (churn, segment, quadrant, score_date),
                referrals.get(partner_id, 0),
            )
        return inputs

    @staticmethod
    def _mlm_stage_input(orders, scores, referrals):
        """The StageInput of one contact from his order figures (first, last,
        total, last 12 months, the 12 before), his stored scores (churn,
        segment, quadrant, scored on) and his successful referrals.

        A churn score computed before the customer's latest order no longer
        describes them and is ignored (the nightly refresh recomputes scores,
        then stages)."""
        first, last, total, last_12m, prev_12m = orders
        churn, segment, quadrant, score_date = scores
        fresh = bool(score_date and last and last <= score_date)
        return StageInput(
            first_order=first,
            last_order=last,
            orders_total=total,
            orders_12m=last_12m,
            orders_prev_12m=prev_12m,
            churn_risk=churn if fresh else None,
            usage_segment=segment or None,
            quadrant=quadrant or None,
            referrals=referrals,
        )

    def _mlm_stage_order_stats(self, company, today):
        """{commercial partner id: (first, last, total, last 12 months, the 12
        before)} of `self`'s qualifying orders (_mlm_stage_order_stats_query)."""
        self._mlm_flush_order_fields()
        self.env.cr.execute(self._mlm_stage_order_stats_query(company, today, self.ids))
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

    def _mlm_referral_counts(self):
        """{partner id: successful referrals} (see "Bonuses, tiers, referral")."""
        return self._mlm_successful_referrals()

    def _mlm_refresh_stages(self, company, today=None):
        """Decide the stage of `self` and move those whose stage changed.

        Contacts whose manual stage is locked stay put. Returns the number
        of contacts moved. A contact leaving winback is logged as won back.
        """
        today = today or fields.Date.context_today(self)
        rows = self._mlm_stage_rows(company)
        inputs = self._mlm_stage_inputs(company, today, rows)
        return self._mlm_apply_stages(company, today, inputs, rows)

    @api.model
    def _mlm_apply_stages(self, company, today, inputs, rows):
        """Move the contacts of `inputs` ({partner id: StageInput}) whose
        decided stage differs from their current one; `rows`: {partner id:
        (stage id, kept until, ...)}. One write per target stage (_mlm_move).
        Returns the number of contacts moved."""
        params = self._mlm_stage_params(company)
        stages = self.env["loyalty.mlm.stage"]._by_code()
        winback_id = stages["winback"].id
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
    def _mlm_lifecycle_rows(self, company, today):
        """Every customer contact of the company (customers, members and
        anyone with a qualifying order; commercial partners only), each with
        what decides his stage, in one query: id, stage id, kept until, churn,
        segment, quadrant, scored on, the five order figures of
        _mlm_stage_order_stats_query, successful referrals."""
        # Scores are written through the contact's fields: flush everything.
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                WITH orders AS (%(orders)s),
                -- as _mlm_successful_referrals counts them, for everybody
                referrals AS (
                    SELECT mlm_referrer_id AS id, COUNT(*) AS count
                      FROM res_partner
                     WHERE mlm_referrer_id IS NOT NULL
                       AND mlm_referral_date IS NOT NULL
                  GROUP BY mlm_referrer_id
                )
                SELECT p.id, p.mlm_stage_id, p.mlm_stage_locked_until,
                       s.churn_risk, s.usage_segment, s.quadrant, s.score_date,
                       o.first_order, o.last_order, COALESCE(o.orders, 0),
                       COALESCE(o.orders_12m, 0), COALESCE(o.orders_prev_12m, 0),
                       COALESCE(r.count, 0)
                  FROM res_partner p
             LEFT JOIN orders o ON o.partner_id = p.id
             LEFT JOIN loyalty_mlm_partner_score s
                    ON s.partner_id = p.id AND s.company_id = %(company)s
             LEFT JOIN referrals r ON r.id = p.id
                 WHERE o.partner_id IS NOT NULL
                    OR (p.active AND p.id = p.commercial_partner_id
                        AND (p.customer_rank > 0 OR p.mlm_member_since IS NOT NULL)
                        AND (p.company_id IS NULL OR p.company_id = %(company)s))
                """,
                orders=self._mlm_stage_order_stats_query(company, today),
                company=company.id,
            )
        )
        return self.env.cr.fetchall()

    @api.model
    def _mlm_refresh_all_stages(self, companies=None):
        """Every customer's stage from the rules; run by the nightly score job
        once the scores are fresh. Resumable by construction: contacts already
        in their stage are skipped. Returns the number of contacts moved."""
        moved = 0
        for company in companies or self.env["res.company"].search([]):
            # Every customer's row and inputs are built in memory at once.
            with gc_paused():
                moved += self._mlm_refresh_company_stages(company)
        return moved

    @api.model
    def _mlm_refresh_company_stages(self, company):
        """_mlm_refresh_stages of every customer of `company` (see
        _mlm_lifecycle_rows), from one query rather than one per input."""
        today = fields.Date.context_today(self)
        rows, inputs = {}, {}
        stage_input = self._mlm_stage_input
        for row in self._mlm_lifecycle_rows(company, today):
            # id | stage, kept until | 4 scores | 5 order figures | referrals
            rows[row[0]] = row[1:3]
            inputs[row[0]] = stage_input(row[7:12], row[3:7], row[12])
        return self._mlm_apply_stages(company, today, inputs, rows)

    def _mlm_stage_event(self, company):
        """An order was confirmed or paid: first order (acquisition to
        onboarding) and winback customers move now, not at night."""
        partners = self.commercial_partner_id
        ids = self.env["loyalty.mlm.stage"]._mlm_ids_by_code()
        moving = {ids.get("acquisition"), ids.get("winback")}
        waiting = partners.filtered(
            lambda p: not p.mlm_stage_id or p.mlm_stage_id.id in moving
        )
        if waiting:
            # Stage bookkeeping is the system's: a salesperson or cashier need
            # not read every order involved (the history keeps who caused it).
            waiting.sudo()._mlm_refresh_stages(company)

    # ------------------------------------------------------------
    # Segment scores
    # ------------------------------------------------------------
    # RFM, usage segment, loyalty x profitability quadrant, churn risk and
    # CLV of each customer (commercial partner), per company: stored in
    # loyalty.mlm.partner.score (one narrow row per customer and company, see
    # there why not in res_partner) and shown here as fields of the contact
    # in the user's current company. They search, group and sort in SQL
    # (_field_to_sql below), like stored fields.
    #
    # Computed by tools/scoring.py from one SQL aggregation of the orders and
    # written back with set-based SQL (see _cron_mlm_refresh_scores). Empty
    # (not zero) for customers without orders. Times are UTC: an order counts
    # on its UTC day.

    mlm_score_date = fields.Date(
        string="Scored On",
        compute="_compute_mlm_scores",
        search="_search_mlm_score_date",
        help="The day these scores were computed (a refresh that finds the same "
        "scores leaves them, and this day, as they are); empty: no order, no "
        "scores.",
        groups=LOYALTY_GROUPS,
    )
    mlm_recency_score = fields.Integer(
        string="Recency Score",
        compute="_compute_mlm_scores",
        search="_search_mlm_recency_score",
        help="1 to 5: quintile of the days since the last order "
        "(5: the most recent fifth of the customers).",
        groups=LOYALTY_GROUPS,
    )
    mlm_frequency_score = fields.Integer(
        string="Frequency Score",
        compute="_compute_mlm_scores",
        search="_search_mlm_frequency_score",
        help="1 to 5: quintile of the number of orders over 12 months.",
        groups=LOYALTY_GROUPS,
    )
    mlm_monetary_score = fields.Integer(
        string="Monetary Score",
        compute="_compute_mlm_scores",
        search="_search_mlm_monetary_score",
        help="1 to 5: quintile of the revenue over 12 months, net of refunds.",
        groups=LOYALTY_GROUPS,
    )
    mlm_rfm_code = fields.Char(
        string="RFM",
        compute="_compute_mlm_scores",
        search="_search_mlm_rfm_code",
        help="Recency, frequency and monetary scores in one code, e.g. 545.",
        groups=LOYALTY_GROUPS,
    )
    mlm_usage_segment = fields.Selection(
        USAGE_SEGMENT_SELECTION,
        string="Usage Segment",
        compute="_compute_mlm_scores",
        search="_search_mlm_usage_segment",
        help="Heavy: top customers by revenue over 12 months; low: the bottom "
        "ones or below the threshold (Settings).",
        groups=LOYALTY_GROUPS,
    )
    mlm_quadrant = fields.Selection(
        QUADRANT_SELECTION,
        string="Loyalty x Profit",
        compute="_compute_mlm_scores",
        search="_search_mlm_quadrant",
        help="True Friend: loyal and profitable; Butterfly: profitable, not "
        "loyal; Barnacle: loyal, not profitable; Stranger: neither.",
        groups=LOYALTY_GROUPS,
    )
    mlm_churn_risk = fields.Integer(
        string="Churn Risk (%)",
        compute="_compute_mlm_scores",
        search="_search_mlm_churn_risk",
        aggregator="avg",
        help="0 while the customer orders at his usual rhythm, 50 when he is one "
        "usual interval late, 75 at two, towards 100.",
        groups=LOYALTY_GROUPS,
    )
    mlm_clv = fields.Float(
        string="Lifetime Value",
        compute="_compute_mlm_scores",
        search="_search_mlm_clv",
        digits=(16, 2),
        aggregator="sum",
        help="Expected future margin: average order x orders a year x margin "
        "rate x expected years retained (from the churn risk, capped).",
        groups=LOYALTY_GROUPS,
    )

    @api.depends_context("company")
    def _compute_mlm_scores(self):
        rows = {}
        if self.ids:
            self.env.cr.execute(
                SQL(
                    "SELECT partner_id, %s FROM loyalty_mlm_partner_score"
                    " WHERE company_id = %s AND partner_id = ANY(%s)",
                    SQL(", ").join(SQL.identifier(c) for c in SCORE_FIELDS.values()),
                    self.env.company.id,
                    self.ids,
                )
            )
            rows = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        empty = (False,) * len(SCORE_FIELDS)
        for partner in self:
            values = rows.get(partner.id, empty)
            for fname, value in zip(SCORE_FIELDS, values, strict=True):
                partner[fname] = value if value is not None else False

    def _mlm_search_score(self, fname, operator, value):
        """Domain of the contacts whose score `fname` (in the current company)
        satisfies (operator, value), with a stored field's semantics: a contact
        without scores has them all empty (numbers: 0)."""
        # A search method bypasses the field's groups: searching by score
        # would read it. Cashiers may search (a targeted programme's domain,
        # checked at the register, can test scores); they never read them.
        if not self.env.su and not self.env.user.has_groups(MEMBER_GROUPS):
            raise AccessError(
                _("Only Loyalty Users can find contacts by their scores.")
            )
        query = Query(self.env, self._table, self._table_sql)
        query.add_where(
            self._condition_to_sql(self._table, fname, operator, value, query)
        )
        return [("id", "in", query)]

    _search_mlm_score_date = _mlm_score_searcher("mlm_score_date")
    _search_mlm_recency_score = _mlm_score_searcher("mlm_recency_score")
    _search_mlm_frequency_score = _mlm_score_searcher("mlm_frequency_score")
    _search_mlm_monetary_score = _mlm_score_searcher("mlm_monetary_score")
    _search_mlm_rfm_code = _mlm_score_searcher("mlm_rfm_code")
    _search_mlm_usage_segment = _mlm_score_searcher("mlm_usage_segment")
    _search_mlm_quadrant = _mlm_score_searcher("mlm_quadrant")
    _search_mlm_churn_risk = _mlm_score_searcher("mlm_churn_risk")
    _search_mlm_clv = _mlm_score_searcher("mlm_clv")

    def _field_to_sql(self, alias, fname, query=None, flush=True):
        """Score fields in SQL: the column of the current company's score row,
        so they filter, group and sort like stored fields (Odoo derives the
        fields' groupable and sortable from this)."""
        column = SCORE_FIELDS.get(fname)
        if not column:
            return super()._field_to_sql(alias, fname, query, flush)
        if query is None:
            return SQL(
                "(SELECT s.%s FROM loyalty_mlm_partner_score s"
                " WHERE s.partner_id = %s AND s.company_id = %s)",
                SQL.identifier(column),
                SQL.identifier(alias, "id"),
                self.env.company.id,
            )
        score_alias = query.make_alias(alias, "mlm_score")
        query.add_join(
            "LEFT JOIN",
            score_alias,
            "loyalty_mlm_partner_score",
            SQL(
                "%s = %s AND %s = %s",
                SQL.identifier(score_alias, "partner_id"),
                SQL.identifier(alias, "id"),
                SQL.identifier(score_alias, "company_id"),
                self.env.company.id,
            ),
        )
        return SQL.identifier(score_alias, column)

    def action_mlm_refresh_scores(self):
        """Refresh the scores of these customers now (incremental)."""
        if not self.env.user.has_group(LOYALTY_GROUPS):
            raise AccessError(_("Only Loyalty Users can refresh segment scores."))
        self.check_access("read")
        self._mlm_refresh_scores()
        return True

    def _mlm_refresh_scores(self, company=None):
        """Rescore the commercial partners of `self` against the last full run.

        Does nothing for a company that never had a full run (the nightly job
        will score everybody). Returns the number of customers rescored.
        """
        company = company or self.env.company
        reference_run = self.env["loyalty.mlm.score.run"]._mlm_reference_run(company)
        if not reference_run or not self:
            return 0
        return self._mlm_rescore(company, self.commercial_partner_id.ids, reference_run)

    @api.model
    def _mlm_scores_mark_dirty(self):
        """Ask for an incremental score refresh as soon as this transaction ends.

        Cheap (one trigger row): call it once per business event that changes
        what a customer bought (order confirmed or cancelled, POS session
        closed, credit note posted), not per line. The refresh itself finds the
        customers whose orders changed since the last run.
        """
        # Once per transaction: a batch of confirmations needs one refresh.
        marked = self.env.cr.precommit.data
        if marked.get("loyalty_mlm.scores_dirty"):
            return
        cron = self.env.ref(
            "loyalty_mlm.ir_cron_scores_incremental", raise_if_not_found=False
        )
        if cron:
            # sudo: triggering a system job; any user may ask for the refresh.
            cron.sudo()._trigger()
            marked["loyalty_mlm.scores_dirty"] = True

    # Crons ------------------------------------------------------------------

    @api.model
    def _cron_mlm_refresh_scores(
        self,
        batch_size=SCORE_BATCH_SIZE,
        time_budget=SCORE_TIME_BUDGET,
        companies=None,
        today=None,
    ):
        """Nightly: rescore every customer of every company, resumably.

        Each call aggregates all orders of a company in one query, scores the
        whole population in memory (tools/scoring.py:score_population) and
        writes the contacts in batches of `batch_size`, one statement each
        (new customers inserted first, then the others updated), until
        `time_budget` seconds have passed (at least one batch). It reports
        its progress to ir.cron, which commits and calls again while contacts
        remain: the next call resumes the same run (a loyalty.mlm.score.run
        still "running").

        Only contacts whose stored scores differ from the computed ones are
        written, so the contacts an interrupted call already wrote are skipped
        when it resumes, and a nightly run rewrites only the customers whose
        scores moved. A killed call loses only its own uncommitted batches.
        Returns the number of contacts left to write. `companies`: only these
        (default: all); `today`: the scoring day of a new run (default: today).
        """
        Run = self.env["loyalty.mlm.score.run"].sudo()
        domain = [("mode", "=", "full"), ("state", "=", "running")]
        if companies is not None:
            domain.append(("company_id", "in", companies.ids))
        runs = Run.search(domain)
        if not runs:
            runs = Run._mlm_start_full_runs(companies, today)
        deadline = time.monotonic() + time_budget
        done = remaining = 0
        for run in runs.sorted(lambda run: run.company_id.id):
            if done and time.monotonic() > deadline:
                remaining += max(1, run.customer_count - run.done_count)
                continue
            written, left = self._mlm_full_run_step(run, batch_size, deadline)
            done += written
            remaining += left
        if not remaining and not self.env.context.get("mlm_scores_only"):
            # One nightly action: the stages are decided from fresh scores.
            # (mlm_scores_only: the benchmark times the two steps apart.)
            # The treatments follow in their own job, in batches, rather than
            # inside the bulk stage moves.
            done += self.with_context(
                mlm_defer_treatments=True
            )._mlm_refresh_all_stages(companies)
            self.env["loyalty.mlm.treatment"]._mlm_trigger_run()
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return remaining

    @api.model
    def _cron_mlm_refresh_scores_incremental(self, companies=None):
        """Rescore the customers with orders or refunds since the last run.

        Each is scored against the cut points of the company's last full run,
        so he gets the score a full run would give him. Companies without a
        full run yet are left to the nightly job. Returns the number of
        contacts written. `companies`: only these (default: all).
        """
        Run = self.env["loyalty.mlm.score.run"].sudo()
        written = 0
        if companies is None:
            companies = self.env["res.company"].sudo().search([])
        for company in companies:
            reference_run = Run._mlm_reference_run(company)
            if not reference_run:
                continue
            last = Run.search(
                [("company_id", "=", company.id), ("state", "=", "done")], limit=1
            )
            since = last.date_start - SCORE_INCREMENTAL_OVERLAP
            dirty = self._mlm_dirty_partner_ids(company, since)
            written += self._mlm_rescore(company, dirty, reference_run)
        self.env["ir.cron"]._notify_progress(done=written, remaining=0)
        return written

    # Refresh steps ----------------------------------------------------------

    def _mlm_full_run_step(self, run, batch_size, deadline):
        """One call's share of a full run: (contacts written, contacts left)."""
        # Every customer's row, stats and scores are built in memory at once.
        with gc_paused():
            return self._mlm_full_run_batches(run, batch_size, deadline)

    def _mlm_full_run_batches(self, run, batch_size, deadline):
        company = run.company_id
        today = run.score_date
        population = self._mlm_score_population(company, today)
        params = self._mlm_score_params(company, population_interval(population))
        scores, reference = score_population(population, today, params)
        self._mlm_scores_lock(company)
        stored = self._mlm_stored_scores(company)
        changed = sorted(
            (
                (pid, values)
                for pid, values in zip(population.partner_ids, scores, strict=True)
                if stored.get(pid) != values
            ),
            key=itemgetter(0),
        )
        to_clear = sorted(stored.keys() - set(population.partner_ids))
        # New customers first (inserted), then those whose scores moved.
        new = [item for item in changed if item[0] not in stored]
        moved = [item for item in changed if item[0] in stored]
        todo = [
            *(
                (self._mlm_scores_write, batch)
                for batch in split_every(batch_size, new)
            ),
            *(
                (self._mlm_scores_update, batch)
                for batch in split_every(batch_size, moved)
            ),
        ]
        written = cleared = 0
        for write, batch in todo:
            write(company, today, dict(batch))
            written += len(batch)
            if time.monotonic() > deadline:
                break
        if written == len(changed) and (not written or time.monotonic() <= deadline):
            for batch in split_every(batch_size, to_clear):
                self._mlm_scores_clear(company, batch)
                cleared += len(batch)
                if time.monotonic() > deadline:
                    break
        left = len(changed) - written + len(to_clear) - cleared
        values = {
            "customer_count": len(scores),
            "done_count": run.done_count + written,
            "cleared_count": run.cleared_count + cleared,
        }
        if not left:
            values.update(
                state="done", date_end=fields.Datetime.now(), reference=reference
            )
        run.write(values)
        if not left:
            run._mlm_garbage_collect()
            _logger.info(
                "Segment scores of %s: %s customers, %s contacts written, %s cleared",
                company.name,
                len(scores),
                run.done_count,
                run.cleared_count,
            )
        return written + cleared, left

    def _mlm_rescore(self, company, partner_ids, reference_run):
        """Rescore `partner_ids` (commercial partners) against a full run.

        Logged as an incremental run (its start is where the next incremental
        refresh looks from); writes only the contacts whose scores changed.
        Returns the number of customers rescored.
        """
        today = fields.Date.today()
        run = (
            self.env["loyalty.mlm.score.run"]
            .sudo()
            .create(
                {
                    "company_id": company.id,
                    "mode": "incremental",
                    "date_start": fields.Datetime.now(),
                    "score_date": today,
                }
            )
        )
        written = cleared = 0
        if partner_ids:
            reference = reference_run.reference
            stats = self._mlm_score_stats(company, today, partner_ids)
            params = self._mlm_score_params(company, reference["company_interval_days"])
            scores = {
                pid: self._mlm_score_values_key(values)
                for pid, values in score_with_reference(
                    stats, today, params, reference
                ).items()
            }
            self._mlm_scores_lock(company)
            stored = self._mlm_stored_scores(company, partner_ids)
            changed = {
                pid: values
                for pid, values in scores.items()
                if stored.get(pid) != values
            }
            to_clear = sorted(stored.keys() - scores.keys())
            for batch in split_every(SCORE_BATCH_SIZE, sorted(changed)):
                self._mlm_scores_update(
                    company, today, {pid: changed[pid] for pid in batch}
                )
                written += len(batch)
            for batch in split_every(SCORE_BATCH_SIZE, to_clear):
                self._mlm_scores_clear(company, batch)
                cleared += len(batch)
        run.write(
            {
                "state": "done",
                "date_end": fields.Datetime.now(),
                "customer_count": len(partner_ids),
                "done_count": written,
                "cleared_count": cleared,
            }
        )
        return len(partner_ids)

    # SQL --------------------------------------------------------------------

    @api.model
    def _mlm_score_params(self, company, interval):
        return ScoringParams(
            heavy_pct=company.mlm_score_heavy_pct,
            low_pct=company.mlm_score_low_pct,
            low_threshold=company.mlm_score_low_threshold,
            loyalty_split_pct=company.mlm_score_loyalty_split_pct,
            profit_split_pct=company.mlm_score_profit_split_pct,
            default_margin_pct=company.mlm_score_default_margin_pct,
            company_interval_days=interval,
            clv_horizon_cap_years=company.mlm_score_clv_years,
        )

    @api.model
    def _mlm_score_stats_query(self, company, today, partner_ids=None, previous=True):
        """The aggregation behind the scores: one row per commercial partner.

        Inputs, all in company currency, of `company` only:

        * confirmed sale orders (state sale): one order each, revenue the
          untaxed amount converted at the order's rate; margin the order's
          margin (sale_margin, from its lines' costs), or the default margin %
          of the amount when none of its lines has a cost (the margin then
          equals the amount). A line without cost in an order that has other
          costed lines counts at its full price (sale_margin's own rule);
        * paid, done or invoiced POS orders: an order when the total is not
          negative, else a refund (revenue only); margin price - cost per line,
          or the default margin % of the line when it has no cost;
        * posted credit notes on confirmed sale orders: negative revenue and
          margin (at the refunded line's margin rate), on the credit note's day;
        * cancelled orders count for nothing.

        Columns: partner id, days from the first and from the last order to
        `today` (negative for orders dated after it), orders_12m, revenue_12m,
        margin_12m, orders_total, revenue_total and, with `previous`,
        orders_prev_12m and revenue_prev_12m (the scores do not need them).
        Archived customers are left out (their scores are cleared). Orders
        count on their UTC day; "12m" is the 12 months up to `today`.
        """
        rate = company.mlm_score_default_margin_pct / 100.0
        restrict = SQL()
        if partner_ids is not None:
            restrict = SQL(
                "AND o.partner_id IN (SELECT id FROM res_partner"
                " WHERE commercial_partner_id = ANY(%s))",
                list(partner_ids),
            )
        # "Within 12 months": an order day after today - 1 year, i.e. from
        # the next midnight on (timestamps are compared as they are, rather
        # than casting each row).
        midnight = datetime.min.time()
        day_12m = datetime.combine(today - relativedelta(years=1), midnight)
        day_12m += timedelta(days=1)
        day_24m = datetime.combine(today - relativedelta(years=2), midnight)
        day_24m += timedelta(days=1)

        # Every source yields one row per order, refund, line or credit note
        # line into a single stream, aggregated once per commercial partner
        # (see _mlm_score_rows for how). Each row carries its revenue once,
        # split into "last 12 months" and the rest by the aggregates' filters;
        # the margin is kept for the last 12 months only, as NULL elsewhere,
        # so that its expression is evaluated only where it counts. Sums stay
        # numeric: exact, so the scores never depend on the order rows were
        # added in.
        def row(when, is_order, revenue, margin):
            """The stream's columns for one source, as SQL."""
            return SQL(
                """
                o.partner_id, %(when)s AS at, %(is_order)s AS is_order,
                %(revenue)s AS revenue,
                CASE WHEN %(when)s >= %(day_12m)s THEN %(margin)s END AS margin_12m
                """,
                when=when,
                is_order=is_order,
                revenue=revenue,
                margin=margin,
                day_12m=day_12m,
            )

        def in_company_currency(amount):
            return SQL(
                "CASE WHEN o.currency_rate = 1 THEN %s"
                " ELSE %s / COALESCE(NULLIF(o.currency_rate, 0), 1) END",
                amount,
                amount,
            )

        sale = row(
            SQL("o.date_order"),
            SQL("TRUE"),
            in_company_currency(SQL("o.amount_untaxed")),
            in_company_currency(
                SQL(
                    "CASE WHEN o.margin IS NULL OR o.margin = o.amount_untaxed"
                    " THEN o.amount_untaxed * %s ELSE o.margin END",
                    rate,
                )
            ),
        )
        pos = row(
            SQL("o.date_order"),
            SQL("o.amount_total >= 0"),
            in_company_currency(SQL("(o.amount_total - o.amount_tax)")),
            SQL("NULL::numeric"),
        )
        pos_line = row(
            SQL("o.date_order"),
            SQL("FALSE"),
            SQL("NULL::numeric"),
            SQL(
                "CASE WHEN l.total_cost <> 0 THEN %s - l.total_cost ELSE %s END",
                in_company_currency(SQL("l.price_subtotal")),
                in_company_currency(SQL("l.price_subtotal * %s", rate)),
            ),
        )
        credit_note = row(
            SQL("COALESCE(m.invoice_date, m.date)::timestamp"),
            SQL("FALSE"),
            SQL("-aml.balance"),
            SQL(
                "-aml.balance * CASE WHEN sl.purchase_price <> 0"
                " AND sl.price_subtotal <> 0 THEN sl.margin / sl.price_subtotal"
                " ELSE %s END",
                rate,
            ),
        )
        valid_pos = SQL(
            "o.state IN ('paid', 'done', 'invoiced') AND o.company_id = %s", company.id
        )
        recent = SQL("r.at >= %s", day_12m)
        previous_columns = SQL()
        if previous:
            older = SQL("r.at >= %s AND r.at < %s", day_24m, day_12m)
            previous_columns = SQL(
                """,
                COUNT(*) FILTER (WHERE r.is_order AND %(older)s)::int,
                ROUND(COALESCE(SUM(r.revenue) FILTER (WHERE %(older)s), 0),
                      2)::float8
                """,
                older=older,
            )
        return SQL(
            """
            SELECT s.* FROM (
                SELECT p.commercial_partner_id AS id,
                       %(today)s - (MIN(r.at) FILTER (WHERE r.is_order))::date,
                       %(today)s - (MAX(r.at) FILTER (WHERE r.is_order))::date,
                       COUNT(*) FILTER (WHERE r.is_order AND %(recent)s)::int,
                       ROUND(COALESCE(SUM(r.revenue) FILTER (WHERE %(recent)s), 0),
                             2)::float8,
                       ROUND(COALESCE(SUM(r.margin_12m), 0), 2)::float8,
                       COUNT(*) FILTER (WHERE r.is_order)::int,
                       ROUND(COALESCE(SUM(r.revenue), 0), 2)::float8
                       %(previous_columns)s
                  FROM (
                    SELECT %(sale)s
                      FROM sale_order o
                     WHERE o.state = 'sale' AND o.company_id = %(company)s
                           %(restrict)s
                    UNION ALL
                    SELECT %(pos)s
                      FROM pos_order o
                     WHERE %(valid_pos)s %(restrict)s
                    UNION ALL
                    SELECT %(pos_line)s
                      FROM pos_order_line l
                      JOIN pos_order o ON o.id = l.order_id
                     WHERE %(valid_pos)s %(restrict)s
                       AND o.date_order >= %(day_12m)s  -- margin only
                    UNION ALL
                    SELECT %(credit_note)s
                      FROM account_move m
                      JOIN account_move_line aml ON aml.move_id = m.id
                      JOIN sale_order_line_invoice_rel rel
                        ON rel.invoice_line_id = aml.id
                      JOIN sale_order_line sl ON sl.id = rel.order_line_id
                      JOIN sale_order o ON o.id = sl.order_id
                     WHERE m.move_type = 'out_refund' AND m.state = 'posted'
                       AND m.company_id = %(company)s
                       AND o.state = 'sale' AND o.company_id = %(company)s
                           %(restrict)s
                  ) r
                  JOIN res_partner p ON p.id = r.partner_id
                 GROUP BY p.commercial_partner_id
                HAVING COUNT(*) FILTER (WHERE r.is_order) > 0
            ) s
             WHERE s.id IS NOT NULL AND NOT EXISTS (
                   SELECT FROM res_partner cp WHERE cp.id = s.id AND NOT cp.active)
            """,
            today=today,
            recent=recent,
            previous_columns=previous_columns,
            sale=sale,
            pos=pos,
            pos_line=pos_line,
            credit_note=credit_note,
            valid_pos=valid_pos,
            company=company.id,
            restrict=restrict,
            day_12m=day_12m,
        )

    @api.model
    def _mlm_score_rows(self, company, today, partner_ids=None, previous=True):
        """The rows of _mlm_score_stats_query, fetched."""
        self.env.flush_all()
        cr = self.env.cr
        # One aggregation over every order: give it the memory to stay off
        # disk (SET LOCAL: this transaction only; reset right after). Grouped
        # by sorting rather than hashing: the planner's pick, one hash table
        # holding three numeric sums for each of 100,000 customers, takes a
        # third longer than workers that each sort their share and hand
        # their sums on in customer order (measured: bench/README.md).
        # (jit: compiling the expressions costs more than it saves here.)
        cr.execute(
            SQL(
                "SET LOCAL work_mem = %s; SET LOCAL jit = off;"
                " SET LOCAL enable_hashagg = off",
                SCORE_WORK_MEM,
            )
        )
        cr.execute(self._mlm_score_stats_query(company, today, partner_ids, previous))
        rows = cr.fetchall()
        cr.execute(SQL("RESET work_mem; RESET jit; RESET enable_hashagg"))
        return rows

    @api.model
    def _mlm_score_stats(self, company, today, partner_ids=None):
        """CustomerStats of the company's customers (or of `partner_ids`)."""
        stats = []
        rows = self._mlm_score_rows(company, today, partner_ids)
        for pid, first, last, o12, r12, m12, total, rtotal, oprev, rprev in rows:
            interval = None
            if total > 1:
                interval = (first - last) / (total - 1)
            stats.append(
                CustomerStats(
                    pid,
                    today - timedelta(days=first),
                    today - timedelta(days=last),
                    o12,
                    r12,
                    oprev,
                    rprev,
                    m12,
                    total,
                    rtotal,
                    interval,
                )
            )
        return stats

    @api.model
    def _mlm_score_population(self, company, today):
        """The scored Population of the company (the full run's input)."""
        rows = self._mlm_score_rows(company, today, previous=False)
        if not rows:
            return population_from_stats([], today)
        # One list per column (a comprehension each: much cheaper than
        # zip(*rows) over 100,000 rows).
        ids, first, last, o12, r12, m12, total, rtotal = (
            [row[column] for row in rows] for column in range(8)
        )
        # Mean days between orders, as _mlm_score_stats computes it.
        intervals = [
            (days_first - days_last) / (count - 1) if count > 1 else None
            for days_first, days_last, count in zip(first, last, total, strict=True)
        ]
        return Population(ids, first, last, o12, r12, m12, total, rtotal, intervals)

    @api.model
    def _mlm_dirty_partner_ids(self, company, since):
        """Commercial partners with orders or credit notes written after `since`."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT p.commercial_partner_id
                  FROM sale_order o JOIN res_partner p ON p.id = o.partner_id
                 WHERE o.company_id = %(company)s AND o.write_date > %(since)s
                UNION
                SELECT p.commercial_partner_id
                  FROM pos_order o JOIN res_partner p ON p.id = o.partner_id
                 WHERE o.company_id = %(company)s AND o.write_date > %(since)s
                UNION
                SELECT m.commercial_partner_id
                  FROM account_move m
                 WHERE m.move_type = 'out_refund' AND m.company_id = %(company)s
                   AND m.write_date > %(since)s
                   AND m.commercial_partner_id IS NOT NULL
                """,
                company=company.id,
                since=since,
            )
        )
        return sorted(row[0] for row in self.env.cr.fetchall())

    @staticmethod
    def _mlm_score_values_key(values):
        """The comparable part of a customer's scores (all but the day), as
        the tuple the refresh writes and compares: the values of
        tools/scoring.py:SCORE_KEYS."""
        return tuple(values[key] for key in SCORE_KEYS)

    @api.model
    def _mlm_stored_scores(self, company, partner_ids=None):
        """{partner id: _mlm_score_values_key} of the customers with scores in
        `company` (among `partner_ids`, if given), in one query."""
        restrict = SQL()
        if partner_ids is not None:
            restrict = SQL("AND partner_id = ANY(%s)", list(partner_ids))
        self.env.cr.execute(
            SQL(
                """
                SELECT partner_id, recency_score, frequency_score, monetary_score,
                       rfm_code, usage_segment, quadrant, churn_risk, clv
                  FROM loyalty_mlm_partner_score
                 WHERE company_id = %s %s
                """,
                company.id,
                restrict,
            )
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    @api.model
    def _mlm_scores_lock(self, company):
        """Take the company's score lock until the transaction ends.

        Every refresh holds it from reading the stored scores to writing its
        own, so the customers it finds without scores still have none when it
        inserts theirs (see _mlm_scores_write): two refreshes of one company
        (the nightly job, the hourly one, the button) take turns.
        """
        self.env.cr.execute(
            SQL("SELECT pg_advisory_xact_lock(%s, %s)", SCORE_LOCK_KEY, company.id)
        )

    @api.model
    def _mlm_scores_values(self, scores):
        """The unnest() of `scores` ({partner_id: _mlm_score_values_key}), as
        SQL: the rows v(id, r, f, m, code, segment, quadrant, churn, clv)."""

        def array(items):
            # One array literal ('{1,2,3}') passed as a parameter, which
            # PostgreSQL parses in one go (psycopg2's ARRAY[...] costs a parse
            # per element). Items are numbers and selection keys or digit
            # codes: nothing that needs quoting in an array literal.
            if None in items:
                items = ["NULL" if item is None else item for item in items]
            return "{" + ",".join(map(str, items)) + "}"

        r, f, m, code, segment, quadrant, churn, clv = map(
            array, zip(*scores.values(), strict=True)
        )
        return SQL(
            """
            unnest(%(ids)s::int[], %(r)s::int[], %(f)s::int[], %(m)s::int[],
                   %(code)s::varchar[], %(segment)s::varchar[],
                   %(quadrant)s::varchar[], %(churn)s::int[], %(clv)s::float8[])
                AS v(id, r, f, m, code, segment, quadrant, churn, clv)
            """,
            ids=array(list(scores)),
            r=r,
            f=f,
            m=m,
            code=code,
            segment=segment,
            quadrant=quadrant,
            churn=churn,
            clv=clv,
        )

    @api.model
    def _mlm_scores_write(self, company, day, scores):
        """Insert `scores` ({partner_id: _mlm_score_values_key}) of customers
        without scores in `company`, dated `day`, in one statement.

        A plain insert: the caller holds _mlm_scores_lock since it found them
        without scores. (An upsert checks and confirms each row on top, a
        fifth of the nightly write when every customer is new.) Sent with COPY,
        which puts the rows straight into the table: no arrays to build, parse
        and unnest first (a third less time for 100,000 new customers).
        """
        # A line per customer in COPY's text format. The values are numbers,
        # selection keys and digit codes: nothing to escape but NULL.
        fixed = [str(company.id), str(day)]
        line = "\t".join(["%s", *fixed] + ["%s"] * len(SCORE_KEYS)) + "\n"
        text = "".join(
            [
                line % (pid, *values)
                if None not in values
                else line % (pid, *(r"\N" if v is None else v for v in values))
                for pid, values in scores.items()
            ]
        )
        self._mlm_copy(
            "loyalty_mlm_partner_score",
            ["partner_id", "company_id", "score_date"]
            + [SCORE_FIELDS[key] for key in SCORE_KEYS],
            text,
        )
        self._mlm_scores_invalidate()
        return len(scores)

    @api.model
    def _mlm_copy(self, table, columns, text):
        """COPY `text` (COPY's text format, a line per row) into `columns` of
        `table`: one statement, counted as one like those of cr.execute (the
        query budgets of the tests and the benchmark see it)."""
        cr = self.env.cr
        # As Odoo does for its own COPY (models.py, _ensure_xml_id): psycopg2
        # cannot COPY under an asynchronous wait callback (gevent).
        callback = psycopg2.extensions.get_wait_callback()
        psycopg2.extensions.set_wait_callback(None)
        try:
            cr.copy_from(io.StringIO(text), table=table, columns=columns)
        finally:
            psycopg2.extensions.set_wait_callback(callback)
        cr.sql_log_count += 1
        sql_db.sql_counter += 1

    @api.model
    def _mlm_scores_update(self, company, day, scores):
        """Rewrite `scores` ({partner_id: _mlm_score_values_key}) of customers
        with scores in `company`, dated `day`, in one statement (an upsert:
        rows gone meanwhile come back)."""
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO loyalty_mlm_partner_score AS s (
                       partner_id, company_id, score_date, recency_score,
                       frequency_score, monetary_score, rfm_code, usage_segment,
                       quadrant, churn_risk, clv)
                SELECT v.id, %s, %s, v.r, v.f, v.m, v.code, v.segment,
                       v.quadrant, v.churn, v.clv
                  FROM %s
                ON CONFLICT (partner_id, company_id) DO UPDATE
                   SET score_date = EXCLUDED.score_date,
                       recency_score = EXCLUDED.recency_score,
                       frequency_score = EXCLUDED.frequency_score,
                       monetary_score = EXCLUDED.monetary_score,
                       rfm_code = EXCLUDED.rfm_code,
                       usage_segment = EXCLUDED.usage_segment,
                       quadrant = EXCLUDED.quadrant,
                       churn_risk = EXCLUDED.churn_risk,
                       clv = EXCLUDED.clv
                """,
                company.id,
                day,
                self._mlm_scores_values(scores),
            )
        )
        self._mlm_scores_invalidate()
        return len(scores)

    @api.model
    def _mlm_scores_invalidate(self):
        """Forget cached scores after the SQL writes (and the related badges)."""
        self.env["loyalty.mlm.partner.score"].invalidate_model()
        self.invalidate_model(list(SCORE_FIELDS))
        for model in ("crm.lead", "sale.order"):
            fnames = [name for name in SCORE_FIELDS if name in self.env[model]._fields]
            self.env[model].invalidate_model(fnames)

    @api.model
    def _mlm_scores_clear(self, company, partner_ids):
        """Remove the scores of `partner_ids` in `company`, in one statement."""
        self.env.cr.execute(
            SQL(
                "DELETE FROM loyalty_mlm_partner_score"
                " WHERE company_id = %s AND partner_id = ANY(%s)",
                company.id,
                list(partner_ids),
            )
        )
        self._mlm_scores_invalidate()
        return self.env.cr.rowcount

    # Demo -------------------------------------------------------------------

    @api.model
    def _mlm_scores_demo(self):
        """Order histories for the score demo customers, then a full refresh.

        Confirmed through the real sale flow, then dated back. Every usage
        segment and quadrant is represented (see demo/res_partner_scores_demo.xml).
        """
        ref = self.env.ref
        beans = ref("loyalty_mlm.product_espresso_beans_demo")
        papers = ref("loyalty_mlm.product_filter_papers_demo")
        story = {
            # customer: (product, quantity, [days ago of each order])
            "tf1": (beans, 3, range(10, 730, 30)),
            "tf2": (beans, 2, range(5, 730, 35)),
            "tf3": (beans, 1, range(12, 700, 30)),
            "risk": (beans, 4, range(180, 540, 14)),
            "bf1": (beans, 15, [30]),
            "bf2": (beans, 8, [120, 20]),
            "bf3": (beans, 10, [90]),
            "ba1": (papers, 10, range(7, 730, 35)),
            "ba2": (papers, 8, range(15, 730, 42)),
            "ba3": (papers, 12, range(3, 540, 30)),
            "ba4": (papers, 10, range(25, 730, 60)),
            "st1": (papers, 5, [600]),
            "st2": (beans, 1, [400, 500]),
            "st3": (papers, 3, [150]),
            "st4": (beans, 1, [450]),
            "md1": (beans, 2, range(45, 730, 90)),
        }
        now = fields.Datetime.now()
        orders = self.env["sale.order"]
        dates = []
        for key, (product, quantity, days_ago) in story.items():
            partner = ref(f"loyalty_mlm.res_partner_score_{key}_demo")
            for days in days_ago:
                orders |= orders.create(
                    {
                        "partner_id": partner.id,
                        "order_line": [
                            (
                                0,
                                0,
                                {"product_id": product.id, "product_uom_qty": quantity},
                            )
                        ],
                    }
                )
                dates.append(now - timedelta(days=days))
        orders.with_context(tracking_disable=True).action_confirm()
        for order, when in zip(orders, dates, strict=True):
            order.date_order = when
        while self._cron_mlm_refresh_scores(time_budget=600):
            pass

    # ------------------------------------------------------------
    # Bonuses, tiers, referral
    # ------------------------------------------------------------
    # Every bonus credits the member card through loyalty.card._mlm_post_points:
    # one balance, each bonus a ledger entry with its kind and source. Tiers
    # are per company (company-dependent), like the member programme.
    #
    # Where each step runs:
    # * order bonuses (tier, campaign), tier upgrade, referral: on sale order
    #   confirmation (SaleOrder._mlm_post_order_bonuses) and when the POS
    #   confirms an order's points (PosOrder.confirm_coupon_programs; referral
    #   on payment, PosOrder._process_saved_order); reversed with the order;
    # * welcome bonus and referral code: when a contact becomes a member
    #   (_mlm_enroll, order confirmation), with a nightly catch-up;
    # * tier downgrades and the birthday bonus: nightly jobs.

    mlm_tier_id = fields.Many2one(
        "loyalty.mlm.tier",
        string="Tier",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="Reached on the order that qualifies; lost at the nightly review "
        "after the grace period below the threshold.",
        groups=MEMBER_GROUPS,
    )
    # For the register (the POS loads no tier model).
    mlm_tier_name = fields.Char(
        related="mlm_tier_id.name", string="Tier Name", groups=MEMBER_GROUPS
    )
    mlm_tier_color = fields.Integer(
        related="mlm_tier_id.color", string="Tier Colour", groups=MEMBER_GROUPS
    )
    mlm_tier_below_since = fields.Date(
        string="Below Tier Since",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="First nightly review that found the member below their tier's "
        "threshold; downgraded when the grace period has passed.",
        groups=MEMBER_GROUPS,
    )
    mlm_tier_value = fields.Float(
        string="Tier Qualification (12 months)",
        compute="_compute_mlm_tier_value",
        digits=(16, 2),
        help="Points earned or net spend (see Settings) over the last 12 months.",
        groups=MEMBER_GROUPS,
    )
    mlm_tier_history_ids = fields.One2many(
        "loyalty.mlm.tier.history",
        "partner_id",
        string="Tier History",
        groups=MEMBER_GROUPS,
    )
    mlm_birthdate = fields.Date(
        string="Birthday",
        copy=False,
        help="Members get the birthday bonus on this day every year (29 February: "
        "on 28 February in other years).",
    )
    mlm_referral_code = fields.Char(
        string="Referral Code",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Given to every member: new customers quote it to be linked to them.",
    )
    mlm_referrer_id = fields.Many2one(
        "res.partner",
        string="Referred By",
        index="btree_not_null",
        copy=False,
        ondelete="set null",
        help="The member who brought this contact in: both get the referral "
        "bonus on this contact's first confirmed or paid order.",
    )
    mlm_referrer_code = fields.Char(
        string="Referrer's Code",
        compute="_compute_mlm_referrer_code",
        inverse="_inverse_mlm_referrer_code",
        help="Type the referral code the member gave to link the referrer.",
    )
    mlm_referral_date = fields.Date(
        string="Referral Rewarded On",
        readonly=True,
        copy=False,
        help="When the referral bonuses of this contact were credited (once).",
    )
    mlm_referred_ids = fields.One2many(
        "res.partner", "mlm_referrer_id", string="Referred Contacts"
    )
    mlm_referral_count = fields.Integer(
        string="Successful Referrals",
        compute="_compute_mlm_referral_count",
        help="Referred contacts whose first order was confirmed or paid.",
    )
    mlm_is_charity = fields.Boolean(
        string="Charity", help="Members can donate points to this contact."
    )

    _sql_constraints = [
        (
            "mlm_referral_code_unique",
            "UNIQUE(mlm_referral_code)",
            "Each referral code belongs to one member.",
        ),
    ]

    def _compute_mlm_tier_value(self):
        ids = [pid for pid in self.ids if isinstance(pid, int)]
        values = self._mlm_tier_values(self.env.company, ids) if ids else {}
        for partner in self:
            partner.mlm_tier_value = values.get(partner.id, 0.0)

    @api.depends("mlm_referrer_id.mlm_referral_code")
    def _compute_mlm_referrer_code(self):
        for partner in self:
            partner.mlm_referrer_code = partner.mlm_referrer_id.mlm_referral_code

    def _inverse_mlm_referrer_code(self):
        for partner in self:
            code = (partner.mlm_referrer_code or "").strip().upper()
            if code == (partner.mlm_referrer_id.mlm_referral_code or ""):
                continue
            referrer = self.browse()
            if code:
                # sudo: whoever registers a customer may look a code up.
                referrer = self.sudo().search(
                    [("mlm_referral_code", "=", code)], limit=1
                )
                if not referrer:
                    raise ValidationError(
                        _("No member has the referral code %(code)s.", code=code)
                    )
            partner.mlm_referrer_id = referrer.id

    @api.onchange("mlm_referrer_code")
    def _onchange_mlm_referrer_code(self):
        """Check a typed referral code at once (the register's customer editor
        is this form): a code that would be refused is cleared with the
        reason, before anything is saved. The constraint below still decides
        at save."""
        code = (self.mlm_referrer_code or "").strip().upper()
        if not code or code == (self.mlm_referrer_id.mlm_referral_code or ""):
            return None
        # sudo: whoever registers a customer may look a code up.
        referrer = self.sudo().search([("mlm_referral_code", "=", code)], limit=1)
        if not referrer:
            message = _("No member has the referral code %(code)s.", code=code)
        elif self._origin and self._origin in referrer._mlm_referrer_chain():
            message = _(
                "%(name)s cannot be referred by %(referrer)s: nobody can refer "
                "themselves, directly or through the chain of referrers.",
                name=self._origin.display_name,
                referrer=referrer.display_name,
            )
        else:
            return None
        self.mlm_referrer_code = self.mlm_referrer_id.mlm_referral_code
        # A dialog: the register shows dialogs, not the web client's toasts.
        return {
            "warning": {
                "type": "dialog",
                "title": _("Referral code refused"),
                "message": message,
            }
        }

    def _mlm_referrer_chain(self):
        """`self` and its referrers, up the chain (stops on a loop)."""
        self.ensure_one()
        chain, partner = self.browse(), self
        while partner and partner not in chain:
            chain |= partner
            partner = partner.mlm_referrer_id
        return chain

    @api.depends("mlm_referred_ids.mlm_referral_date")
    def _compute_mlm_referral_count(self):
        saved = self.filtered(lambda partner: isinstance(partner.id, int))
        counts = saved._mlm_successful_referrals() if saved else {}
        for partner in self:
            partner.mlm_referral_count = counts.get(partner.id, 0)

    @api.constrains("mlm_referrer_id")
    def _check_mlm_referrer_id(self):
        for partner in self:
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
        if self._has_cycle("mlm_referrer_id"):
            raise ValidationError(
                _(
                    "This referral would make a loop: %(name)s would end up "
                    "referring themselves through the chain of referrers.",
                    name=self[:1].display_name,
                )
            )

    def action_mlm_donate(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "loyalty_mlm.loyalty_mlm_donation_wizard_action"
        )
        action["context"] = {"default_partner_id": self.id}
        return action

    def action_mlm_open_referred(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "loyalty_mlm.res_partner_action_member"
        )
        action["domain"] = [("mlm_referrer_id", "=", self.id)]
        action["context"] = {"default_mlm_referrer_id": self.id}
        return action

    # New members -----------------------------------------------------------

    def _mlm_on_member(self, company):
        """Referral code and welcome bonus for the members among `self`.

        Called when contacts become members (_mlm_enroll, order confirmation)
        and by the nightly review as a catch-up (cards Odoo creates by itself,
        e.g. on a quotation). Idempotent.
        """
        members = self.filtered("mlm_member_since")
        members._mlm_ensure_referral_codes()
        members._mlm_grant_welcome_bonus(company)

    def _mlm_ensure_referral_codes(self):
        missing = self.filtered(lambda partner: not partner.mlm_referral_code)
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
                self.sudo()
                .with_context(active_test=False)
                .search_fetch(
                    [("mlm_referral_code", "in", list(batch))], ["mlm_referral_code"]
                )
            )
            codes |= batch - set(taken.mapped("mlm_referral_code"))
        return sorted(codes)[:count]

    def _mlm_grant_welcome_bonus(self, company):
        """Welcome bonus for members of `self` who joined since the bonus was
        switched on and never had one in `company` (once per member, ever)."""
        amount = company.mlm_welcome_bonus
        start = company.mlm_welcome_bonus_start
        program = company.mlm_program_id
        if amount <= 0 or not start or not program:
            return
        candidates = self.filtered(
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
                amount, "welcome", source=card.partner_id, reason=_("Welcome bonus")
            )

    # Order bonuses ------------------------------------------------------------

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
    def _mlm_order_bonus_parts(self, order, channel, earned, lines):
        """Tier and campaign bonuses of `order`, not posted:
        {card: [(kind, points, reason)]}, positive points only.

        `earned`: {member card: points the order earned on it}; `lines`:
        [(product, untaxed amount)] of its product lines. Bonuses are computed
        on the earned points only (never on other bonuses) and add up: a Gold
        member (x1.5) in a double points campaign (x2) gets 50% + 100%.
        The POS posts them in the same card write as the earned points.
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
                        _(
                            "%(tier)s tier bonus (x%(multiplier)s)",
                            tier=tier.name,
                            multiplier=format(tier.multiplier, "g"),
                        ),
                    )
                )
            campaigns = self.env["loyalty.mlm.campaign"]._mlm_bonuses(
                company, channel, order.date_order, partner, lines, base
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
                    reason=_("Bonuses of cancelled order %(order)s", order=order.name),
                )

    # Tiers --------------------------------------------------------------------

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
        self._mlm_flush_order_fields()
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

    def _mlm_tier_upgrade(self, company):
        """Move the members of `self` up at once when they reach a higher
        tier (on the order that makes them qualify); a member back above
        their tier's threshold is no longer counted as below it."""
        ladder = self.env["loyalty.mlm.tier"]._mlm_ladder(company)
        if not ladder or not self:
            return
        # Members on the top rung cannot move up: no need to add up their
        # year (the order sync's hot path), unless they were found below.
        top = ladder[-1]
        climbing = self.with_company(company).filtered(
            lambda partner: partner.mlm_tier_id != top or partner.mlm_tier_below_since
        )
        if not climbing:
            return
        values = self._mlm_tier_values(company, climbing.ids)
        moves = defaultdict(list)
        back_above = self.browse()
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
            self.browse(partner_ids)._mlm_tier_move(company, tier, code, values)

    def _mlm_tier_review(self, company, ladder, today):
        """Nightly decision for the members `self` of `company`.

        Up at once when they reach a higher tier; below the threshold, the
        first review starts the grace period and a review at least `grace
        days` later downgrades them to the tier they reach, unless they
        qualified again meanwhile.
        """
        values = self._mlm_tier_values(company, self.ids, today)
        grace = company.mlm_tier_grace_days
        moves = defaultdict(list)
        start_below = self.browse()
        back_above = self.browse()
        for partner in self.with_company(company):
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
        partners = self.with_company(company).sudo()
        partners.browse(start_below.ids).write({"mlm_tier_below_since": today})
        partners.browse(back_above.ids).write({"mlm_tier_below_since": False})
        for (tier, code), partner_ids in moves.items():
            self.browse(partner_ids)._mlm_tier_move(company, tier, code, values)

    def _mlm_tier_move(self, company, tier, reason_code, values):
        """Put `self` in `tier` (may be empty) in `company`: one write, one
        history row each."""
        if not self:
            return
        partners = self.with_company(company).sudo()
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
    def _cron_review_tiers(self, batch_size=5000):
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
            ladder = self.env["loyalty.mlm.tier"]._mlm_ladder(company)
            for batch in split_every(
                batch_size, self._mlm_programme_member_ids(company), self.browse
            ):
                if ladder:
                    batch._mlm_tier_review(company, ladder, today)
                batch._mlm_on_member(company)
                done += len(batch)
        self.env["ir.cron"]._notify_progress(done=done, remaining=0)
        return done

    # Referral -----------------------------------------------------------------

    def _mlm_successful_referrals(self):
        """{partner id: referred contacts whose referral was rewarded}."""
        groups = (
            self.sudo()
            .with_context(active_test=False)
            ._read_group(
                [
                    ("mlm_referrer_id", "in", self.ids),
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
            if referred._mlm_has_other_qualifying_order(orders):
                continue
            referred._mlm_reward_referral(order)

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
            if referred._mlm_has_other_qualifying_order(orders):
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
                        reason=_(
                            "Referral bonus of %(name)s: their first order was "
                            "cancelled",
                            name=referred.display_name,
                        ),
                    )
            referred.sudo().mlm_referral_date = False

    def _mlm_has_other_qualifying_order(self, orders):
        """Whether `self` has a confirmed sale or paid POS order besides
        `orders` (sale or POS orders)."""
        self.ensure_one()
        sale_ids = orders.ids if orders._name == "sale.order" else []
        pos_ids = orders.ids if orders._name == "pos.order" else []
        return bool(
            self.env["sale.order"]
            .sudo()
            .search_count(
                [
                    ("partner_id", "=", self.id),
                    ("state", "=", "sale"),
                    ("id", "not in", sale_ids),
                ],
                limit=1,
            )
            or self.env["pos.order"]
            .sudo()
            .search_count(
                [
                    ("partner_id", "=", self.id),
                    ("state", "in", ("paid", "done", "invoiced")),
                    ("amount_total", ">", 0),
                    ("id", "not in", pos_ids),
                ],
                limit=1,
            )
        )

    def _mlm_reward_referral(self, order):
        """Credit the referral bonuses of the referred contact `self`."""
        self.ensure_one()
        company = order.company_id
        referrer = self.mlm_referrer_id
        if not company.mlm_program_id:
            return
        # Both become members if they were not (the referrer always is).
        (referrer | self).sudo()._mlm_enroll(company)
        cards = (
            self.env["loyalty.card"]
            .sudo()
            .search(
                [
                    ("program_id", "=", company.mlm_program_id.id),
                    ("partner_id", "in", (referrer | self).ids),
                ]
            )
        )
        card_of = {card.partner_id: card for card in cards}
        for partner, amount, reason in (
            (
                referrer,
                company.mlm_referral_bonus,
                _("Referral of %(name)s", name=self.display_name),
            ),
            (
                self,
                company.mlm_referral_bonus_referred,
                _("Referred by %(name)s", name=referrer.display_name),
            ),
        ):
            if amount > 0 and partner in card_of:
                card_of[partner]._mlm_post_points(
                    amount, "referral", source=self, reason=reason
                )
        self.sudo().mlm_referral_date = fields.Date.context_today(self)

    # Birthdays ----------------------------------------------------------------

    @api.model
    def _mlm_birthday_due(self, company, today):
        """Members of `company` whose birthday is `today` (29 February
        birthdays on 28 February in other years) without a birthday bonus
        this calendar year: one query."""
        self.flush_model(["mlm_birthdate", "active"])
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

    def _mlm_grant_birthday_bonus(self, company, today):
        """Credit the birthday bonus to `self` and queue the birthday mail."""
        amount = company.mlm_birthday_bonus
        cards = (
            self.env["loyalty.card"]
            .sudo()
            .search(
                [
                    ("program_id", "=", company.mlm_program_id.id),
                    ("partner_id", "in", self.ids),
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
                reason=_("Birthday bonus %(year)s", year=today.year),
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
            self.browse(todo)._mlm_grant_birthday_bonus(company, today)
            done += len(todo)
            remaining += len(due) - len(todo)
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done

    # Demo -------------------------------------------------------------------

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
        order.action_confirm()
        hanna.mlm_referrer_id = gijs
        self.env["loyalty.mlm.donation.wizard"].create(
            {
                "partner_id": anna.id,
                "charity_id": ref("loyalty_mlm.res_partner_food_bank_demo").id,
                "points": 50,
            }
        ).action_donate()
        self._cron_review_tiers()
        self._cron_birthday_bonus()

    # ------------------------------------------------------------
    # Treatments
    # ------------------------------------------------------------
    # The first active treatment rule a customer meets is his next best
    # action (see loyalty.mlm.treatment); the log keeps what was done.

    mlm_treatment_id = fields.Many2one(
        "loyalty.mlm.treatment",
        string="Next Best Action",
        compute="_compute_mlm_next_action",
        help="The treatment that applies to this customer now: the first active "
        "rule (by sequence) whose conditions he meets.",
        groups=LOYALTY_GROUPS,
    )
    mlm_next_action = fields.Char(
        string="It Does", compute="_compute_mlm_next_action", groups=LOYALTY_GROUPS
    )
    mlm_next_action_status = fields.Char(
        string="When", compute="_compute_mlm_next_action", groups=LOYALTY_GROUPS
    )
    mlm_treatment_rationale = fields.Char(
        string="Why", compute="_compute_mlm_next_action", groups=LOYALTY_GROUPS
    )
    mlm_treatment_log_ids = fields.One2many(
        "loyalty.mlm.treatment.log",
        "partner_id",
        string="Treatments Done",
        groups=LOYALTY_GROUPS,
    )

    @api.depends_context("company")
    @api.depends("mlm_stage_id")
    def _compute_mlm_next_action(self):
        """Set-based: one search per rule for all of `self`, one query for
        what is due per rule, one for the last executions."""
        company = self.env.company
        Treatment = self.env["loyalty.mlm.treatment"]
        ids = [pid for pid in self.ids if isinstance(pid, int)]
        rule_of, due, last = {}, set(), {}
        if ids:
            now = fields.Datetime.now()
            matches = Treatment._mlm_rules(company)._mlm_match(company, ids)
            for rule, partner_ids in matches.items():
                rule_of.update(dict.fromkeys(partner_ids, rule))
                due.update(
                    (rule.id, pid) for pid in rule._mlm_due(company, partner_ids, now)
                )
            if rule_of:
                groups = (
                    self.env["loyalty.mlm.treatment.log"]
                    .sudo()
                    ._read_group(
                        [
                            ("partner_id", "in", list(rule_of)),
                            ("treatment_id", "in", [r.id for r in matches]),
                            ("company_id", "=", company.id),
                        ],
                        ["partner_id", "treatment_id"],
                        ["date:max"],
                    )
                )
                last = {(p.id, r.id): date for p, r, date in groups}
        for partner in self:
            rule = rule_of.get(partner.id, Treatment)
            partner.mlm_treatment_id = rule
            partner.mlm_treatment_rationale = rule.rationale or ""
            partner.mlm_next_action = (
                "; ".join(rule._mlm_action_labels()) or _("Nothing") if rule else ""
            )
            partner.mlm_next_action_status = partner._mlm_next_action_status(
                rule, (rule.id, partner.id) in due, last.get((partner.id, rule.id))
            )

    def _mlm_next_action_status(self, rule, is_due, last_date):
        if not rule:
            return ""
        if not rule._mlm_has_actions():
            return _("No action on purpose")
        if is_due:
            return _("Due at the next run")
        if rule.trigger == "periodic" and last_date:
            return _(
                "Done on %(done)s, again from %(next)s",
                done=format_date(self.env, last_date),
                next=format_date(
                    self.env, last_date + timedelta(days=rule.cooldown_days)
                ),
            )
        if last_date:
            return _("Done on %s", format_date(self.env, last_date))
        return _("On the next entry into the stage")
