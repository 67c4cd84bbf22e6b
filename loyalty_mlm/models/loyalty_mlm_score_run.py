from odoo import api, fields, models


class LoyaltyMlmScoreRun(models.Model):
    """One refresh of the segment scores of one company.

    A full run is created when the nightly job starts and stays "running"
    until every customer of its company is written: the job may stop after any
    batch (time budget, worker killed) and resumes this run on its next call,
    skipping the contacts whose stored scores already are the computed ones. Once
    done, it keeps the population's cut points (`reference`) against which
    the incremental runs score the few customers whose orders changed.
    """

    _name = "loyalty.mlm.score.run"
    _description = "Segment Score Refresh"
    _order = "date_start desc, id desc"
    _rec_name = "date_start"

    company_id = fields.Many2one("res.company", required=True, index=True)
    mode = fields.Selection(
        [("full", "Full"), ("incremental", "Incremental")], required=True
    )
    state = fields.Selection(
        [("running", "Running"), ("done", "Done")],
        required=True,
        default="running",
        index=True,
    )
    date_start = fields.Datetime(
        string="Started",
        required=True,
        help="The next incremental refresh looks for orders changed since "
        "(shortly before) this moment.",
    )
    date_end = fields.Datetime(string="Finished")
    score_date = fields.Date(
        string="Scoring Day",
        required=True,
        help="The day the 12-month windows and the days since the last order "
        "are counted from.",
    )
    customer_count = fields.Integer(
        string="Customers", help="Customers scored by this run."
    )
    done_count = fields.Integer(
        string="Written", help="Contacts whose scores changed, written so far."
    )
    cleared_count = fields.Integer(
        string="Cleared", help="Contacts whose scores were removed (no order left)."
    )
    reference = fields.Json(
        help="Cut points of the population (full runs), see "
        "tools/scoring.py:build_reference."
    )

    @api.model
    def _mlm_start_full_runs(self, companies=None, today=None):
        """A new full run for every company (or `companies`), scoring as of
        `today` (default: today, UTC)."""
        now = fields.Datetime.now()
        if companies is None:
            companies = self.env["res.company"].sudo().search([])
        return self.create(
            [
                {
                    "company_id": company.id,
                    "mode": "full",
                    "date_start": now,
                    "score_date": today or now.date(),
                }
                for company in companies
            ]
        )

    @api.model
    def _mlm_reference_run(self, company):
        """The last finished full run of `company` (the incremental reference)."""
        return self.search(
            [
                ("company_id", "=", company.id),
                ("mode", "=", "full"),
                ("state", "=", "done"),
            ],
            limit=1,
        )

    def _mlm_garbage_collect(self):
        """After the full run `self`: forget the older runs of its company."""
        self.ensure_one()
        older = self.search(
            [("company_id", "=", self.company_id.id), ("id", "<", self.id)]
        )
        older.unlink()
