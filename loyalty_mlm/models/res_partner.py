import logging
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression
from odoo.tools import SQL, create_index, index_exists
from odoo.tools.query import Query

from ..tools.domains import id_range_domain, merge_or_leaves
from .loyalty_mlm_partner_score import (
    QUADRANT_SELECTION,
    SCORE_FIELDS,
    USAGE_SEGMENT_SELECTION,
)

_logger = logging.getLogger(__name__)

# Who reads members' data (field groups): a member's card, points, stage and
# tier are for loyalty staff and for cashiers, who serve members at the
# register (badge, customer list); segment scores and next best actions are
# for loyalty staff. Internal users outside both read none of it.
LOYALTY_GROUPS = "loyalty_mlm.group_loyalty_mlm_user"
MEMBER_GROUPS = "loyalty_mlm.group_loyalty_mlm_user,point_of_sale.group_pos_user"

EXPIRING_SOON_DAYS = 30
# A heavy user this likely to leave is the first to keep (the "Heavy users
# at risk" filter and badges).
HEAVY_AT_RISK_CHURN = 70


def _mlm_score_condition_needs_row(operator, value):
    """Whether (operator, value) on a score field is false for a contact
    without scores (all empty: numbers 0, the rest NULL), so that only the
    contacts with a score row can match. Conservative: False when unsure."""
    if isinstance(value, bool) or value is None:
        return False
    if operator in ("=", "in"):
        values = value if isinstance(value, list | tuple) else [value]
        return bool(values) and all(
            item is not None and item is not False and item != 0 and item != ""
            for item in values
        )
    if operator in ("like", "ilike", "=like", "=ilike"):
        return isinstance(value, str) and bool(value.strip("%_"))
    if operator in (">", ">=", "<", "<="):
        if not isinstance(value, int | float):
            return True  # dates: NULL compares to nothing
        # Empty numbers compare as 0.
        return not {
            ">": 0 > value,
            ">=": 0 >= value,
            "<": 0 < value,
            "<=": 0 <= value,
        }[operator]
    return False


def _mlm_score_searcher(fname):
    """The search method of the score field `fname` (see _mlm_search_score)."""

    def search(self, operator, value):
        return self._mlm_search_score(fname, operator, value)

    search.__name__ = f"_search_{fname}"
    return search


class ResPartner(models.Model):
    _inherit = "res.partner"

    mlm_member_since = fields.Date(string="Member Since", copy=False, tracking=True)
    # The member's latest answer to an NPS survey (survey.user_input
    # _mlm_record_nps writes them on the commercial entity).
    mlm_nps_score = fields.Integer(string="NPS Score", copy=False, readonly=True)
    mlm_nps_category = fields.Selection(
        [
            ("promoter", "Promoter"),
            ("passive", "Passive"),
            ("detractor", "Detractor"),
        ],
        string="NPS Category",
        copy=False,
        readonly=True,
    )
    mlm_nps_comment = fields.Text(string="NPS Comment", copy=False, readonly=True)
    mlm_nps_date = fields.Datetime(string="NPS Answered On", copy=False, readonly=True)
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
    # Of the programmes the contact may not use, those whose control group
    # holds him out: the register then says so, as the server does.
    mlm_pos_control_program_ids = fields.Json(
        string="Held-out Programmes (POS)",
        compute="_compute_mlm_pos_program_ids",
        compute_sudo=True,
    )

    def init(self):
        res = super().init()
        # The Members action lists members in the order of Odoo's customer
        # lists (res_partner_search_mode "customer": most orders first, then
        # by name), its kanban columns likewise. Without an index in that
        # order PostgreSQL read and sorted every member to show the first 80
        # (0.21 s for the query at 100,000 customers, half of them members);
        # with it, it reads the first rows of the index (0.035 s). Partial:
        # only members, half the size, and no cost on other contacts.
        create_index(
            self.env.cr,
            "res_partner_mlm_member_order_index",
            self._table,
            ["customer_rank DESC", "complete_name", "id DESC"],
            where="mlm_member_since IS NOT NULL",
        )
        self._mlm_create_stage_indexes(
            self.env["res.company"].with_context(active_test=False).search([])
        )
        return res

    @api.model
    def _mlm_create_stage_indexes(self, companies):
        """Index the members' lifecycle stage in each of `companies`.

        The stage is company-dependent: a JSON column, which Odoo reads for
        the current company as (mlm_stage_id->'<company id>'->>0)::int4. A
        stage filter, a kanban column (its first cards and its count) and the
        stage counts scanned every contact (0.09 to 0.14 s a query at 100,000
        customers); an index on that expression finds a column's members
        directly (0.02 s). Followed by the Members views' order, so that a
        column's first cards are the first entries of its range rather than
        the members' order filtered by stage (0.2 s for a small column at
        1,000,000 customers, issue #22). One per company (the expression
        names it), made at install and when a company is created; members
        only (partial)."""
        for company in companies:
            name = f"res_partner_mlm_stage_order_{company.id}_index"
            if index_exists(self.env.cr, name):
                continue
            self.env.cr.execute(
                SQL(
                    "CREATE INDEX %s ON res_partner (((mlm_stage_id->%s->>0)::int4),"
                    " customer_rank DESC, complete_name, id DESC)"
                    " WHERE mlm_member_since IS NOT NULL",
                    SQL.identifier(name),
                    str(company.id),
                )
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
        held_out = {partner.id: [] for partner in self}
        for program in programs:
            valid = self.filtered(program._is_partner_valid)
            for partner in valid:
                eligible[partner.id].append(program.id)
            if program.mlm_control_share:
                for partner in self - valid:
                    if program._mlm_in_control(partner.id):
                        held_out[partner.id].append(program.id)
        for partner in self:
            partner.mlm_pos_program_ids = eligible[partner.id]
            partner.mlm_pos_control_program_ids = held_out[partner.id]

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
            "mlm_pos_control_program_ids",
            # Tier, codes: badge, customer list columns and search, receipt.
            "mlm_tier_name",
            "mlm_tier_color",
            "mlm_referral_code",
            "mlm_card_code",
            # Why the customer matters: heavy / at risk, next best action.
            "mlm_pos_flags",
            "mlm_pos_next_action",
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

    def _mlm_enroll(self, company):
        """Make `self` members of the company's programme (see loyalty.card)."""
        self.env["loyalty.card"]._mlm_enroll(self, company)

    # ------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------

    # Stage, stage date and lock are per company (company-dependent, like the
    # tier): each company's nightly run decides its own customers' stages.
    # No index of their own (index=False; Odoo gives a company-dependent
    # field one on "set in any company" by default): that says nothing about
    # one company, which every query of ours names, while each index costs a
    # new entry in every row the nightly jobs rewrite. A company's stage
    # column is served by its stage index (_mlm_create_stage_indexes).
    mlm_stage_id = fields.Many2one(
        "loyalty.mlm.stage",
        string="Lifecycle Stage",
        company_dependent=True,
        index=False,
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
        help="The lifecycle stage; a Loyalty Manager's click opens Set Stage "
        "(reason, keep-until).",
        groups=LOYALTY_GROUPS,
    )
    mlm_can_set_stage = fields.Boolean(
        string="Can Set Stage",
        compute="_compute_mlm_can_set_stage",
        help="Technical: the stage bar is clickable (it opens Set Stage) for "
        "Loyalty Managers only.",
        groups=LOYALTY_GROUPS,
    )
    mlm_stage_date = fields.Datetime(
        string="In Stage Since",
        company_dependent=True,
        index=False,
        copy=False,
        readonly=True,
        groups=MEMBER_GROUPS,
    )
    mlm_stage_days = fields.Integer(
        string="Days in Stage", compute="_compute_mlm_stage_days", groups=MEMBER_GROUPS
    )
    mlm_stage_locked_until = fields.Date(
        string="Stage Kept Until",
        company_dependent=True,
        index=False,
        copy=False,
        readonly=True,
        help="Set with a manual stage: the automatic rules leave the contact "
        "in its stage until this date (included).",
        groups=MEMBER_GROUPS,
    )
    # The contact shows the moves of his stage in the current company.
    mlm_stage_history_ids = fields.One2many(
        "loyalty.mlm.stage.history",
        "partner_id",
        string="Stage History",
        domain=lambda self: [("company_id", "in", (False, self.env.company.id))],
        depends_context=("company",),
        groups=MEMBER_GROUPS,
    )

    @api.model
    def _read_group_mlm_stage_ids(self, stages, domain):
        # Every stage is a kanban column, even an empty one.
        return stages.search([])

    @api.depends_context("company")
    @api.depends("mlm_stage_id")
    def _compute_mlm_stage_pick_id(self):
        for partner in self:
            partner.mlm_stage_pick_id = partner.mlm_stage_id

    def _inverse_mlm_stage_pick_id(self):
        for partner in self:
            if partner.mlm_stage_pick_id != partner.mlm_stage_id:
                partner.mlm_stage_pick_id._mlm_set_manually(
                    partner, _("Set from the contact form")
                )

    def _compute_mlm_can_set_stage(self):
        manager = self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager")
        self.mlm_can_set_stage = manager

    @api.depends_context("company")
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

    # ------------------------------------------------------------
    # Segment scores
    # ------------------------------------------------------------
    # RFM, usage segment, loyalty x profitability quadrant, churn risk and
    # CLV of each customer (commercial partner), per company: computed and
    # stored by loyalty.mlm.partner.score (one narrow row per customer and
    # company) and shown here in the user's current company. They search,
    # group and sort in SQL (_field_to_sql below), like stored fields. Empty
    # (not zero) for customers without orders.

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

    # The kanban card's badge reads this rather than the churn risk: an
    # active field with an aggregator makes the web client average it over
    # every column, a join of every member to his scores (0.6 s of the
    # Members kanban at 1,000,000 customers) for a figure no column shows.
    mlm_heavy_at_risk = fields.Boolean(
        string="Heavy User at Risk",
        compute="_compute_mlm_scores",
        help="A heavy user whose churn risk is 70% or more: the first to keep.",
        groups=LOYALTY_GROUPS,
    )

    @api.depends_context("company")
    def _compute_mlm_scores(self):
        Score = self.env["loyalty.mlm.partner.score"]
        rows = Score._mlm_score_rows_of(self.env.company, self.ids) if self.ids else {}
        empty = (False,) * len(SCORE_FIELDS)
        for partner in self:
            values = rows.get(partner.id, empty)
            for fname, value in zip(SCORE_FIELDS, values, strict=True):
                partner[fname] = value if value is not None else False
            partner.mlm_heavy_at_risk = (
                partner.mlm_usage_segment == "heavy"
                and partner.mlm_churn_risk >= HEAVY_AT_RISK_CHURN
            )

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        # Score filters ORed together read the score table once: under an
        # OR, PostgreSQL checks each subquery row by row (tools/domains.py).
        domain = merge_or_leaves(
            domain, self._mlm_is_score_row_leaf, self._mlm_score_rows_leaf
        )
        return super()._search(domain, offset=offset, limit=limit, order=order)

    def _mlm_check_score_search(self):
        # A search method bypasses the field's groups: searching by score
        # would read it. Cashiers may search (a targeted programme's domain,
        # checked at the register, can test scores); they never read them.
        if not self.env.su and not self.env.user.has_groups(MEMBER_GROUPS):
            raise AccessError(
                _("Only Loyalty Users can find contacts by their scores.")
            )

    @api.model
    def _mlm_is_score_row_leaf(self, leaf):
        """Whether the domain leaf is a score condition only contacts with a
        score row can meet (see _mlm_score_rows_leaf)."""
        fname, operator, value = leaf
        return fname in SCORE_FIELDS and _mlm_score_condition_needs_row(operator, value)

    @api.model
    def _mlm_score_rows_leaf(self, leaves):
        """One domain leaf for the contacts whose current company's score row
        meets any of `leaves` (score conditions that need a row)."""
        self._mlm_check_score_search()
        # Only contacts with a score row can match: look in the narrow score
        # table alone. "heavy", "churn risk >= 70" and the like then cost a
        # scan of the current company's rows (or its churn index) instead of
        # a join of every contact to its scores, which PostgreSQL ran in
        # full even to check one contact (the contact form tests the
        # treatment rules' score conditions on the member: 0.12 to 0.37 s a
        # rule at 100,000 customers on a loaded machine; bench/README.md,
        # "Interactive paths at scale").
        # sudo: the rights were checked above (cashiers search by score
        # without reading the score model); the company is in the domain.
        # The treatment walk searches a range of contact ids at a time
        # (loyalty.mlm.treatment._mlm_match): the scores of that range, found
        # by the (partner, company) index, rather than the company's scores
        # of one segment, read in full for every range.
        where = [
            ("company_id", "=", self.env.company.id),
            *id_range_domain(
                "partner_id", self.env.context.get("mlm_partner_id_range")
            ),
        ]
        scores = (
            self.env["loyalty.mlm.partner.score"]
            .sudo()
            ._search(
                expression.AND(
                    [
                        where,
                        expression.OR(
                            [
                                [(SCORE_FIELDS[fname], operator, value)]
                                for fname, operator, value in leaves
                            ]
                        ),
                    ]
                )
            )
        )
        return ("id", "in", scores.subselect("partner_id"))

    def _mlm_search_score(self, fname, operator, value):
        """Domain of the contacts whose score `fname` (in the current company)
        satisfies (operator, value), with a stored field's semantics: a contact
        without scores has them all empty (numbers: 0)."""
        if self._mlm_is_score_row_leaf((fname, operator, value)):
            return [self._mlm_score_rows_leaf([(fname, operator, value)])]
        self._mlm_check_score_search()
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
        return self.env["loyalty.mlm.partner.score"]._mlm_column_sql(
            alias, column, query
        )

    def action_mlm_refresh_scores(self):
        """Refresh the scores of these customers now (incremental)."""
        if not self.env.user.has_group(LOYALTY_GROUPS):
            raise AccessError(_("Only Loyalty Users can refresh segment scores."))
        self.check_access("read")
        self.env["loyalty.mlm.partner.score"]._mlm_refresh_partners(self)
        return True

    # ------------------------------------------------------------
    # Tiers, referral, bonuses
    # ------------------------------------------------------------
    # Tiers are per company (company-dependent), like the member programme:
    # loyalty.mlm.tier moves members; referrals are loyalty.mlm.referral's,
    # bonuses loyalty.mlm.bonus's (docs/ARCHITECTURE.md).

    # index=False, like the stage: with no index on the tier fields, a tier
    # move rewrites no index entry of the contact when his page has room
    # (a heap-only update).
    mlm_tier_id = fields.Many2one(
        "loyalty.mlm.tier",
        string="Tier",
        company_dependent=True,
        index=False,
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
    # No sum of colours over the kanban's columns (see mlm_heavy_at_risk).
    mlm_tier_color = fields.Integer(
        related="mlm_tier_id.color",
        string="Tier Colour",
        aggregator=None,
        groups=MEMBER_GROUPS,
    )
    mlm_tier_below_since = fields.Date(
        string="Below Tier Since",
        company_dependent=True,
        index=False,
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
        # Looked up through the index of its UNIQUE constraint
        # (mlm_referral_code_unique): a second one only cost every write.
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
        Tier = self.env["loyalty.mlm.tier"]
        values = Tier._mlm_tier_values(self.env.company, ids) if ids else {}
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
            referrer = self.env["loyalty.mlm.referral"]._mlm_referrer_of_code(code)
            partner.mlm_referrer_id = referrer.id

    @api.onchange("mlm_referrer_code")
    def _onchange_mlm_referrer_code(self):
        """Check a typed referral code at once (the register's customer editor
        is this form): a code that would be refused is cleared with the
        reason, before anything is saved. The constraint below still decides
        at save."""
        message = self.env["loyalty.mlm.referral"]._mlm_refused_code(self)
        if not message:
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

    @api.depends("mlm_referred_ids.mlm_referral_date")
    def _compute_mlm_referral_count(self):
        saved = self.filtered(lambda partner: isinstance(partner.id, int))
        Referral = self.env["loyalty.mlm.referral"]
        counts = Referral._mlm_successful_referrals(saved) if saved else {}
        for partner in self:
            partner.mlm_referral_count = counts.get(partner.id, 0)

    @api.constrains("mlm_referrer_id")
    def _check_mlm_referrer_id(self):
        self.env["loyalty.mlm.referral"]._mlm_check_referrers(self)

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
        domain=lambda self: [("company_id", "=", self.env.company.id)],
        depends_context=("company",),
        groups=LOYALTY_GROUPS,
    )

    # What the cashier needs to know about a customer (the register's badge):
    # read from the scores and the next best action, which cashiers may not
    # read themselves.
    mlm_pos_flags = fields.Char(
        string="Register Flags",
        compute="_compute_mlm_pos_hints",
        help="Technical: 'heavy' and/or 'at_risk' (churn risk 70% or more).",
        groups=MEMBER_GROUPS,
    )
    mlm_pos_next_action = fields.Char(
        string="Next Best Action (Register)",
        compute="_compute_mlm_pos_hints",
        groups=MEMBER_GROUPS,
    )

    @api.depends_context("company")
    def _compute_mlm_pos_hints(self):
        for partner, scored in zip(self, self.sudo(), strict=True):
            flags = []
            if scored.mlm_usage_segment == "heavy":
                flags.append("heavy")
            if (scored.mlm_churn_risk or 0) >= 70:
                flags.append("at_risk")
            partner.mlm_pos_flags = " ".join(flags)
            partner.mlm_pos_next_action = scored.mlm_treatment_id.name or ""

    @api.depends_context("company")
    @api.depends("mlm_stage_id")
    def _compute_mlm_next_action(self):
        Treatment = self.env["loyalty.mlm.treatment"]
        ids = [pid for pid in self.ids if isinstance(pid, int)]
        rule_of, due, last = Treatment._mlm_next_actions(self.env.company, ids)
        for partner in self:
            rule = rule_of.get(partner.id, Treatment)
            partner.mlm_treatment_id = rule
            partner.mlm_treatment_rationale = rule.rationale or ""
            partner.mlm_next_action = (
                "; ".join(rule._mlm_action_labels()) or _("Nothing") if rule else ""
            )
            partner.mlm_next_action_status = rule._mlm_next_action_status(
                (rule.id, partner.id) in due, last.get((partner.id, rule.id))
            )
