from odoo import fields, models, tools
from odoo.tools import SQL


class LoyaltyMlmDonationReport(models.Model):
    """Points donated to charities: one row per donation entry of the ledger,
    to total per charity and month (pivot)."""

    _name = "loyalty.mlm.donation.report"
    _description = "Point Donations"
    _auto = False
    _order = "date desc, id desc"
    _rec_name = "charity_id"

    date = fields.Date(readonly=True)
    partner_id = fields.Many2one("res.partner", string="Member", readonly=True)
    charity_id = fields.Many2one("res.partner", string="Charity", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    points = fields.Float(string="Points Donated", digits=(16, 2), readonly=True)
    user_id = fields.Many2one("res.users", string="Recorded By", readonly=True)

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            SQL(
                """
                CREATE OR REPLACE VIEW %s AS (
                    SELECT l.id,
                           l.date::date AS date,
                           l.partner_id,
                           l.res_id AS charity_id,
                           l.company_id,
                           -l.points AS points,
                           l.user_id
                      FROM loyalty_mlm_ledger l
                     WHERE l.kind = 'donation' AND l.res_model = 'res.partner'
                )
                """,
                SQL.identifier(self._table),
            )
        )
