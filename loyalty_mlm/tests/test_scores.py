from dataclasses import astuple
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.tests import new_test_user, tagged
from odoo.tools import SQL

from odoo.addons.loyalty_mlm.models.loyalty_mlm_partner_score import (
    ENGINE_COLUMNS,
    LoyaltyMlmPartnerScore,
)
from odoo.addons.loyalty_mlm.tools.clv_model import (
    BgNbdParams,
    bgnbd_prob_no_purchase,
    churn_percent,
)

from .common import LoyaltyMlmScoresCommon


class Killed(Exception):
    """Stands for a worker killed in the middle of a call."""


SCORES = (
    "mlm_rfm_code",
    "mlm_usage_segment",
    "mlm_quadrant",
    "mlm_churn_risk",
    "mlm_clv",
)


@tagged("post_install", "-at_install")
class TestScores(LoyaltyMlmScoresCommon):
    """Segment scores from real sale and POS orders, in a fresh company.

    The company (from the POS fixtures) has no other orders, so the scored
    population is exactly the customers each test creates. Orders are dated
    back from now; the scores count days, so the expected values hold on any
    day.

    =========  ===================================================  =========
    customer   orders (days ago)                                    scores
    =========  ===================================================  =========
    anna       3 sales of 2 beans (10, 40, 70)                      324 heavy
                                                                    true friend
    bram       1 sale of 10 papers, no cost: default margin (200)   213 medium
                                                                    butterfly
    chloe      POS 5 bread (5), POS refund of 2 (3), 1 bean (400)   412 low
                                                                    barnacle
    daan       1 bean (500), 5 beans cancelled (20)                 111 low
                                                                    stranger
    eva        none                                                 (empty)
    finn       1 bean, cancelled                                    (empty)
    =========  ===================================================  =========
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.anna, cls.bram, cls.chloe, cls.daan, cls.eva, cls.finn = Partner.create(
            [
                {"name": name}
                for name in ("Anna S", "Bram S", "Chloe S", "Daan S", "Eva S", "Finn S")
            ]
        )

    # helpers ---------------------------------------------------------------

    def make_story(self):
        refund = super().make_story()
        self.assertEqual(refund.amount_total, -20.0)
        self.sell(self.finn, self.beans, 1, 15)._action_cancel()
        return refund

    def refresh(self, **kwargs):
        kwargs.setdefault("companies", self.env.company)
        # The scores step alone: the stage step it chains is tested elsewhere.
        scores = self.env["loyalty.mlm.partner.score"]
        return scores.with_context(mlm_scores_only=True)._cron_refresh_scores(**kwargs)

    def scores(self, partner):
        return tuple(partner[name] for name in SCORES)

    def stored(self, partners, column="score_date"):
        """Stored score `column` of each partner (None: no scores; not 0)."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT partner_id, %s FROM loyalty_mlm_partner_score"
                " WHERE company_id = %s AND partner_id = ANY(%s)",
                SQL.identifier(column),
                self.env.company.id,
                partners.ids,
            )
        )
        return dict.fromkeys(partners.ids) | dict(self.env.cr.fetchall())

    # tests -----------------------------------------------------------------

    def test_stats_from_sale_and_pos_orders(self):
        self.make_story()
        today = fields.Date.today()
        stats = {
            s.partner_id: s
            for s in self.env["loyalty.mlm.partner.score"]._mlm_score_stats(
                self.env.company, today
            )
        }
        self.assertEqual(
            sorted(stats), sorted((self.anna | self.bram | self.chloe | self.daan).ids)
        )

        def days(n):
            return today - timedelta(days=n)

        anna = stats[self.anna.id]
        self.assertEqual(
            (anna.first_order, anna.last_order, anna.orders_12m, anna.revenue_12m),
            (days(70), days(10), 3, 600.0),
        )
        self.assertEqual((anna.margin_12m, anna.avg_interval_days), (240.0, 30.0))
        bram = stats[self.bram.id]
        # Papers have no cost: the default margin (30%) applies.
        self.assertEqual((bram.revenue_12m, bram.margin_12m), (100.0, 30.0))
        chloe = stats[self.chloe.id]
        # The POS refund is no order, but takes its revenue and margin back.
        self.assertEqual(
            (
                chloe.orders_12m,
                chloe.revenue_12m,
                chloe.margin_12m,
                chloe.orders_prev_12m,
                chloe.revenue_prev_12m,
            ),
            (1, 30.0, 9.0, 1, 100.0),
        )
        self.assertEqual(
            (chloe.orders_total, chloe.revenue_total, chloe.first_order),
            (2, 130.0, days(400)),
        )
        self.assertEqual(chloe.avg_interval_days, 395.0)
        daan = stats[self.daan.id]
        # The cancelled order counts for nothing.
        self.assertEqual(
            (
                daan.orders_total,
                daan.orders_12m,
                daan.revenue_12m,
                daan.orders_prev_12m,
            ),
            (1, 0, 0.0, 1),
        )

    def test_cron_scores_every_customer(self):
        self.make_story()
        self.assertEqual(self.refresh(), 0)
        # Churn risk and CLV come from BG/NBD + Gamma-Gamma fitted on these
        # four customers (#18; before: days late on the usual interval, which
        # gave Anna, Bram and Chloe 0 and a CLV of 1200.00 for Anna's 5 years).
        # Churn risk is the probability (%) of no order within 180 days; CLV
        # the discounted expected margin over 12 months. Frequency: level 1
        # for at most one order in 12 months, 2-5 the quartiles of the repeat
        # buyers; Anna is the only one, so level 2 (before: quintile 4).
        self.assertEqual(
            self.scores(self.anna), ("324", "heavy", "true_friend", 25, 259.07)
        )
        self.assertEqual(
            self.scores(self.bram), ("213", "medium", "butterfly", 79, 17.19)
        )
        self.assertEqual(self.scores(self.chloe), ("412", "low", "barnacle", 66, 20.11))
        self.assertEqual(self.scores(self.daan), ("111", "low", "stranger", 87, 9.11))
        self.assertEqual(
            (
                self.anna.mlm_recency_score,
                self.anna.mlm_frequency_score,
                self.anna.mlm_monetary_score,
            ),
            (3, 2, 4),
        )
        # The churn risks are the fitted model's for each customer's
        # (repeat purchase days, days first to last order day, days since
        # the first): Chloe's POS refund is no purchase occasion, her POS
        # order and her sale 395 days apart are one repeat.
        run = self.env["loyalty.mlm.score.run"].search(
            [("company_id", "=", self.env.company.id)]
        )
        model = run.reference["model"]
        self.assertEqual(model["frequency_cuts"], [None, None, None])
        params = BgNbdParams(*model["bgnbd"])
        self.assertEqual(
            [
                churn_percent(bgnbd_prob_no_purchase(params, x, t_x, age, 180.0))
                for x, t_x, age in (
                    (2, 60, 70),
                    (0, 0, 200),
                    (1, 395, 400),
                    (0, 0, 500),
                )
            ],
            [25, 79, 66, 87],
        )
        # The churn rise above their own pattern (what Retention looks at):
        # Chloe ordered 5 days ago (0), Daan's one order is 500 days old.
        self.assertEqual(
            self.stored(self.anna | self.bram | self.chloe | self.daan, "churn_rise"),
            {self.anna.id: 2, self.bram.id: 18, self.chloe.id: 0, self.daan.id: 26},
        )
        self.assertEqual(self.anna.mlm_score_date, fields.Date.today())
        # No order (Eva) or only cancelled ones (Finn): empty, not zero.
        self.assertEqual(
            self.stored(self.eva | self.finn), {self.eva.id: None, self.finn.id: None}
        )
        self.assertEqual(
            self.stored(self.eva | self.daan, "churn_risk"),
            {self.eva.id: None, self.daan.id: 87},
        )
        self.assertFalse(self.eva.mlm_usage_segment)
        run = self.env["loyalty.mlm.score.run"].search(
            [("company_id", "=", self.env.company.id)]
        )
        self.assertEqual(
            (run.mode, run.state, run.customer_count, run.done_count),
            ("full", "done", 4, 4),
        )
        self.assertEqual(run.reference["n"], 4)
        self.assertTrue(run.reference["model"]["fitted"])
        # Run again: same scores, nothing to write.
        self.assertEqual(self.refresh(), 0)
        run = self.env["loyalty.mlm.score.run"].search(
            [("company_id", "=", self.env.company.id)]
        )
        self.assertEqual((run.customer_count, run.done_count), (4, 0))
        # The related badges on leads and sale orders.
        lead = self.env["crm.lead"].create(
            {"name": "Refill", "partner_id": self.anna.id}
        )
        self.assertEqual(
            (lead.mlm_usage_segment, lead.mlm_quadrant), ("heavy", "true_friend")
        )
        order = self.sell(self.bram, self.papers, 1, 0)
        self.assertEqual((order.mlm_quadrant, order.mlm_rfm_code), ("butterfly", "213"))

    def test_clv_drift_within_one_percent_is_not_rewritten(self):
        """A stored CLV within 1% of the computed one stays as it is (CLV
        drifts by cents every night); beyond, or any other score moved, the
        row is rewritten with the exact values."""
        self.make_story()
        self.refresh()

        def store(partner, clv, churn_risk=None):
            self.env.cr.execute(
                "UPDATE loyalty_mlm_partner_score"
                " SET clv = %s, churn_risk = COALESCE(%s, churn_risk)"
                " WHERE partner_id = %s AND company_id = %s",
                (clv, churn_risk, partner.id, self.env.company.id),
            )

        # Anna 259.07: 257.00 is 0.8% off; Bram 17.19: 17.50 is 1.8% off;
        # Chloe 20.11 with another churn risk; Daan 9.11 (exact).
        store(self.anna, 257.00)
        store(self.bram, 17.50)
        store(self.chloe, 20.11, churn_risk=1)
        self.refresh()
        run = self.env["loyalty.mlm.score.run"].search(
            [("company_id", "=", self.env.company.id)]
        )
        self.assertEqual((run.customer_count, run.done_count), (4, 2))
        self.env.invalidate_all()
        self.assertEqual(
            self.stored(self.anna | self.bram | self.chloe | self.daan, "clv"),
            {
                self.anna.id: 257.00,
                self.bram.id: 17.19,
                self.chloe.id: 20.11,
                self.daan.id: 9.11,
            },
        )
        self.assertEqual(self.scores(self.chloe), ("412", "low", "barnacle", 66, 20.11))

    def test_search_filters(self):
        self.make_story()
        self.refresh()
        Partner = self.env["res.partner"]
        self.assertEqual(
            Partner.search([("mlm_quadrant", "=", "true_friend")]), self.anna
        )
        self.assertEqual(
            Partner.search([("mlm_usage_segment", "=", "low")]), self.chloe | self.daan
        )
        self.assertEqual(Partner.search([("mlm_churn_risk", ">=", 80)]), self.daan)
        groups = Partner._read_group(
            [("mlm_quadrant", "!=", False)], ["mlm_quadrant"], ["__count"]
        )
        self.assertEqual(
            sorted(groups),
            [("barnacle", 1), ("butterfly", 1), ("stranger", 1), ("true_friend", 1)],
        )

    def test_customer_losing_his_orders_is_cleared(self):
        self.make_story()
        self.refresh()
        self.env["sale.order"].search(
            [("partner_id", "=", self.bram.id)]
        )._action_cancel()
        self.refresh()
        self.assertEqual(self.stored(self.bram), {self.bram.id: None})
        self.assertFalse(self.bram.mlm_rfm_code)
        # Archived customers leave the population too.
        self.daan.active = False
        self.refresh()
        self.assertEqual(self.stored(self.daan), {self.daan.id: None})
        # Ranked against Chloe alone now: older (R 1), more revenue (M 3);
        # frequency: the only repeat buyer (F 2).
        self.assertEqual(self.anna.mlm_rfm_code, "123")

    def test_full_run_in_small_chunks_scores_the_same(self):
        """A full run reads, scores, compares and writes its customers a
        chunk at a time (issue 22: memory bounded by the chunk, not the
        population): chunks of one customer give the same scores as one
        chunk, every stored customer falls in one id range (one without
        orders any more, between two others, is cleared), and a second run
        finds nothing to write."""
        self.make_story()
        self.env["sale.order"].search(
            [("partner_id", "=", self.bram.id)]
        )._action_cancel()
        self.refresh()
        everybody = self.anna | self.bram | self.chloe | self.daan
        columns = ("rfm_code", "usage_segment", "quadrant", "churn_risk", "clv")
        expected = {column: self.stored(everybody, column) for column in columns}
        self.assertEqual(expected["rfm_code"][self.bram.id], None)
        self.env.cr.execute(
            "DELETE FROM loyalty_mlm_partner_score WHERE company_id = %s",
            (self.env.company.id,),
        )
        # Scores left behind for Bram, who has no orders any more.
        self.env.cr.execute(
            "INSERT INTO loyalty_mlm_partner_score"
            " (partner_id, company_id, score_date, rfm_code)"
            " VALUES (%s, %s, %s, '555')",
            (self.bram.id, self.env.company.id, fields.Date.today()),
        )
        self.env.invalidate_all()
        module = "odoo.addons.loyalty_mlm.models.loyalty_mlm_partner_score"
        Run = self.env["loyalty.mlm.score.run"]
        with (
            patch(f"{module}.SCORE_READ_CHUNK", 1),
            patch(f"{module}.SCORE_FETCH_ROWS", 1),
            patch(f"{module}.SCORE_MODEL_SLICE", 1),
            patch(f"{module}.SCORE_COPY_LINES", 1),
        ):
            self.assertEqual(self.refresh(), 0)
            for column in columns:
                self.assertEqual(
                    self.stored(everybody, column), expected[column], column
                )
            run = Run.search([("company_id", "=", self.env.company.id)], limit=1)
            self.assertEqual((run.done_count, run.cleared_count), (3, 1))
            self.assertEqual(self.refresh(), 0)
            run = Run.search([("company_id", "=", self.env.company.id)], limit=1)
            self.assertEqual((run.done_count, run.cleared_count), (0, 0))

    def test_ranges_above_the_stored_scores_are_not_read(self):
        """A full run reads the stored scores of a chunk's id range only up
        to the highest id stored when the call starts (issue 22: on the
        first night those look-ups went through the rows written so far,
        quadratic at 1,000,000 customers): none on a first night, the lower
        ranges on a resumed one, and the same scores either way."""
        self.make_story()
        self.refresh()
        everybody = self.anna | self.bram | self.chloe | self.daan
        columns = ENGINE_COLUMNS
        expected = {column: self.stored(everybody, column) for column in columns}
        company = self.env.company
        original = LoyaltyMlmPartnerScore._mlm_stored_scores
        reads = []

        def spy(score_model, company, partner_ids=None, id_range=None):
            reads.append(id_range)
            return original(score_model, company, partner_ids, id_range)

        module = "odoo.addons.loyalty_mlm.models.loyalty_mlm_partner_score"
        # A first night, then a night resumed after the call that wrote up to
        # Anna (every customer of a lower id stored, none above).
        for kept_up_to in (0, self.anna.id):
            self.env.cr.execute(
                "DELETE FROM loyalty_mlm_partner_score"
                " WHERE company_id = %s AND partner_id > %s",
                (company.id, kept_up_to),
            )
            self.env.invalidate_all()
            reads.clear()
            with (
                patch(f"{module}.SCORE_READ_CHUNK", 1),
                patch.object(LoyaltyMlmPartnerScore, "_mlm_stored_scores", spy),
            ):
                self.assertEqual(self.refresh(), 0)
            for column in columns:
                self.assertEqual(
                    self.stored(everybody, column), expected[column], column
                )
            lows = [low for low, _high in reads]
            if not kept_up_to:
                self.assertEqual(reads, [])
            else:
                self.assertTrue(reads)
                self.assertTrue(all(low is None or low <= kept_up_to for low in lows))
                # Up to the range holding Anna, the last one stored.
                self.assertGreater(reads[-1][1], kept_up_to)

    def test_full_run_scores_the_same_in_any_order(self):
        """The aggregation hands the customers on in id order, and the full
        run then scores each chunk as it writes it; in any other order it
        scores them all first and takes them in id order: the same scores."""
        self.make_story()
        self.refresh()
        everybody = self.anna | self.bram | self.chloe | self.daan
        columns = ENGINE_COLUMNS
        expected = {column: self.stored(everybody, column) for column in columns}
        self.assertTrue(all(expected["rfm_code"].values()))
        self.env.cr.execute(
            "DELETE FROM loyalty_mlm_partner_score WHERE company_id = %s",
            (self.env.company.id,),
        )
        self.env.invalidate_all()
        original = LoyaltyMlmPartnerScore._mlm_score_population
        reversed_too = []

        def reversed_population(score_model, company, today, until=None):
            population, days = original(score_model, company, today, until)
            reversed_too.append(True)
            return (
                type(population)(
                    *(list(column)[::-1] for column in astuple(population))
                ),
                list(days)[::-1],
            )

        with patch.object(
            LoyaltyMlmPartnerScore, "_mlm_score_population", reversed_population
        ):
            self.assertEqual(self.refresh(), 0)
        self.assertTrue(reversed_too)
        for column in columns:
            self.assertEqual(self.stored(everybody, column), expected[column], column)

    def test_credit_note_nets_revenue_and_margin(self):
        order = self.sell(self.anna, self.beans, 3, 30)
        invoice = order._create_invoices()
        invoice.action_post()
        reversal = (
            self.env["account.move.reversal"]
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create({"journal_id": invoice.journal_id.id})
        )
        credit_note = self.env["account.move"].browse(reversal.refund_moves()["res_id"])
        credit_note.invoice_line_ids.quantity = 1
        credit_note.action_post()
        (stat,) = self.env["loyalty.mlm.partner.score"]._mlm_score_stats(
            self.env.company, fields.Date.today()
        )
        self.assertEqual(
            (stat.orders_12m, stat.revenue_12m, stat.margin_12m), (1, 200.0, 80.0)
        )

    def test_killed_run_resumes_without_scoring_twice(self):
        self.make_story()
        written = []
        kill = []
        original = LoyaltyMlmPartnerScore._mlm_scores_write

        def spy(score_model, company, day, scores):
            written.extend(scores)
            result = original(score_model, company, day, scores)
            if kill:
                raise Killed()
            return result

        Run = self.env["loyalty.mlm.score.run"]
        with patch.object(LoyaltyMlmPartnerScore, "_mlm_scores_write", spy):
            # The first call writes one batch of two and hands back.
            self.assertEqual(self.refresh(batch_size=2, time_budget=0), 2)
            self.assertEqual(written, (self.anna | self.bram).ids)
            run = Run.search([("company_id", "=", self.env.company.id)])
            self.assertEqual((run.state, run.done_count), ("running", 2))
            # The second call dies after its batch: its transaction is rolled
            # back, as a killed worker's would be.
            kill.append(True)
            with self.assertRaises(Killed), self.env.cr.savepoint():
                self.refresh(batch_size=2, time_budget=0)
            kill.clear()
            self.env.invalidate_all()
            self.assertEqual(run.done_count, 2)
            self.assertEqual(
                self.stored(self.chloe | self.daan),
                {self.chloe.id: None, self.daan.id: None},
            )
            # Called again, the run resumes with the two contacts left.
            del written[:]
            self.assertEqual(self.refresh(batch_size=2, time_budget=0), 0)
        self.assertEqual(written, (self.chloe | self.daan).ids)
        self.assertEqual(run.state, "done")
        self.assertEqual(len(Run.search([("company_id", "=", self.env.company.id)])), 1)
        self.assertEqual(
            self.scores(self.anna), ("324", "heavy", "true_friend", 25, 259.07)
        )
        self.assertEqual(self.scores(self.daan), ("111", "low", "stranger", 87, 9.11))

    def test_incremental_refresh(self):
        self.make_story()
        self.refresh()
        Scores = self.env["loyalty.mlm.partner.score"]
        before = {p.id: self.scores(p) for p in self.anna | self.bram | self.chloe}
        # The full run started two hours ago, the orders were written before.
        self.env["loyalty.mlm.score.run"].sudo().search(
            [("company_id", "=", self.env.company.id)]
        ).date_start = fields.Datetime.now() - timedelta(hours=2)
        for table in ("sale_order", "pos_order"):
            self.env.cr.execute(
                SQL(
                    "UPDATE %s SET write_date = now() - interval '5 hours'"
                    " WHERE company_id = %s",
                    SQL.identifier(table),
                    self.env.company.id,
                )
            )
        self.assertEqual(Scores._cron_refresh_scores_incremental(self.env.company), 0)
        # Chloe's order is touched, Bram orders again: only they are rescored.
        self.env["pos.order"].search([("partner_id", "=", self.chloe.id)])[
            :1
        ].general_note = "x"
        self.sell(self.bram, self.papers, 10, 0)
        self.assertEqual(Scores._cron_refresh_scores_incremental(self.env.company), 2)
        # Unchanged stats: exactly what the full run gave.
        self.assertEqual(self.scores(self.chloe), before[self.chloe.id])
        self.assertEqual(self.scores(self.anna), before[self.anna.id])
        # Bram is ranked against the last full run's population: ordered
        # today (R 5), 2 orders, a repeat buyer against cut points that have
        # none (F 2), 200.00 (M 4); loyal and profitable now. Churn risk and
        # CLV from the last full run's fitted model: one repeat 200 days
        # after his first order, today.
        self.assertEqual(
            self.scores(self.bram), ("524", "medium", "true_friend", 55, 43.28)
        )
        runs = (
            self.env["loyalty.mlm.score.run"]
            .sudo()
            .search([("company_id", "=", self.env.company.id)])
        )
        self.assertEqual(runs.mapped("mode"), ["incremental", "incremental", "full"])
        # Both were rescored, only Bram's scores changed and were written.
        self.assertEqual((runs[0].customer_count, runs[0].done_count), (2, 1))

    def test_mark_dirty_triggers_the_incremental_job(self):
        cron = self.env.ref("loyalty_mlm.ir_cron_scores_incremental")
        salesman = new_test_user(
            self.env, login="mlm_scores_sales", groups="sales_team.group_sale_salesman"
        )
        triggers = self.env["ir.cron.trigger"]
        domain = [("cron_id", "=", cron.id)]
        self.env.cr.precommit.data.pop("loyalty_mlm.scores_dirty", None)
        before = triggers.search_count(domain)
        self.env["loyalty.mlm.partner.score"].with_user(
            salesman
        )._mlm_scores_mark_dirty()
        self.assertEqual(triggers.search_count(domain), before + 1)
        # Once per transaction: a batch of confirmations needs one refresh.
        self.env["loyalty.mlm.partner.score"].with_user(
            salesman
        )._mlm_scores_mark_dirty()
        self.assertEqual(triggers.search_count(domain), before + 1)

    def test_refresh_queries_do_not_grow_with_customers(self):
        """One aggregation, one write per batch: the number of queries does
        not depend on how many customers a batch holds (10, then 50)."""
        Partner = self.env["res.partner"]
        customers = Partner.create([{"name": f"Q{i}"} for i in range(50)])

        def forget_scores():
            self.env.cr.execute(
                "DELETE FROM loyalty_mlm_partner_score WHERE company_id = %s",
                (self.env.company.id,),
            )
            self.env.invalidate_all()

        for count in (10, 50):
            for customer in customers[:count]:
                if not customer.sale_order_ids:
                    self.sell(customer, self.beans, 1, 10)
            self.refresh()  # warm-up: caches, and one previous run to forget
            forget_scores()  # so that every customer is written again
            with self.assertQueryCount(17):
                self.refresh(batch_size=100)
            self.assertEqual(
                Partner.search_count([("mlm_rfm_code", "!=", False)]), count
            )
        # Batches of 10: the same plus one statement per extra batch.
        forget_scores()
        with self.assertQueryCount(21):
            self.refresh(batch_size=10)

    def test_new_scores_are_copied_with_empty_values_as_null(self):
        """The bulk write of new customers (COPY) stores an empty value as
        NULL, and every other value as given."""
        Partner = self.env["res.partner"]
        first, second = Partner.create([{"name": "Copy 1"}, {"name": "Copy 2"}])
        day = fields.Date.today()
        self.env["loyalty.mlm.partner.score"]._mlm_scores_write(
            self.env.company,
            day,
            {
                # (the engine's tuples end with the churn rise, ENGINE_KEYS)
                first.id: (5, 4, 3, "543", "heavy", "true_friend", 12, 1234.5, 3),
                second.id: (1, 1, 1, "111", "low", "stranger", 100, None, None),
            },
        )
        self.assertEqual(
            [first[name] for name in SCORES],
            ["543", "heavy", "true_friend", 12, 1234.5],
        )
        self.assertEqual(first.mlm_score_date, day)
        self.env.cr.execute(
            "SELECT clv, churn_rise FROM loyalty_mlm_partner_score"
            " WHERE partner_id = %s AND company_id = %s",
            (second.id, self.env.company.id),
        )
        self.assertEqual(self.env.cr.fetchall(), [(None, None)])
        self.assertEqual(self.stored(first, "churn_rise"), {first.id: 3})
