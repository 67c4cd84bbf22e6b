from odoo import models


class PosConfig(models.Model):
    _inherit = "pos.config"

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
