import logging
from datetime import timedelta

from odoo import Command, _, api, fields, models
from odoo.tools import SQL

from ..tools import uplift as uplift_tools

_logger = logging.getLogger(__name__)

MEASURED_MODELS = ("loyalty.mlm.treatment", "loyalty.mlm.campaign", "loyalty.program")
# metric: (kind, label); the first is the action's verdict.
METRICS = {
    "repeat_rate": "rate",
    "orders": "mean",
    "revenue": "mean",
    "points_earned": "mean",
    "points_spent": "mean",
    "coupons_used": "mean",
    "stage_moved": "rate",
}
BONUS_KINDS = (
    "earn",
    "welcome",
    "birthday",
    "referral",
    "tier_bonus",
    "campaign_bonus",
    "treatment",
)


class LoyaltyMlmActionResult(models.Model):
    """Does it work? One row per measured action and figure: the treated
    customers against the control group over the action's measurement
    window, with the uplift, its 95% confidence interval and a verdict.

    Stored, filled by the nightly job (`_cron_mlm_results`) and by the
    *Refresh* button of each action: the cockpit and the report read rows,
    never orders. Each refresh replaces an action's rows. The figures of a
    customer count from his exposure (the treatment's log row, the
    campaign's or programme's start) for `window` days, cut at the refresh.
    """

    _name = "loyalty.mlm.action.result"
    _description = "Action Result (Uplift)"
    _order = "date desc, res_model, res_id, sequence"
    _rec_name = "action_name"

    company_id = fields.Many2one("res.company", required=True, index=True)
    res_model = fields.Selection(
        [
            ("loyalty.mlm.treatment", "Treatment"),
            ("loyalty.mlm.campaign", "Campaign"),
            ("loyalty.program", "Targeted programme"),
        ],
        string="Action Type",
        required=True,
    )
    res_id = fields.Many2oneReference(
        string="Action ID", model_field="res_model", required=True, index=True
    )
    action_name = fields.Char(string="Action", required=True)
    date = fields.Datetime(string="Computed On", required=True)
    window_days = fields.Integer(string="Window (days)")
    sequence = fields.Integer()
    metric = fields.Selection(
        [
            ("repeat_rate", "Repeat purchase rate"),
            ("orders", "Orders per customer"),
            ("revenue", "Revenue per customer"),
            ("points_earned", "Points earned per customer"),
            ("points_spent", "Points spent per customer"),
            ("coupons_used", "Coupons used per customer"),
            ("stage_moved", "Changed stage"),
        ],
        required=True,
    )
    is_primary = fields.Boolean(
        string="Verdict Figure", help="The figure the action's verdict follows."
    )
    n_treated = fields.Integer(string="Treated", aggregator="max")
    n_control = fields.Integer(string="Control", aggregator="max")
    value_treated = fields.Float(
        string="Treated Value", digits=(16, 4), aggregator="avg"
    )
    value_control = fields.Float(
        string="Control Value", digits=(16, 4), aggregator="avg"
    )
    uplift = fields.Float(
        digits=(16, 4), aggregator="avg", help="Treated minus control."
    )
    uplift_pct = fields.Float(
        string="Uplift (%)",
        digits=(16, 1),
        aggregator="avg",
        help="The uplift relative to the control value (empty: control is 0).",
    )
    ci_low = fields.Float(string="95% CI From", digits=(16, 4), aggregator="avg")
    ci_high = fields.Float(string="95% CI To", digits=(16, 4), aggregator="avg")
    has_interval = fields.Boolean()
    verdict = fields.Selection(
        [
            ("working", "Working"),
            ("no_effect", "No measurable effect yet"),
            ("harmful", "Harmful"),
        ],
        required=True,
    )
    cost = fields.Float(
        digits=(16, 2),
        help="Value of the points the action credited (treatment and campaign "
        "bonuses) plus the discounts its coupons or programme gave the treated "
        "customers in their window (sale and POS reward lines).",
    )
    incremental_margin = fields.Float(
        digits=(16, 2),
        help="Revenue uplift per customer x treated customers x the default "
        "margin rate (Scores settings).",
    )
    roi = fields.Float(
        string="ROI (%)",
        digits=(16, 1),
        aggregator="avg",
        help="(incremental margin - cost) / cost; empty without cost.",
    )

    @api.depends("action_name", "metric")
    def _compute_display_name(self):
        labels = dict(self._fields["metric"]._description_selection(self.env))
        for row in self:
            row.display_name = f"{row.action_name}: {labels.get(row.metric, '')}"

    def action_open_action(self):
        """The measured action's form (for a caller who may read both)."""
        self.ensure_one()
        self.check_access("read")
        self.env[self.res_model].browse(self.res_id).check_access("read")
        return {
            "type": "ir.actions.act_window",
            "res_model": self.res_model,
            "res_id": self.res_id,
            "view_mode": "form",
            "views": [(False, "form")],
        }

    # ------------------------------------------------------------
    # Computation
    # ------------------------------------------------------------

    @api.model
    def _cron_mlm_results(self):
        """Nightly: the results of every measured action."""
        for model in MEASURED_MODELS:
            actions = self.env[model].sudo()._mlm_measured_actions()
            self._mlm_refresh(actions)

    @api.model
    def _mlm_refresh(self, actions, now=None):
        """Replace the result rows of `actions` (one model): one query for
        the population (the action's hook) and one for its figures."""
        now = now or fields.Datetime.now()
        if not actions:
            return self.browse()
        self.search(
            [("res_model", "=", actions._name), ("res_id", "in", actions.ids)]
        ).unlink()
        vals_list = []
        for action in actions:
            population = action._mlm_result_population()
            figures = self._mlm_figures(action, population, now)
            vals_list += self._mlm_result_values(action, population, figures, now)
        return self.create(vals_list)

    def _mlm_company_of(self, action):
        return action["company_id"] if action["company_id"] else self.env.company

    def _mlm_figures(self, action, population, now):
        """{partner id: (control, orders, revenue, earned, spent, moved,
        coupons used, discount)} in each customer's window, for the whole
        population in one query. Coupons used: the action's coupons (or its
        programme's cards) applied on a confirmed sale or paid POS order;
        discount: what their reward lines took off, untaxed."""
        if not population:
            return {}
        company = self._mlm_company_of(action)
        window = timedelta(days=action.mlm_window_days)
        partners, starts, stops, controls = [], [], [], []
        for partner_id, since, control in population:
            partners.append(partner_id)
            starts.append(since)
            stops.append(min(since + window, now))
            controls.append(bool(control))
        stream = self.env["loyalty.mlm.kpi.snapshot"]._mlm_order_stream(
            company, min(starts), max(stops)
        )
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                WITH pop AS (
                    SELECT * FROM unnest(%(partners)s::int[],
                                         %(starts)s::timestamp[],
                                         %(stops)s::timestamp[],
                                         %(controls)s::bool[])
                           AS p(partner_id, since, until, control)
                ), orders AS (
                    SELECT p.partner_id,
                           COUNT(*) FILTER (WHERE o.is_order) AS orders,
                           COALESCE(SUM(o.revenue), 0) AS revenue
                      FROM pop p
                      JOIN (%(stream)s) o ON o.partner_id = p.partner_id
                       AND o.at >= p.since AND o.at < p.until
                  GROUP BY p.partner_id
                ), points AS (
                    SELECT p.partner_id,
                           COALESCE(SUM(l.points) FILTER (
                               WHERE l.points > 0 AND l.kind = ANY(%(bonus)s)), 0)
                               AS earned,
                           COALESCE(-SUM(l.points) FILTER (
                               WHERE l.kind = 'redeem'), 0) AS spent
                      FROM pop p
                      JOIN loyalty_mlm_ledger l ON l.partner_id = p.partner_id
                       AND l.company_id = %(company)s
                       AND l.date >= p.since AND l.date < p.until
                  GROUP BY p.partner_id
                ), rewards AS (
                    SELECT so.partner_id, so.date_order AS at, sl.coupon_id,
                           -sl.price_subtotal AS discount
                      FROM sale_order_line sl
                      JOIN sale_order so ON so.id = sl.order_id
                      JOIN loyalty_card c ON c.id = sl.coupon_id
                     WHERE so.state = 'sale' AND so.company_id = %(company)s
                       AND sl.reward_id IS NOT NULL AND %(coupons)s
                    UNION ALL
                    SELECT po.partner_id, po.date_order, pl.coupon_id,
                           -pl.price_subtotal
                      FROM pos_order_line pl
                      JOIN pos_order po ON po.id = pl.order_id
                      JOIN loyalty_card c ON c.id = pl.coupon_id
                     WHERE po.state IN ('paid', 'done', 'invoiced')
                       AND po.company_id = %(company)s
                       AND pl.reward_id IS NOT NULL AND %(coupons)s
                ), coupons AS (
                    SELECT p.partner_id, COUNT(DISTINCT r.coupon_id) AS used,
                           COALESCE(SUM(r.discount), 0) AS discount
                      FROM pop p
                      JOIN rewards r ON r.partner_id = p.partner_id
                       AND r.at >= p.since AND r.at < p.until
                  GROUP BY p.partner_id
                ), moves AS (
                    SELECT p.partner_id, COUNT(*) AS moved
                      FROM pop p
                      JOIN loyalty_mlm_stage_history h
                        ON h.partner_id = p.partner_id
                       AND h.company_id = %(company)s
                       AND h.date > p.since AND h.date < p.until
                  GROUP BY p.partner_id
                )
                SELECT p.partner_id, p.control,
                       COALESCE(o.orders, 0), COALESCE(o.revenue, 0)::float8,
                       COALESCE(pt.earned, 0)::float8, COALESCE(pt.spent, 0)::float8,
                       COALESCE(m.moved, 0) > 0,
                       COALESCE(c.used, 0), COALESCE(c.discount, 0)::float8
                  FROM pop p
             LEFT JOIN orders o ON o.partner_id = p.partner_id
             LEFT JOIN points pt ON pt.partner_id = p.partner_id
             LEFT JOIN moves m ON m.partner_id = p.partner_id
             LEFT JOIN coupons c ON c.partner_id = p.partner_id
                """,
                partners=partners,
                starts=starts,
                stops=stops,
                controls=controls,
                stream=stream,
                bonus=list(BONUS_KINDS),
                company=company.id,
                coupons=action._mlm_result_coupons(),
            )
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    def _mlm_result_values(self, action, population, figures, now):
        """The result rows of `action` from its customers' figures."""
        company = self._mlm_company_of(action)
        treated = [f for f in figures.values() if not f[0]]
        control = [f for f in figures.values() if f[0]]
        columns = {
            "repeat_rate": 1,
            "orders": 1,
            "revenue": 2,
            "points_earned": 3,
            "points_spent": 4,
            "stage_moved": 5,
            "coupons_used": 6,
        }
        # The points it credited, and the discounts the treated got.
        cost = action._mlm_result_cost([p for p in population if not p[2]]) + sum(
            f[7] for f in treated
        )
        rows = []
        for sequence, (metric, kind) in enumerate(METRICS.items()):
            column = columns[metric]
            if kind == "rate":
                result = uplift_tools.rate_uplift(
                    sum(1 for f in treated if f[column]),
                    len(treated),
                    sum(1 for f in control if f[column]),
                    len(control),
                )
            else:
                result = uplift_tools.mean_uplift(
                    [float(f[column]) for f in treated],
                    [float(f[column]) for f in control],
                )
            values = {
                "company_id": company.id,
                "res_model": action._name,
                "res_id": action.id,
                "action_name": action.display_name,
                "date": now,
                "window_days": action.mlm_window_days,
                "sequence": sequence,
                "metric": metric,
                "is_primary": sequence == 0,
                "n_treated": result.n_treated,
                "n_control": result.n_control,
                "value_treated": result.treated,
                "value_control": result.control,
                "uplift": result.diff,
                "uplift_pct": result.relative * 100
                if result.relative is not None
                else 0.0,
                "ci_low": result.low or 0.0,
                "ci_high": result.high or 0.0,
                "has_interval": result.low is not None,
                "verdict": uplift_tools.verdict(result),
            }
            if metric == "revenue":
                margin = (
                    result.diff
                    * result.n_treated
                    * company.mlm_score_default_margin_pct
                    / 100
                )
                ratio = uplift_tools.roi(margin, cost)
                values.update(
                    cost=cost,
                    incremental_margin=margin,
                    roi=ratio * 100 if ratio is not None else 0.0,
                )
            rows.append(values)
        return rows

    @api.model
    def _mlm_verdict_summary(self, company, limit=8):
        """The cockpit's "Does it work?": the verdict figure of the latest
        results of `company`, one query whatever the number of customers."""
        rows = self.search_fetch(
            [("company_id", "=", company.id), ("is_primary", "=", True)],
            [
                "action_name",
                "res_model",
                "res_id",
                "n_treated",
                "n_control",
                "uplift",
                "ci_low",
                "ci_high",
                "has_interval",
                "verdict",
            ],
            order="date desc, id desc",
            limit=limit,
        )
        labels = dict(self._fields["verdict"]._description_selection(self.env))
        kinds = dict(self._fields["res_model"]._description_selection(self.env))
        return [
            {
                "id": row.id,
                "res_model": row.res_model,
                "res_id": row.res_id,
                "action": row.action_name,
                "kind": kinds[row.res_model],
                "n_treated": row.n_treated,
                "n_control": row.n_control,
                "uplift": round(row.uplift * 100, 1),
                "ci_low": round(row.ci_low * 100, 1),
                "ci_high": round(row.ci_high * 100, 1),
                "has_interval": row.has_interval,
                "verdict": row.verdict,
                "verdict_label": labels[row.verdict],
            }
            for row in rows
        ]

    @api.model
    def _mlm_no_results_message(self):
        return _("No results yet: actions are measured nightly.")

    # ------------------------------------------------------------
    # Demo
    # ------------------------------------------------------------

    @api.model
    def _mlm_demo_results(self):
        """Demo: Odoo's demo contacts (not this add-on's story members) get
        both measured demo treatments 45 days ago, through the real
        execution (each rule holds half of them out, independently); 20 days
        ago most of those the call treated bought again and few of its
        control group, whatever the newsletter did. So the call works and
        the newsletter shows no effect. Then some NPS answers, the results.

        No new contacts: the register loads the first 100 contacts by name,
        which the POS tests rely on."""
        ref = self.env.ref
        company = self.env.company
        product = ref("loyalty_mlm.product_organic_coffee_demo", False)
        if not company.mlm_program_id or not product:
            return
        now = fields.Datetime.now()
        treated_at = now - timedelta(days=45)
        bought_at = now - timedelta(days=20)
        call = ref("loyalty_mlm.treatment_results_call_demo")
        newsletter = ref("loyalty_mlm.treatment_results_newsletter_demo")
        ours = (
            self.env["ir.model.data"]
            .search([("module", "=", "loyalty_mlm"), ("model", "=", "res.partner")])
            .mapped("res_id")
        )
        companies = self.env["res.company"].search([]).partner_id.ids
        partners = self.env["res.partner"].search(
            [
                ("email", "!=", False),
                ("user_ids", "=", False),
                ("id", "not in", ours + companies),
            ],
            order="id",
            limit=40,
        )
        occasion = f"{company.id}:day:{treated_at.date().isoformat()}"
        for rule in (call, newsletter):
            rule._mlm_fire_batch(company, dict.fromkeys(partners.ids, occasion))
        self.env["loyalty.mlm.treatment.log"].search(
            [("treatment_id", "in", (call | newsletter).ids)]
        ).write({"date": treated_at})
        for i, partner in enumerate(partners, start=1):
            buys = i % 8 == 0 if call._mlm_in_control(partner) else i % 5 != 0
            if not buys:
                continue
            order = self.env["sale.order"].create(
                {
                    "partner_id": partner.id,
                    "order_line": [
                        Command.create({"product_id": product.id, "product_uom_qty": 2})
                    ],
                }
            )
            order.with_context(mlm_ledger_date=bought_at).action_confirm()
            order.date_order = bought_at
            # Made a member by that order (auto-enrolment): since then.
            if partner.mlm_member_since and partner.mlm_member_since > bought_at.date():
                partner.mlm_member_since = bought_at.date()
        self._mlm_demo_nps()
        self._mlm_refresh(call | newsletter)

    @api.model
    def _mlm_demo_nps(self):
        """Some members answer the NPS survey (one detractor)."""
        survey = self.env.ref("loyalty_mlm.survey_member_nps")
        score_q = self.env.ref("loyalty_mlm.survey_member_nps_question_score")
        comment_q = self.env.ref("loyalty_mlm.survey_member_nps_question_comment")
        answers = {
            "anna": (10, "Great coffee and friendly staff."),
            "bram": (9, "Good value with the points."),
            "chloe": (8, ""),
            "daan": (4, "My order was cancelled and nobody called me."),
            "finn": (7, "Fine, but I moved away."),
        }
        for name, (score, comment) in answers.items():
            partner = self.env.ref(f"loyalty_mlm.res_partner_{name}_demo", False)
            if not partner:
                continue
            if score <= 6 and not partner.user_id:
                partner.user_id = self.env.ref("base.user_admin")
            answer = survey._create_answer(partner=partner, check_attempts=False)
            answer._save_lines(score_q, str(score))
            if comment:
                answer._save_lines(comment_q, comment)
            answer._mark_done()
