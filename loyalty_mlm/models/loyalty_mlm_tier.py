from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import float_compare, ormcache


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
        self.env.registry.clear_cache()  # _mlm_ladder_ids
        return super().create(vals_list)

    def write(self, vals):
        if {"threshold", "sequence", "company_id", "active"} & set(vals):
            self.env.registry.clear_cache()  # _mlm_ladder_ids
        return super().write(vals)

    def unlink(self):
        self.env.registry.clear_cache()  # _mlm_ladder_ids
        return super().unlink()

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
