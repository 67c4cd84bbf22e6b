from odoo import _, api, fields, models
from odoo.exceptions import AccessError, ValidationError
from odoo.tools import SQL

from ..tools import uplift as uplift_tools

MAX_CONTROL_SHARE = 50


class LoyaltyMlmMeasuredMixin(models.AbstractModel):
    """An action measured against a hold-out control group: treatment rules,
    campaigns and targeted programmes.

    A share of the customers the action would reach is held out, chosen by a
    stable hash of (model, action, customer) (tools/uplift.py): the same
    customer is always in or out of the same action's control group, on
    every run and in every process, without storing the draw. The results
    (loyalty.mlm.action.result) compare what the two groups did next.
    """

    _name = "loyalty.mlm.measured.mixin"
    _description = "Action Measured Against a Control Group"

    mlm_control_share = fields.Float(
        string="Control Group (%)",
        digits=(5, 2),
        default=lambda self: self._mlm_default_control_share(),
        help="This share of the customers (0 to 50%) is held out and gets "
        "nothing from this action: comparing them with the others shows "
        "whether the action works.",
    )
    mlm_window_days = fields.Integer(
        string="Measurement Window (days)",
        default=60,
        help="Results count what each customer did in this many days after "
        "the action (or after the hold-out for control customers).",
    )
    mlm_result_ids = fields.One2many(
        "loyalty.mlm.action.result",
        compute="_compute_mlm_result_ids",
        string="Results",
    )
    mlm_verdict = fields.Selection(
        [
            ("working", "Working"),
            ("no_effect", "No measurable effect yet"),
            ("harmful", "Harmful"),
        ],
        string="Verdict",
        compute="_compute_mlm_result_ids",
        help="From the repeat purchase rate of the treated customers against "
        "the control group (95% confidence).",
    )

    @api.model
    def _mlm_default_control_share(self):
        return 0.0

    def _mlm_result_domain(self):
        return [("res_model", "=", self._name), ("res_id", "in", self.ids)]

    def _compute_mlm_result_ids(self):
        results = self.env["loyalty.mlm.action.result"].search(
            self._mlm_result_domain()
        )
        for action in self:
            mine = results.filtered(lambda r, a=action: r.res_id == a.id)
            action.mlm_result_ids = mine
            primary = mine.filtered("is_primary")[:1]
            action.mlm_verdict = primary.verdict if primary else False

    @api.constrains("mlm_control_share", "mlm_window_days")
    def _check_mlm_control_share(self):
        for action in self:
            if not 0 <= action.mlm_control_share <= MAX_CONTROL_SHARE:
                raise ValidationError(
                    _(
                        "%(action)s: the control group must be between 0 and "
                        "%(max)s%% of the customers.",
                        action=action.display_name,
                        max=MAX_CONTROL_SHARE,
                    )
                )
            if not 1 <= action.mlm_window_days <= 730:
                raise ValidationError(
                    _(
                        "%(action)s: the measurement window must be between 1 "
                        "and 730 days.",
                        action=action.display_name,
                    )
                )

    def _mlm_in_control(self, partner):
        """Whether `partner` (a contact or its id) is held out of the action
        `self`."""
        self.ensure_one()
        partner_id = partner if isinstance(partner, int) else partner.id
        if not partner_id:
            return False
        return uplift_tools.in_control(
            self._name, self.id, partner_id, self.mlm_control_share
        )

    def action_mlm_refresh_results(self):
        """Recompute the results of these actions now (the nightly job does
        it for every action)."""
        self.check_access("read")
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_user"):
            raise AccessError(_("Only loyalty users may refresh results."))
        self.env["loyalty.mlm.action.result"].sudo()._mlm_refresh(self.sudo())
        self.invalidate_recordset(["mlm_result_ids", "mlm_verdict"])
        return True

    def action_mlm_open_results(self):
        self.ensure_one()
        # Public: only an action the caller may read opens its results.
        self.check_access("read")
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "loyalty_mlm.loyalty_mlm_action_result_action"
        )
        action["domain"] = self._mlm_result_domain()
        action["context"] = {}
        return action

    # Hooks of the results (loyalty.mlm.action.result._mlm_refresh) --------

    def _mlm_result_population(self):
        """[(partner id, exposure datetime, in control)] of the action `self`:
        who it reached or held out, and when."""
        raise NotImplementedError

    def _mlm_result_cost(self, population):
        """What the action cost (company currency) besides the discounts of
        its coupons (counted with the figures): the points it credited."""
        return 0.0

    def _mlm_result_coupons(self):
        """SQL condition on a loyalty_card `c`: the coupons (or cards) the
        action hands out, whose use and discounts the results count."""
        return SQL("FALSE")
