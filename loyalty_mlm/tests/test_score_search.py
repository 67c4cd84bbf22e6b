from unittest.mock import patch

from lxml import etree

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import tagged

from odoo.addons.loyalty_mlm.models.res_partner import _mlm_score_condition_needs_row

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestScoreSearch(LoyaltyMlmCommon):
    """Score filters find the same contacts whichever SQL serves them.

    A condition that a contact without scores cannot meet ("heavy", churn
    risk >= 70) is looked up in the score table alone (issue 22: the
    contact form checks the treatment rules' score conditions on the
    member); any other goes through the join of every contact to its
    scores, which gives empty scores their stored-field meaning.

    | contact | segment | quadrant    | churn risk | CLV    |
    |---------|---------|-------------|-----------:|-------:|
    | heavy   | heavy   | true_friend |         80 | 1200.0 |
    | medium  | medium  | butterfly   |         10 |   NULL |
    | low     | low     | stranger    |          0 |    0.0 |
    | none    | (no score row)                                |
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.heavy, cls.medium, cls.low, cls.none = Partner.create(
            [{"name": f"Search {name}"} for name in ("heavy", "medium", "low", "none")]
        )
        cls.env["loyalty.mlm.partner.score"]._mlm_scores_write(
            cls.env.company,
            fields.Date.today(),
            {
                cls.heavy.id: (5, 5, 5, "555", "heavy", "true_friend", 80, 1200.0, 0),
                cls.medium.id: (3, 3, 3, "333", "medium", "butterfly", 10, None, 0),
                cls.low.id: (1, 1, 1, "111", "low", "stranger", 0, 0.0, 0),
            },
        )
        cls.contacts = cls.heavy | cls.medium | cls.low | cls.none

    def _found(self, domain):
        return self.env["res.partner"].search(
            [("id", "in", self.contacts.ids), *domain]
        )

    def _generic(self, fname, operator, value):
        """The contacts the join of every contact to its scores finds."""
        with patch(
            "odoo.addons.loyalty_mlm.models.res_partner._mlm_score_condition_needs_row",
            return_value=False,
        ):
            return self._found([(fname, operator, value)])

    def test_same_contacts_as_the_join(self):
        cases = [
            ("mlm_usage_segment", "=", "heavy"),
            ("mlm_usage_segment", "in", ["heavy", "low"]),
            ("mlm_usage_segment", "!=", "heavy"),
            ("mlm_usage_segment", "=", False),
            ("mlm_quadrant", "=", "true_friend"),
            ("mlm_churn_risk", ">=", 70),
            ("mlm_churn_risk", ">", 0),
            ("mlm_churn_risk", ">=", 0),
            ("mlm_churn_risk", "<", 70),
            ("mlm_churn_risk", "<=", -1),
            ("mlm_churn_risk", "=", 0),
            ("mlm_clv", ">", 100),
            ("mlm_clv", "<", 100),
            ("mlm_rfm_code", "ilike", "55"),
            ("mlm_rfm_code", "ilike", ""),
        ]
        for fname, operator, value in cases:
            with self.subTest(condition=(fname, operator, value)):
                self.assertEqual(
                    self._found([(fname, operator, value)]),
                    self._generic(fname, operator, value),
                )
        self.assertEqual(self._found([("mlm_usage_segment", "=", "heavy")]), self.heavy)
        self.assertEqual(
            self._found([("mlm_churn_risk", "<", 70)]),
            self.medium | self.low | self.none,
        )

    def test_needs_row(self):
        self.assertEqual(_mlm_score_condition_needs_row("=", "heavy"), True)
        self.assertEqual(_mlm_score_condition_needs_row("in", ["heavy", "low"]), True)
        self.assertEqual(_mlm_score_condition_needs_row("in", ["heavy", False]), False)
        self.assertEqual(_mlm_score_condition_needs_row(">=", 70), True)
        self.assertEqual(_mlm_score_condition_needs_row(">=", 0), False)
        self.assertEqual(_mlm_score_condition_needs_row("<", 70), False)
        self.assertEqual(_mlm_score_condition_needs_row("<", 0), True)
        self.assertEqual(_mlm_score_condition_needs_row("=", 0), False)
        self.assertEqual(_mlm_score_condition_needs_row("!=", "heavy"), False)
        self.assertEqual(_mlm_score_condition_needs_row("=", False), False)
        self.assertEqual(_mlm_score_condition_needs_row("ilike", "%"), False)

    def test_one_contact_reads_the_score_table_only(self):
        """Checking one contact against a score condition (what a treatment
        rule does on the contact form) joins no other contact: the SQL
        selects from the score table, not from res_partner joined to it."""
        query = self.env["res.partner"]._search(
            [("id", "=", self.heavy.id), ("mlm_usage_segment", "=", "heavy")]
        )
        sql = query.select().code
        self.assertEqual(sql.count('FROM "res_partner"'), 1)
        self.assertEqual(sql.count('FROM "loyalty_mlm_partner_score"'), 1)
        self.assertEqual(sql.count("JOIN"), 0)
        with self.assertQueryCount(1):
            self.assertEqual(
                self.env["res.partner"].search(
                    [("id", "=", self.heavy.id), ("mlm_usage_segment", "=", "heavy")]
                ),
                self.heavy,
            )

    def test_ored_score_filters_read_the_score_table_once(self):
        """Two filters of a group ("Heavy users" or "Low users"; a treatment
        rule's segment or quadrant) are ORed: PostgreSQL checks a subquery
        under an OR contact by contact, and reads it again for each one when
        it expects it not to fit in memory (hours at 1,000,000 customers,
        issue #22). They become one look-up of the score table, with the same
        contacts as each condition apart."""
        heavy = ("mlm_usage_segment", "=", "heavy")
        low = ("mlm_usage_segment", "=", "low")
        friend = ("mlm_quadrant", "=", "butterfly")
        risk = ("mlm_churn_risk", ">=", 70)
        name = ("name", "=", "Search none")
        cases = [
            (["|", heavy, low], self.heavy | self.low),
            (["|", "|", heavy, friend, risk], self.heavy | self.medium),
            (["|", "|", low, name, friend], self.low | self.none | self.medium),
            (["!", "|", heavy, low], self.medium | self.none),
            (["|", heavy, "&", low, name], self.heavy),
        ]
        for domain, expected in cases:
            with self.subTest(domain=domain):
                self.assertEqual(self._found(domain), expected)
        sql = self.env["res.partner"]._search(["|", heavy, low]).select().code
        self.assertEqual(sql.count('FROM "loyalty_mlm_partner_score"'), 1)
        self.assertNotIn(" OR ", sql.split('FROM "loyalty_mlm_partner_score"')[0])
        # A user outside the loyalty groups still cannot search by score.
        with self.assertRaises(AccessError):
            self.env["res.partner"].with_user(self.user_plain).search(["|", heavy, low])

    def test_a_range_of_contacts_reads_the_scores_of_that_range(self):
        """The treatment walk searches a range of contact ids at a time
        (mlm_partner_id_range in the context): the score look-up is bounded
        by the same range, so that each range reads its own scores rather
        than the company's whole segment (issue #22), and finds the same
        contacts as without it."""
        heavy = ("mlm_usage_segment", "=", "heavy")
        low = ("mlm_usage_segment", "=", "low")
        Partner = self.env["res.partner"]
        for start, end in (
            (self.heavy.id, self.low.id),
            (self.medium.id, None),
            (self.heavy.id, None),
        ):
            bounds = [("id", ">=", start)] + ([("id", "<", end)] if end else [])
            ranged = Partner.with_context(mlm_partner_id_range=(start, end))
            for domain in ([heavy], ["|", heavy, low]):
                with self.subTest(start=start, end=end, domain=domain):
                    self.assertEqual(
                        ranged.search([*bounds, *domain]),
                        Partner.search([*bounds, *domain]),
                    )
        # The bounds are in the score look-up itself, which alone finds
        # nothing outside them.
        ranged = Partner.with_context(mlm_partner_id_range=(self.medium.id, None))
        leaf = ranged._mlm_score_rows_leaf([heavy, low])
        sql = ranged._search([leaf]).select().code
        score_sql = sql.split('FROM "loyalty_mlm_partner_score"')[1]
        self.assertIn('"partner_id" >=', score_sql)
        self.assertEqual(
            ranged.search([leaf, ("id", "in", self.contacts.ids)]), self.low
        )

    def test_kanban_badge_averages_nothing(self):
        """The Members kanban's "Heavy user at risk" badge reads one boolean:
        a field of the view with an aggregator (the churn risk) makes the web
        client average it over every column, a join of every member to his
        scores that no column shows (issue #22)."""
        self.assertEqual(
            self.contacts.mapped("mlm_heavy_at_risk"), [True, False, False, False]
        )
        Partner = self.env["res.partner"]
        view = self.env.ref("loyalty_mlm.res_partner_view_kanban_member")
        arch = Partner.get_views([(view.id, "kanban")])["views"]["kanban"]["arch"]
        names = {node.get("name") for node in etree.fromstring(arch).iter("field")}
        self.assertIn("mlm_heavy_at_risk", names)
        # What the web client sees (fields_get): a computed field has an
        # aggregator only when it can be aggregated in SQL.
        described = Partner.fields_get(list(names), ["aggregator"])
        self.assertEqual(
            [name for name, info in described.items() if info.get("aggregator")], []
        )
