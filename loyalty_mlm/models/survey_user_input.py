from datetime import timedelta

from odoo import _, api, fields, models

NPS_CATEGORY_SELECTION = [
    ("promoter", "Promoter"),
    ("passive", "Passive"),
    ("detractor", "Detractor"),
]


def nps_category(score):
    """Net Promoter categories: 9-10 promoter, 7-8 passive, 0-6 detractor."""
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


class SurveyUserInput(models.Model):
    """A member's answer to an NPS survey, linked to him: the score and
    comment are copied here (for reporting per stage, segment and tier as
    they were when he answered) and to the contact (his latest)."""

    _inherit = "survey.user_input"

    mlm_nps_score = fields.Integer(string="NPS Score", readonly=True)
    mlm_nps_category = fields.Selection(
        NPS_CATEGORY_SELECTION, string="NPS Category", readonly=True, index=True
    )
    mlm_nps_value = fields.Integer(
        string="NPS",
        compute="_compute_mlm_nps_value",
        store=True,
        aggregator="avg",
        help="+100 promoter, 0 passive, -100 detractor: its average over "
        "answers is the Net Promoter Score.",
    )
    mlm_nps_comment = fields.Text(string="NPS Comment", readonly=True)
    mlm_stage_id = fields.Many2one(
        "loyalty.mlm.stage", string="Stage When Answered", readonly=True
    )
    mlm_tier_id = fields.Many2one(
        "loyalty.mlm.tier", string="Tier When Answered", readonly=True
    )
    mlm_usage_segment = fields.Char(string="Segment When Answered", readonly=True)

    @api.depends("mlm_nps_category")
    def _compute_mlm_nps_value(self):
        # Computed (not written): a passive's 0 must reach the column, or the
        # average (the NPS) would skip it; a write of 0 over an unset value
        # is no change to the ORM.
        values = {"promoter": 100, "passive": 0, "detractor": -100}
        for answer in self:
            answer.mlm_nps_value = values.get(answer.mlm_nps_category, 0)

    def _mark_done(self):
        res = super()._mark_done()
        self._mlm_record_nps()
        return res

    def _mlm_record_nps(self):
        """Copy the NPS answers to the answer and to the member; a detractor
        gets an activity for his salesperson."""
        for answer in self.filtered(lambda a: a.partner_id and not a.test_entry):
            lines = answer.user_input_line_ids.filtered(
                lambda line: line.question_id.mlm_nps_role and not line.skipped
            )
            score_line = lines.filtered(
                lambda line: line.question_id.mlm_nps_role == "score"
            )[:1]
            if not score_line:
                continue
            score = score_line.value_scale
            comment = "\n".join(
                line.value_text_box or line.value_char_box or ""
                for line in lines
                if line.question_id.mlm_nps_role == "comment"
            ).strip()
            category = nps_category(score)
            partner = answer.partner_id.commercial_partner_id.sudo()
            answer.sudo().write(
                {
                    "mlm_nps_score": score,
                    "mlm_nps_category": category,
                    "mlm_nps_comment": comment,
                    "mlm_stage_id": partner.mlm_stage_id.id,
                    "mlm_tier_id": partner.mlm_tier_id.id,
                    "mlm_usage_segment": partner.mlm_usage_segment or False,
                }
            )
            partner.write(
                {
                    "mlm_nps_score": score,
                    "mlm_nps_category": category,
                    "mlm_nps_comment": comment,
                    "mlm_nps_date": answer.end_datetime or fields.Datetime.now(),
                }
            )
            if category == "detractor":
                answer._mlm_detractor_activity(partner, score, comment)

    def _mlm_detractor_activity(self, partner, score, comment):
        user = partner.user_id
        if not user:
            return self.env["mail.activity"]
        return partner.activity_schedule(
            "mail.mail_activity_data_todo",
            date_deadline=fields.Date.context_today(self) + timedelta(days=2),
            summary=_("Detractor: NPS score %s", score),
            note=comment or "",
            user_id=user.id,
        )

    @api.model
    def _mlm_nps(self, domain):
        """The Net Promoter Score (% promoters - % detractors, -100..100) of
        the answers in `domain`, or None without any (one query)."""
        counts = dict(
            self.sudo()._read_group(
                [*domain, ("mlm_nps_category", "!=", False)],
                ["mlm_nps_category"],
                ["__count"],
            )
        )
        total = sum(counts.values())
        if not total:
            return None
        net = counts.get("promoter", 0) - counts.get("detractor", 0)
        return round(100 * net / total, 1)
