from odoo import _, api, fields, models
from odoo.exceptions import ValidationError


class ResCompany(models.Model):
    _inherit = "res.company"

    mlm_program_id = fields.Many2one(
        "loyalty.program",
        string="Member Programme",
        domain="[('program_type', '=', 'loyalty'), ('company_id', 'in', [id, False])]",
        help="The loyalty programme whose cards are the members' point balances.",
    )
    mlm_points_validity_months = fields.Integer(
        string="Points Validity (months)",
        default=12,
        help="Earned points expire this many months after they were earned "
        "(0: they never expire).",
    )
    mlm_auto_enroll = fields.Boolean(
        string="Enrol on First Order",
        default=True,
        help="A customer becomes a member on their first confirmed or paid order.",
    )

    @api.constrains("mlm_program_id")
    def _check_mlm_program_id(self):
        for company in self.filtered("mlm_program_id"):
            program = company.mlm_program_id
            if program.program_type != "loyalty":
                raise ValidationError(
                    _("The member programme must be a loyalty programme.")
                )
            if program.company_id and program.company_id != company:
                raise ValidationError(
                    _("The member programme of %s belongs to another company.")
                    % company.name
                )

    @api.constrains("mlm_points_validity_months")
    def _check_mlm_points_validity_months(self):
        if any(company.mlm_points_validity_months < 0 for company in self):
            raise ValidationError(_("The points validity cannot be negative."))

    def write(self, vals):
        res = super().write(vals)
        if vals.get("mlm_program_id"):
            # Cards that existed before the programme was chosen start their
            # ledger with an opening entry, so balance == ledger from now on.
            self.mlm_program_id.coupon_ids._mlm_post_opening_balance()
        return res
