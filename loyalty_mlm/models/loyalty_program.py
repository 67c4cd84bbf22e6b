from odoo import api, fields, models
from odoo.tools import ormcache


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
