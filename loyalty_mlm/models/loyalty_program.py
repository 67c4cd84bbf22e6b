from odoo import _, api, fields, models
from odoo.osv import expression
from odoo.tools import SQL, ormcache

from .loyalty_mlm_partner_score import QUADRANT_SELECTION, USAGE_SEGMENT_SELECTION

# Targeted programmes: restriction field -> (partner field, value).
MLM_SEGMENT_FIELDS = {
    "mlm_segment_heavy": "heavy",
    "mlm_segment_medium": "medium",
    "mlm_segment_low": "low",
}
MLM_QUADRANT_FIELDS = {
    "mlm_quadrant_true_friend": "true_friend",
    "mlm_quadrant_butterfly": "butterfly",
    "mlm_quadrant_barnacle": "barnacle",
    "mlm_quadrant_stranger": "stranger",
}


class LoyaltyProgram(models.Model):
    _name = "loyalty.program"
    _inherit = ["loyalty.program", "loyalty.mlm.measured.mixin"]

    mlm_is_member_programme = fields.Boolean(
        string="Member Programme",
        compute="_compute_mlm_is_member_programme",
        search="_search_mlm_is_member_programme",
    )
    # Targeted programmes. The free partner domain and the allowed partners
    # are OCA's loyalty_partner_applicability (partner_domain, partner_ids);
    # these restrict further by the member's lifecycle and scores. Every
    # restriction that is set must pass; empty: everybody.
    mlm_stage_ids = fields.Many2many(
        "loyalty.mlm.stage",
        "loyalty_program_mlm_stage_rel",
        "program_id",
        "stage_id",
        string="Lifecycle Stages",
        help="Only customers in these lifecycle stages (all when empty).",
    )
    mlm_tier_ids = fields.Many2many(
        "loyalty.mlm.tier",
        "loyalty_program_mlm_tier_rel",
        "program_id",
        "tier_id",
        string="Tiers",
        help="Only members in these tiers (all when empty).",
    )
    mlm_segment_heavy = fields.Boolean(string="Heavy Users")
    mlm_segment_medium = fields.Boolean(string="Medium Users")
    mlm_segment_low = fields.Boolean(string="Low Users")
    mlm_quadrant_true_friend = fields.Boolean(string="True Friends")
    mlm_quadrant_butterfly = fields.Boolean(string="Butterflies")
    mlm_quadrant_barnacle = fields.Boolean(string="Barnacles")
    mlm_quadrant_stranger = fields.Boolean(string="Strangers")
    mlm_restricted = fields.Boolean(
        string="Targeted",
        compute="_compute_mlm_restricted",
        store=True,
        help="Only some customers may use this programme (see Eligibility).",
    )
    mlm_eligible_count = fields.Integer(
        string="Eligible Customers",
        compute="_compute_mlm_eligible_count",
        help="Contacts that may use this programme today.",
    )
    mlm_points_digits = fields.Integer(
        string="Point Decimals",
        compute="_compute_mlm_points_digits",
        help="Decimals points are shown with: none when every rule gives whole "
        "points (per order or per unit, whole amounts), else two.",
    )

    # Fields that decide which programmes of a register are targeted
    # (pos.config._mlm_targeted_program_ids, cached).
    _MLM_TARGETING_FIELDS = {
        "active",
        "company_id",
        "pos_ok",
        "pos_config_ids",
        "partner_ids",
        "partner_domain",
        "mlm_stage_ids",
        "mlm_tier_ids",
        "mlm_control_share",
        *MLM_SEGMENT_FIELDS,
        *MLM_QUADRANT_FIELDS,
    }

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()  # _mlm_targeted_program_ids
        return super().create(vals_list)

    def write(self, vals):
        if self._MLM_TARGETING_FIELDS & set(vals):
            self.env.registry.clear_cache()  # _mlm_targeted_program_ids
        return super().write(vals)

    def unlink(self):
        self.env.registry.clear_cache()  # _mlm_targeted_program_ids
        return super().unlink()

    @api.depends("rule_ids.reward_point_mode", "rule_ids.reward_point_amount")
    def _compute_mlm_points_digits(self):
        for program in self:
            whole = all(
                rule.reward_point_mode in ("order", "unit")
                and float(rule.reward_point_amount).is_integer()
                for rule in program.rule_ids
            )
            program.mlm_points_digits = 0 if whole else 2

    def _compute_mlm_is_member_programme(self):
        member_ids = self._mlm_member_programme_ids()
        for program in self:
            program.mlm_is_member_programme = program.id in member_ids

    def _search_mlm_is_member_programme(self, operator, value):
        positive = (operator == "=") == bool(value)
        return [
            ("id", "in" if positive else "not in", self._mlm_member_programme_ids())
        ]

    @api.depends(
        "partner_ids",
        "partner_domain",
        "mlm_stage_ids",
        "mlm_tier_ids",
        "mlm_control_share",
        *MLM_SEGMENT_FIELDS,
        *MLM_QUADRANT_FIELDS,
    )
    def _compute_mlm_restricted(self):
        # A control group makes a programme targeted: its customers are
        # checked at sale and at the register like any restriction.
        for program in self:
            program.mlm_restricted = bool(
                program.mlm_control_share > 0
                or program.partner_ids
                or (program.partner_domain or "[]") != "[]"
                or program._mlm_partner_domain()
            )

    @api.depends_context("company")
    def _compute_mlm_eligible_count(self):
        Partner = self.env["res.partner"]
        for program in self:
            if not program.mlm_restricted:
                program.mlm_eligible_count = 0  # not shown: everybody
                continue
            domain = program._mlm_partner_domain()
            if program.partner_ids or (program.partner_domain or "[]") != "[]":
                domain = expression.AND([domain, program._mlm_oca_partner_domain()])
            program.mlm_eligible_count = Partner.search_count(domain)

    @api.model
    def _mlm_member_programme_ids(self):
        """Ids of every company's member programme."""
        return set(self._mlm_member_programme_ids_cached())

    @api.model
    @ormcache()
    def _mlm_member_programme_ids_cached(self):
        # Asked several times by every card change and order sync (the hot
        # path): cached until a company's member programme changes (see
        # res.company create/write).
        companies = (
            self.env["res.company"]
            .sudo()
            .search_fetch([("mlm_program_id", "!=", False)], ["mlm_program_id"])
        )
        return frozenset(companies.mlm_program_id.ids)

    # ------------------------------------------------------------
    # Targeted programmes
    # ------------------------------------------------------------

    def _mlm_partner_domain(self):
        """res.partner domain of our restrictions (stages, tiers, segments,
        quadrants); [] when there is none. Stage and scores are the commercial
        entity's, the tier the member's own (as for campaigns); tiers and
        scores are those of the company in the environment."""
        self.ensure_one()
        domains = []
        if self.mlm_stage_ids:
            domains.append(
                [("commercial_partner_id.mlm_stage_id", "in", self.mlm_stage_ids.ids)]
            )
        # An archived tier in the restriction still restricts.
        tiers = self.with_context(active_test=False).mlm_tier_ids
        if tiers:
            domains.append([("mlm_tier_id", "in", tiers.ids)])
        segments = [code for name, code in MLM_SEGMENT_FIELDS.items() if self[name]]
        if segments:
            domains.append(
                [("commercial_partner_id.mlm_usage_segment", "in", segments)]
            )
        quadrants = [code for name, code in MLM_QUADRANT_FIELDS.items() if self[name]]
        if quadrants:
            domains.append([("commercial_partner_id.mlm_quadrant", "in", quadrants)])
        return expression.AND(domains) if domains else []

    def _mlm_oca_partner_domain(self):
        """OCA's allowed partners OR free domain, as one res.partner domain."""
        self.ensure_one()
        domains = []
        if self.partner_ids:
            domains.append([("id", "in", self.partner_ids.ids)])
        if (self.partner_domain or "[]") != "[]":
            domains.append(self._get_eval_partner_domain())
        return expression.OR(domains) if domains else []

    def _is_partner_valid(self, partner):
        """OCA's check (allowed partners, free domain, coupon sharing) and
        ours; nobody passes a targeted programme without a customer."""
        if self.mlm_restricted and not partner:
            return False
        if not super()._is_partner_valid(partner):
            return False
        if self.mlm_control_share and self._mlm_in_control(partner):
            return False
        domain = self._mlm_partner_domain()
        return not domain or bool(partner.filtered_domain(domain))

    def _mlm_restriction_summary(self):
        """Who may use the programme, in words, for error messages."""
        self.ensure_one()
        parts = []
        if self.mlm_stage_ids:
            parts.append(", ".join(self.mlm_stage_ids.mapped("name")))
        tiers = self.with_context(active_test=False).mlm_tier_ids
        if tiers:
            parts.append(", ".join(tiers.mapped("name")))
        labels = dict(USAGE_SEGMENT_SELECTION)
        parts += [
            labels[code] for name, code in MLM_SEGMENT_FIELDS.items() if self[name]
        ]
        labels = dict(QUADRANT_SELECTION)
        parts += [
            labels[code] for name, code in MLM_QUADRANT_FIELDS.items() if self[name]
        ]
        if self.partner_ids or (self.partner_domain or "[]") != "[]":
            parts.append(_("selected customers"))
        return "; ".join(parts)

    def _mlm_not_eligible_message(self, partner):
        self.ensure_one()
        if not partner:
            return _(
                "The programme %(programme)s is only for some customers "
                "(%(who)s): select an eligible customer first.",
                programme=self.name,
                who=self._mlm_restriction_summary(),
            )
        if self.mlm_control_share and self._mlm_in_control(partner):
            return _(
                "%(customer)s is in the control group of the programme "
                "%(programme)s: held out to measure whether the programme "
                "works, so it does not apply to them.",
                customer=partner.display_name,
                programme=self.name,
            )
        return _(
            "%(customer)s is not eligible for the programme %(programme)s "
            "(only for: %(who)s).",
            customer=partner.display_name,
            programme=self.name,
            who=self._mlm_restriction_summary(),
        )

    def _mlm_check_partner(self, partner):
        """The first programme of `self` that `partner` may not use and why,
        or (empty programme, "")."""
        for program in self.filtered("mlm_restricted"):
            if not program._is_partner_valid(partner):
                return program, program._mlm_not_eligible_message(partner)
        return self.browse(), ""

    # ------------------------------------------------------------
    # Results (loyalty.mlm.measured.mixin)
    # ------------------------------------------------------------

    @api.model
    def _mlm_measured_actions(self):
        return self.search([("mlm_control_share", ">", 0)])

    def _mlm_result_coupons(self):
        """The programme's own cards and coupons."""
        return SQL("c.program_id = %s", self.id)

    def _mlm_result_population(self):
        """The company's members the programme targets (as they are today),
        from its start (first valid day, else its creation)."""
        self.ensure_one()
        company = self.company_id or self.env.company
        if not company.mlm_program_id:
            return []
        domain = [("loyalty_card_ids.program_id", "=", company.mlm_program_id.id)]
        domain = expression.AND([domain, self._mlm_partner_domain()])
        if self.partner_ids or (self.partner_domain or "[]") != "[]":
            domain = expression.AND([domain, self._mlm_oca_partner_domain()])
        partners = self.env["res.partner"].with_company(company).sudo().search(domain)
        start = (
            fields.Datetime.to_datetime(self.date_from)
            if self.date_from
            else self.create_date
        )
        return [
            (partner.id, start, self._mlm_in_control(partner.id))
            for partner in partners
        ]

    # ------------------------------------------------------------
    # Point of Sale
    # ------------------------------------------------------------

    @api.model
    def _load_pos_data_fields(self, config_id):
        # The register offers a targeted programme only to the customers the
        # server found eligible (res.partner.mlm_pos_program_ids).
        return [
            *super()._load_pos_data_fields(config_id),
            "mlm_restricted",
            "mlm_points_digits",
        ]
