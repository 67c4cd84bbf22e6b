from odoo import fields, models
from odoo.tools import SQL

from ..tools import kpi as kpi_tools


class LoyaltyMlmKpiSnapshot(models.Model):
    """Satisfaction as a KPI (issue #16): the members' Net Promoter Score of
    each period, from their answers to NPS surveys (survey.user_input
    mlm_nps_value). Kept apart from the snapshot engine: written after it,
    on the company-wide ("all") rows it just built, in one query."""

    _inherit = "loyalty.mlm.kpi.snapshot"

    nps = fields.Float(
        string="NPS",
        digits=(16, 1),
        aggregator="avg",
        help="Net Promoter Score of the members' survey answers of the period "
        "(% promoters - % detractors); 0 without answers (see NPS Answers).",
    )
    nps_answers = fields.Integer(
        string="NPS Answers", help="Survey answers the NPS counts."
    )

    def _mlm_build(self, company, periods, day, dimensions):
        rows = super()._mlm_build(company, periods, day, dimensions)
        rows._mlm_write_nps(company)
        return rows

    def _mlm_write_nps(self, company):
        """The NPS of the "all" rows `self` of `company`: one query for every
        period (answers are not per company: a member's answer counts in
        each company that snapshots)."""
        rows = self.filtered(lambda row: row.dimension == "all")
        if not rows:
            return
        tz = self._mlm_tz(company)
        bounds = {}
        for row in rows:
            period = kpi_tools.Period.containing(row.date_start, row.period_kind)
            bounds[row.id] = period.utc_bounds(tz)
        self.env["survey.user_input"].flush_model(
            ["end_datetime", "mlm_nps_value", "mlm_nps_category"]
        )
        self.env.cr.execute(
            SQL(
                """
                SELECT w.id, COUNT(a.id), AVG(a.mlm_nps_value)
                  FROM unnest(%s::int[], %s::timestamp[], %s::timestamp[])
                       AS w(id, since, until)
                  JOIN survey_user_input a
                    ON a.mlm_nps_category IS NOT NULL
                   AND a.end_datetime >= w.since AND a.end_datetime < w.until
              GROUP BY w.id
                """,
                list(bounds),
                [b[0] for b in bounds.values()],
                [b[1] for b in bounds.values()],
            )
        )
        for row_id, count, value in self.env.cr.fetchall():
            self.browse(row_id).write(
                {"nps": round(float(value), 1), "nps_answers": count}
            )
