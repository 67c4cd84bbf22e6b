from odoo import api, fields, models


class LoyaltyProgram(models.Model):
    _inherit = "loyalty.program"

    mlm_is_member_programme = fields.Boolean(
        string="Member Programme",
        compute="_compute_mlm_is_member_programme",
        search="_search_mlm_is_member_programme",
    )

    def _compute_mlm_is_member_programme(self):
        member_ids = self._mlm_member_programme_ids()
        for program in self:
            program.mlm_is_member_programme = program.id in member_ids

    def _search_mlm_is_member_programme(self, operator, value):
        positive = (operator == "=") == bool(value)
        return [
            ("id", "in" if positive else "not in", self._mlm_member_programme_ids())
        ]

    @api.model
    def _mlm_member_programme_ids(self):
        """Ids of every company's member programme (one query)."""
        companies = (
            self.env["res.company"]
            .sudo()
            .search_fetch([("mlm_program_id", "!=", False)], ["mlm_program_id"])
        )
        return set(companies.mlm_program_id.ids)
