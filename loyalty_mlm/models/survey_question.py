from odoo import fields, models


class SurveyQuestion(models.Model):
    _inherit = "survey.question"

    mlm_nps_role = fields.Selection(
        [("score", "NPS score (0-10)"), ("comment", "NPS comment")],
        string="Member Feedback",
        help="Answers to this question are copied to the member (loyalty_mlm): "
        "the score makes him a promoter, passive or detractor.",
    )
