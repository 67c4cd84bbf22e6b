import logging
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from odoo import _, api, fields, models

from ..tools.lifecycle import STAGES, StageInput, decide_stage
from ..tools.score_metrics import (
    calibration_table,
    rate_per_band,
    rate_per_group,
    roc_auc,
    spearman,
    top_share_capture,
)
from ..tools.scoring import population_interval, score_population

_logger = logging.getLogger(__name__)

# Churn risk bands of the report (0..100).
QUALITY_CHURN_EDGES = (20, 40, 60, 80)
# Share of customers whose spend the lifetime value's top is measured on.
QUALITY_TOP_SHARE = 0.2
# AUC from which churn risk "ranks well" / "ranks fairly" (0.5: a coin).
QUALITY_AUC_GOOD = 0.75
QUALITY_AUC_FAIR = 0.65


class LoyaltyMlmScoreQuality(models.Model):
    """How well the scores predicted, per company: the product checks itself.

    Once a month (and on demand) the nightly chain is replayed as of N days
    ago, N the churn horizon: the scores and stages each customer would have
    had then, computed from the orders before that day only (the same SQL
    aggregation, model fit and rules as the nightly refresh), set against
    what the customers did since. Stored as headline figures, the tables as
    JSON, and one sentence a manager can read.
    """

    _name = "loyalty.mlm.score.quality"
    _description = "Score Quality"
    _order = "date desc, id desc"
    _rec_name = "date"

    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda s: s.env.company
    )
    date = fields.Date(string="Checked On", required=True, readonly=True)
    as_of = fields.Date(
        string="Scores As Of",
        readonly=True,
        help="The scores were recomputed from the orders before this day, then "
        "compared with what the customers did since.",
    )
    horizon_days = fields.Integer(string="Horizon (days)", readonly=True)
    customer_count = fields.Integer(string="Customers", readonly=True)
    repurchase_rate = fields.Float(
        string="Bought Again (%)",
        readonly=True,
        help="Customers who ordered again within the horizon.",
    )
    churn_auc = fields.Float(
        string="Churn Risk AUC",
        digits=(3, 3),
        readonly=True,
        help="Probability that a customer who did not come back had a higher "
        "churn risk than one who did: 0.5 is a coin toss, 1 a perfect ranking.",
    )
    recency_auc = fields.Float(
        string="Recency AUC",
        digits=(3, 3),
        readonly=True,
        help="The same for plain days since the last order, for comparison.",
    )
    predicted_churn = fields.Float(
        string="Predicted Churn (%)",
        readonly=True,
        help="Mean churn risk of the customers as of then.",
    )
    observed_churn = fields.Float(
        string="Observed Churn (%)",
        readonly=True,
        help="Share of the customers who did not order within the horizon.",
    )
    clv_capture = fields.Float(
        string="CLV Top 20% Capture (%)",
        readonly=True,
        help="Share of the spend since then brought by the 20% of customers "
        "with the highest lifetime value.",
    )
    past_spend_capture = fields.Float(
        string="Past Spend Top 20% Capture (%)",
        readonly=True,
        help="The same for the 20% who had spent most, for comparison.",
    )
    clv_spearman = fields.Float(
        string="CLV Rank Correlation",
        digits=(3, 3),
        readonly=True,
        help="Spearman correlation of the lifetime value with the spend since.",
    )
    summary = fields.Char(string="Reading", readonly=True)
    details = fields.Json(readonly=True)
    details_html = fields.Html(
        string="Tables", compute="_compute_details_html", sanitize=False
    )

    @api.depends("details")
    def _compute_details_html(self):
        for report in self:
            report.details_html = report._mlm_details_html()

    def _mlm_details_html(self):
        """The tables of `details`, as HTML (values escaped)."""
        details = self.details or {}
        labels = dict(self.env["loyalty.mlm.stage"]._fields["code"].selection)
        tables = [
            (
                _("Bought again per stage"),
                [_("Stage"), _("Customers"), _("Bought again")],
                [
                    (labels.get(row["label"], row["label"]), row["count"], row["rate"])
                    for row in details.get("stages", [])
                ],
            ),
            (
                _("Bought again per churn risk band"),
                [_("Churn risk"), _("Customers"), _("Bought again")],
                [
                    (row["label"], row["count"], row["rate"])
                    for row in details.get("bands", [])
                ],
            ),
            (
                _("Calibration (tenths by churn risk)"),
                [_("Tenth"), _("Customers"), _("Predicted churn"), _("Observed churn")],
                [
                    (row["label"], row["count"], row["predicted"], row["observed"])
                    for row in details.get("calibration", [])
                ],
            ),
        ]
        html = Markup()
        for title, header, rows in tables:
            if not rows:
                continue
            head = Markup("").join(Markup("<th>%s</th>") % h for h in header)
            body = Markup("").join(
                Markup("<tr>%s</tr>")
                % Markup("").join(
                    Markup("<td>%s</td>")
                    % (f"{cell:.0%}" if isinstance(cell, float) else cell)
                    for cell in row
                )
                for row in rows
            )
            html += Markup(
                "<h5>%s</h5><table class='table table-sm o_mlm_score_quality'>"
                "<thead><tr>%s</tr></thead><tbody>%s</tbody></table>"
            ) % (escape(title), head, body)
        return html

    # ------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------

    @api.model
    def action_mlm_check_now(self):
        """Compute a report for the current company now (managers)."""
        self.check_access("create")
        report = self._mlm_compute(self.env.company)
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": report.id,
            "view_mode": "form",
            "target": "current",
        }

    # ------------------------------------------------------------
    # Engine
    # ------------------------------------------------------------

    @api.model
    def _mlm_demo_score_quality(self):
        """Demo data: a report on the demo company's score story."""
        return self._mlm_compute(self.env.company)

    @api.model
    def _cron_compute_score_quality(self, companies=None):
        """Monthly: one report per company with customers (a company
        without any customer then gets none), progress to ir.cron (each
        company's report is committed as it is done)."""
        companies = companies or self.env["res.company"].sudo().search([])
        done = 0
        todo = list(companies)
        for company in todo:
            self.sudo()._mlm_compute(company, skip_empty=True)
            done += 1
            self.env["ir.cron"]._notify_progress(done=done, remaining=len(todo) - done)
        return done

    @api.model
    def _mlm_compute(self, company, today=None, skip_empty=False):
        """Replay the nightly chain of `company` as of `horizon` days before
        `today` and measure it against what happened since; returns the new
        report (none with `skip_empty` when nobody had ordered then)."""
        Score = self.env["loyalty.mlm.partner.score"]
        today = today or fields.Date.context_today(self)
        horizon = company.mlm_churn_horizon_days
        as_of = today - timedelta(days=horizon)
        until = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
        then_rows = Score._mlm_score_rows(company, as_of, previous=True, until=until)
        if not then_rows and skip_empty:
            return self.browse()
        population, days = Score._mlm_score_population_of_rows(then_rows, as_of)
        params = Score._mlm_score_params(company, population_interval(population))
        scores, _reference = score_population(population, as_of, params)
        model = Score._mlm_score_fit(company, population, days)
        scores = Score._mlm_score_model(population, days, scores, model)
        # What they did since: the same aggregation up to today (orders and
        # revenue then subtracted).
        now = {
            row[0]: row
            for row in Score._mlm_score_rows(
                company, today, population.partner_ids, previous=False
            )
        }
        bought, spend = [], []
        for pid, orders, revenue in zip(
            population.partner_ids,
            population.orders_total,
            population.revenue_total,
            strict=True,
        ):
            row = now.get(pid)
            bought.append(bool(row) and row[6] > orders)
            spend.append(max(row[7] - revenue, 0.0) if row else 0.0)
        stage_params = self.env["loyalty.mlm.stage"]._mlm_stage_params(company)
        stages = []
        for i, row in enumerate(then_rows):
            first = as_of - timedelta(days=row[1])
            last = as_of - timedelta(days=row[2])
            code, _reason = decide_stage(
                StageInput(
                    first_order=first,
                    last_order=last,
                    orders_total=row[6],
                    orders_12m=row[3],
                    orders_prev_12m=row[9],
                    churn_risk=scores[i][6],
                    usage_segment=scores[i][4],
                    quadrant=scores[i][5],
                    churn_rise=scores[i][8],
                ),
                as_of,
                stage_params,
            )
            stages.append(code)
        values = self._mlm_measure(scores, population, bought, spend, stages)
        values.update(
            company_id=company.id, date=today, as_of=as_of, horizon_days=horizon
        )
        report = self.sudo().create(values)
        _logger.info("Score quality of %s: %s", company.name, report.summary)
        return report.sudo(False)

    @api.model
    def _mlm_measure(self, scores, population, bought, spend, stages):
        """The report's values from the scores as of then (ENGINE_KEYS
        tuples), the population then, and per customer: bought again,
        spend since, stage then."""
        n = len(scores)
        if not n:
            return {"customer_count": 0, "summary": _("No customers to check yet.")}
        churned = [not b for b in bought]
        risk = [s[6] for s in scores]
        clv = [s[7] for s in scores]
        recency = [max(d, 0) for d in population.last_order_days]
        auc = roc_auc(risk, churned)
        recency_auc = roc_auc(recency, churned)
        capture = top_share_capture(clv, spend, QUALITY_TOP_SHARE)
        past = top_share_capture(population.revenue_total, spend, QUALITY_TOP_SHARE)
        rank = spearman(clv, spend)
        order = {code: i for i, code in enumerate(STAGES)}
        details = {
            "stages": sorted(
                (
                    {"label": label, "count": count, "rate": rate}
                    for label, (count, rate) in rate_per_group(stages, bought).items()
                ),
                key=lambda row: order.get(row["label"], len(order)),
            ),
            "bands": [
                {"label": r.label, "count": r.count, "rate": r.observed}
                for r in rate_per_band(risk, bought, QUALITY_CHURN_EDGES)
            ],
            "calibration": [
                {
                    "label": r.label,
                    "count": r.count,
                    "predicted": r.predicted / 100.0,
                    "observed": r.observed,
                }
                for r in calibration_table(risk, churned, 10)
            ],
        }
        values = {
            "customer_count": n,
            "repurchase_rate": 100.0 * sum(bought) / n,
            "churn_auc": auc or 0.0,
            "recency_auc": recency_auc or 0.0,
            "predicted_churn": sum(risk) / n,
            "observed_churn": 100.0 * sum(churned) / n,
            "clv_capture": 100.0 * (capture or 0.0),
            "past_spend_capture": 100.0 * (past or 0.0),
            "clv_spearman": rank or 0.0,
            "details": details,
        }
        values["summary"] = self._mlm_reading(auc, capture, details["stages"])
        return values

    @api.model
    def _mlm_reading(self, auc, capture, stages):
        """One sentence for managers."""
        if auc is None:
            churn = _("Churn risk cannot be checked yet (everybody did the same).")
        elif auc >= QUALITY_AUC_GOOD:
            churn = _("Churn risk ranks well: %(auc).2f.", auc=auc)
        elif auc >= QUALITY_AUC_FAIR:
            churn = _("Churn risk ranks fairly: %(auc).2f.", auc=auc)
        else:
            churn = _("Churn risk ranks poorly: %(auc).2f.", auc=auc)
        parts = [churn]
        if capture is not None:
            parts.append(
                _(
                    "The top 20%% by lifetime value brought %(share).0f%% of the "
                    "spend since.",
                    share=100.0 * capture,
                )
            )
        rates = {row["label"]: row["rate"] for row in stages}
        if "retention" in rates and "growth" in rates:
            parts.append(
                _(
                    "Retention bought again %(retention).0f%%, Growth %(growth).0f%%.",
                    retention=100.0 * rates["retention"],
                    growth=100.0 * rates["growth"],
                )
            )
        return " ".join(parts)
