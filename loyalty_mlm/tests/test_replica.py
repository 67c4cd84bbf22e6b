from contextlib import closing
from unittest.mock import patch

from psycopg2.errors import ReadOnlySqlTransaction

from odoo import fields
from odoo.tests import tagged
from odoo.tools import SQL, config

from .common import LoyaltyMlmScoresCommon

SCORE_LOGGER = "odoo.addons.loyalty_mlm.models.loyalty_mlm_partner_score"


@tagged("post_install", "-at_install")
class TestReplica(LoyaltyMlmScoresCommon):
    """The nightly score aggregation on a read replica (README, "Scaling").

    A replica is a read-only connection. Odoo's test mode gives one on the
    test's own transaction: registry.cursor(readonly=True) is then a cursor in
    a savepoint set READ ONLY (sql_db.TestCursor), as `db_replica_host` gives
    one on the replica in production. The orders are those of test_scores.py,
    in a fresh company:

    =========  ===================================================
    customer   orders (days ago)
    =========  ===================================================
    anna       3 sales of 2 beans (10, 40, 70)
    bram       1 sale of 10 papers, no cost (200)
    chloe      POS 5 bread (5), POS refund of 2 (3), 1 bean (400)
    daan       1 bean (500), 5 beans cancelled (20)
    =========  ===================================================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.anna, cls.bram, cls.chloe, cls.daan = cls.env["res.partner"].create(
            [{"name": name} for name in ("Anna R", "Bram R", "Chloe R", "Daan R")]
        )

    def setUp(self):
        super().setUp()
        self.make_story()

    # helpers ---------------------------------------------------------------

    def replica_mode(self):
        """Odoo's test mode: a read-only cursor is then a READ ONLY savepoint
        of this test's transaction (it sees the orders made above)."""
        self.registry.enter_test_mode(self.cr)
        self.addCleanup(self.registry.leave_test_mode)

    def under_cron(self):
        """The score model as ir.cron calls the nightly job: with a progress
        record of the job in the context."""
        cron = self.env.ref("loyalty_mlm.ir_cron_scores_full")
        cron, _progress = cron._add_progress()
        return self.env["loyalty.mlm.partner.score"].with_context(
            ir_cron_progress_id=cron.env.context["ir_cron_progress_id"]
        )

    def nightly(self):
        """The nightly job's scores step for the test company, under ir.cron;
        returns the contacts left to write."""
        scores = self.under_cron().with_context(mlm_scores_only=True)
        return scores._cron_refresh_scores(companies=self.env.company)

    def stored_scores(self):
        """Every stored score row of the test company, in partner order."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT partner_id, score_date, recency_score, frequency_score,
                       monetary_score, rfm_code, usage_segment, quadrant,
                       churn_risk, clv, churn_rise
                  FROM loyalty_mlm_partner_score
                 WHERE company_id = %s
                 ORDER BY partner_id
                """,
                self.env.company.id,
            )
        )
        return self.env.cr.fetchall()

    def reference(self):
        """The cut points and fitted model of the company's last full run."""
        run = self.env["loyalty.mlm.score.run"]._mlm_reference_run(self.env.company)
        self.assertEqual(len(run), 1)
        return run.reference

    # tests -----------------------------------------------------------------

    def test_population_read_on_a_read_only_cursor(self):
        Score = self.env["loyalty.mlm.partner.score"]
        company, today = self.env.company, fields.Date.today()
        rows = Score._mlm_score_rows(company, today, previous=False)
        population, days = Score._mlm_score_population(company, today)
        self.assertEqual(
            sorted(row[0] for row in rows),
            sorted((self.anna | self.bram | self.chloe | self.daan).ids),
        )
        self.replica_mode()
        with closing(self.registry.cursor(readonly=True)) as cr:
            self.assertIsNot(cr, self.env.cr)
            replica = Score.with_env(Score.env(cr=cr))
            replica_rows = replica._mlm_score_rows(company, today, previous=False)
            replica_population, replica_days = replica._mlm_score_population(
                company, today
            )
            cr.execute("SHOW transaction_read_only")
            self.assertEqual(cr.fetchone()[0], "on")
            # Really read-only: a write is refused, as on a hot standby.
            with self.assertRaises(ReadOnlySqlTransaction):
                cr.execute(
                    SQL(
                        "UPDATE res_partner SET name = name WHERE id = %s",
                        self.anna.id,
                    ),
                    log_exceptions=False,
                )
        self.assertEqual(sorted(replica_rows), sorted(rows))
        self.assertEqual(replica_population, population)
        self.assertEqual(replica_days, days)
        # The test's own cursor is read/write again.
        self.env.cr.execute("SHOW transaction_read_only")
        self.assertEqual(self.env.cr.fetchone()[0], "off")

    def test_aggregation_cursor_is_the_replica_only_under_cron(self):
        Score = self.env["loyalty.mlm.partner.score"]
        cron_score = self.under_cron()
        self.replica_mode()
        # No replica configured: this transaction's cursor (no extra query).
        with patch.dict(config.options, db_replica_host=False):
            with cron_score._mlm_aggregation_cursor() as cr:
                self.assertIs(cr, self.env.cr)
        with patch.dict(config.options, db_replica_host=""):
            # Outside ir.cron (demo loader, install hook) the orders may be
            # this transaction's own, which a replica does not see.
            with Score._mlm_aggregation_cursor() as cr:
                self.assertIs(cr, self.env.cr)
            with cron_score._mlm_aggregation_cursor() as cr:
                self.assertIsNot(cr, self.env.cr)
                cr.execute("SHOW transaction_read_only")
                self.assertEqual(cr.fetchone()[0], "on")

    def test_nightly_refresh_on_the_replica_stores_the_same_scores(self):
        with patch.dict(config.options, db_replica_host=False):
            self.assertEqual(self.nightly(), 0)
        expected = self.stored_scores()
        self.assertEqual(len(expected), 4)
        expected_reference = self.reference()
        # The same night again, from no scores, reading on the replica.
        self.env.cr.execute(
            SQL(
                "DELETE FROM loyalty_mlm_partner_score WHERE company_id = %s",
                self.env.company.id,
            )
        )
        self.env["loyalty.mlm.partner.score"]._mlm_scores_invalidate()
        self.replica_mode()
        with (
            patch.dict(config.options, db_replica_host=""),
            self.assertLogs(SCORE_LOGGER, "DEBUG") as logs,
        ):
            self.assertEqual(self.nightly(), 0)
        # The job's aggregation ran on the read-only cursor.
        self.assertIn("orders read on a read-only cursor", "\n".join(logs.output))
        self.assertEqual(self.stored_scores(), expected)
        self.assertEqual(self.reference(), expected_reference)
