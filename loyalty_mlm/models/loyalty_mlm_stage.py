from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import ormcache

from ..tools.lifecycle import STAGES


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
        self.env.registry.clear_cache()  # _mlm_ids_by_code
        return super().create(vals_list)

    def write(self, vals):
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
