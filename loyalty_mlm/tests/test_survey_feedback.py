from datetime import date, datetime

from odoo.tests import new_test_user, tagged

from ..tools import kpi as kpi_tools
from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestSurveyFeedback(LoyaltyMlmCommon):
    """Answers to the member NPS survey, linked to the member.

    ==========  ===========  =====  ==================================
    contact     salesperson  score  what it shows
    ==========  ===========  =====  ==================================
    partner     salesman     3      detractor: activity for salesman
    partner_b   salesman     10     promoter: no activity
    ==========  ===========  =====  ==================================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.survey = cls.env.ref("loyalty_mlm.survey_member_nps")
        cls.q_score = cls.env.ref("loyalty_mlm.survey_member_nps_question_score")
        cls.q_comment = cls.env.ref("loyalty_mlm.survey_member_nps_question_comment")
        cls.salesman = new_test_user(
            cls.env, login="mlm_nps_sales", groups="sales_team.group_sale_salesman"
        )
        (cls.partner | cls.partner_b).write({"user_id": cls.salesman.id})
        cls.partner._mlm_enroll(cls.company)
        cls.env.ref("loyalty_mlm.stage_winback")._mlm_move(cls.partner, "lapsed")

    def answer(self, partner, score, comment=""):
        answer = self.survey._create_answer(partner=partner, check_attempts=False)
        answer._save_lines(self.q_score, str(score))
        if comment:
            answer._save_lines(self.q_comment, comment)
        answer._mark_done()
        return answer

    def test_shipped_survey(self):
        self.assertEqual(self.q_score.question_type, "scale")
        self.assertEqual((self.q_score.scale_min, self.q_score.scale_max), (0, 10))
        self.assertEqual(self.q_score.mlm_nps_role, "score")
        self.assertEqual(self.q_comment.mlm_nps_role, "comment")
        winback = self.env.ref("loyalty_mlm.treatment_winback")
        self.assertEqual(winback.survey_id, self.survey)

    def test_detractor_answer_reaches_member_lead_and_salesperson(self):
        answer = self.answer(self.partner, 3, "Too expensive.")
        self.assertEqual(
            (
                answer.mlm_nps_score,
                answer.mlm_nps_category,
                answer.mlm_nps_value,
                answer.mlm_stage_id.code,
            ),
            (3, "detractor", -100, "winback"),
        )
        self.assertEqual(
            (
                self.partner.mlm_nps_score,
                self.partner.mlm_nps_category,
                self.partner.mlm_nps_comment,
                self.partner.mlm_nps_date,
            ),
            (3, "detractor", "Too expensive.", answer.end_datetime),
        )
        lead = self.env["crm.lead"].create(
            {"name": "Renewal", "partner_id": self.partner.id}
        )
        self.assertEqual(
            (lead.mlm_nps_score, lead.mlm_nps_category, lead.mlm_nps_comment),
            (3, "detractor", "Too expensive."),
        )
        activity = self.partner.activity_ids
        self.assertEqual(
            (activity.user_id, activity.summary, activity.res_model),
            (self.salesman, "Detractor: NPS score 3", "res.partner"),
        )
        self.assertIn("Too expensive.", str(activity.note))

    def test_promoter_and_passive_get_no_activity(self):
        self.answer(self.partner_b, 10)
        self.assertEqual(self.partner_b.mlm_nps_category, "promoter")
        self.answer(self.partner_b, 7)
        self.assertEqual(
            (self.partner_b.mlm_nps_score, self.partner_b.mlm_nps_category),
            (7, "passive"),
        )
        self.assertEqual(self.partner_b.activity_ids, self.env["mail.activity"])

    def test_nps_figure(self):
        """NPS = % promoters - % detractors, here per stage."""
        Answer = self.env["survey.user_input"]
        answers = (
            self.answer(self.partner, 2)
            | self.answer(self.partner_b, 9)
            | self.answer(self.partner_b, 10)
            | self.answer(self.partner_b, 8)
        )
        self.assertEqual(Answer._mlm_nps([("id", "in", answers.ids)]), 25.0)
        # The reports' figure: the average of +100 / 0 / -100 (a passive's 0
        # is stored, not NULL).
        [(average,)] = Answer._read_group(
            [("id", "in", answers.ids)], [], ["mlm_nps_value:avg"]
        )
        self.assertEqual(average, 25.0)
        self.assertEqual(
            Answer._mlm_nps(
                [("id", "in", answers.ids), ("mlm_stage_id.code", "=", "winback")]
            ),
            -100.0,
        )
        self.assertEqual(Answer._mlm_nps([("id", "=", 0)]), None)

    def test_answer_without_score_changes_nothing(self):
        answer = self.survey._create_answer(partner=self.partner, check_attempts=False)
        answer._save_lines(self.q_comment, "Nothing to say")
        answer._mark_done()
        self.assertEqual(answer.mlm_nps_category, False)
        self.assertEqual(self.partner.mlm_nps_date, False)

    def test_nps_in_the_kpi_snapshots(self):
        """Satisfaction as a KPI: the period's NPS on its snapshot."""
        answers = self.answer(self.partner, 2) | self.answer(self.partner_b, 10)
        answers |= self.answer(self.partner_b, 9)
        answers.write({"end_datetime": datetime(2015, 10, 12, 10, 0)})
        self.answer(self.partner_b, 0).end_datetime = datetime(2015, 9, 30, 10, 0)
        Snapshot = self.env["loyalty.mlm.kpi.snapshot"]
        rows = Snapshot._mlm_build(
            self.company,
            [kpi_tools.Period.month(2015, 10), kpi_tools.Period.month(2015, 11)],
            date(2015, 11, 30),
            False,
        )
        by_month = {
            row.date_start.month: (row.nps, row.nps_answers)
            for row in rows
            if row.dimension == "all"
        }
        # 2 promoters, 1 detractor of 3: (2 - 1) / 3 = 33.3; none in November.
        self.assertEqual(by_month, {10: (33.3, 3), 11: (0.0, 0)})
