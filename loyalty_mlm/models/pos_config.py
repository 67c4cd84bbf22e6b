from odoo import api, models
from odoo.tools import ormcache


class PosConfig(models.Model):
    _inherit = "pos.config"

    def _mlm_targeted_programs(self):
        """The register's targeted programmes (see loyalty.program "Targeted
        programmes"), sudo: checked on every order sync."""
        self.ensure_one()
        return (
            self.env["loyalty.program"]
            .sudo()
            .browse(self._mlm_targeted_program_ids(self.id))
        )

    @api.model
    @ormcache("config_id")
    def _mlm_targeted_program_ids(self, config_id):
        # Cached: every order sync asks, and most registers have no targeted
        # programme (cleared when a programme changes, see loyalty.program
        # create/write/unlink). sudo, with the register's company instead of
        # the user's record rules, so the answer is the same for every user.
        config = self.sudo().with_context(active_test=True).browse(config_id)
        programs = config._get_program_ids().filtered(
            lambda program: (
                program.mlm_restricted
                and (not program.company_id or program.company_id == config.company_id)
            )
        )
        return tuple(programs.ids)

    def use_coupon_code(self, code, creation_date, partner_id, pricelist_id):
        """Refuse the code of a targeted programme for a customer who may not
        use it (see loyalty.program "Targeted programmes")."""
        result = super().use_coupon_code(code, creation_date, partner_id, pricelist_id)
        if not result.get("successful"):
            return result
        program = self.env["loyalty.program"].browse(result["payload"]["program_id"])
        partner = (
            self.env["res.partner"]
            .browse(partner_id or [])
            .with_company(self.company_id)
        )
        program, message = program.with_company(self.company_id)._mlm_check_partner(
            partner
        )
        if program:
            return {"successful": False, "payload": {"error_message": message}}
        return result
