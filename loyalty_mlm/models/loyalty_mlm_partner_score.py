import io
import logging
import time
from array import array
from collections.abc import Mapping
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from itertools import pairwise

import psycopg2
import psycopg2.extras
from dateutil.relativedelta import relativedelta

from odoo import api, fields, models, sql_db
from odoo.tools import SQL, config, create_index, split_every

from ..tools.clv_model import (
    BgNbdParams,
    GammaGammaParams,
    ModelSettings,
    churn_rise,
    clv_moved,
    fit_bgnbd,
    fit_gamma_gamma,
    frequency_cuts,
    frequency_score,
    model_tables,
    score_model,
)
from ..tools.runtime import CopyStream, gc_paused
from ..tools.scoring import (
    RFM_CODES,
    SCORE_KEYS,
    CustomerStats,
    Population,
    ScoringParams,
    population_from_stats,
    population_interval,
    score_population_columns,
    score_with_reference,
)

_logger = logging.getLogger(__name__)

# Segment scores: contact field -> column of loyalty_mlm_partner_score.
SCORE_FIELDS = {
    "mlm_score_date": "score_date",
    "mlm_recency_score": "recency_score",
    "mlm_frequency_score": "frequency_score",
    "mlm_monetary_score": "monetary_score",
    "mlm_rfm_code": "rfm_code",
    "mlm_usage_segment": "usage_segment",
    "mlm_quadrant": "quadrant",
    "mlm_churn_risk": "churn_risk",
    "mlm_clv": "clv",
}
USAGE_SEGMENT_SELECTION = [
    ("heavy", "Heavy user"),
    ("medium", "Medium user"),
    ("low", "Low user"),
]
QUADRANT_SELECTION = [
    ("true_friend", "True Friend"),
    ("butterfly", "Butterfly"),
    ("barnacle", "Barnacle"),
    ("stranger", "Stranger"),
]
# What the engine writes per customer: the contact's scores (SCORE_KEYS) and
# the churn rise behind the Retention stage (clv_model.churn_rise), which no
# contact field shows.
ENGINE_KEYS = (*SCORE_KEYS, "churn_rise")
ENGINE_COLUMNS = [*(SCORE_FIELDS[key] for key in SCORE_KEYS), "churn_rise"]
# Where the CLV sits in those tuples: compared with a tolerance (clv_moved).
CLV_INDEX = ENGINE_KEYS.index("mlm_clv")
# Customers written per statement.
SCORE_BATCH_SIZE = 5000
# Customers scored and formatted at a time while a COPY sends the lines
# before them, and characters sent at a time. Small blocks: PostgreSQL
# waits for a statement's first block and Python for its last one.
SCORE_COPY_LINES = 250
COPY_READ_SIZE = 65536
# Customers of a full run compared with their stored scores at a time (one
# read of the stored scores each): bounds the memory the comparison takes.
SCORE_READ_CHUNK = 20000
# Rows of the full run's aggregation turned into Python objects at a time.
SCORE_FETCH_ROWS = 10000
# Customers the churn and CLV model scores at a time (see
# _mlm_score_model_values).
SCORE_MODEL_SLICE = 50000
# Seconds a call of the nightly job keeps writing batches before it hands back
# to ir.cron (which commits and calls again while work remains).
SCORE_TIME_BUDGET = 60.0
# Customers the churn and CLV model is fitted on, at most (a sample above:
# see _mlm_score_fit).
SCORE_FIT_CUSTOMERS = 20000
# Memory for the aggregation of all orders (PostgreSQL work_mem).
SCORE_WORK_MEM = "256MB"
# The incremental refresh looks this far before the previous run's start, for
# orders committed by transactions that were still open when it started.
SCORE_INCREMENTAL_OVERLAP = timedelta(hours=1)
# First key of the per-company score lock (pg_advisory_xact_lock(key, company)).
SCORE_LOCK_KEY = 0x4D4C4D53  # "MLMS"


class LazyScores(Mapping):
    """{partner id: ENGINE_KEYS tuple} of the customers `ids[i]` for i in
    `indices`, scored by `scores_of` (see _mlm_score_model_scorer) a block of
    SCORE_COPY_LINES at a time as its items are read, so that a COPY of
    them overlaps their scoring."""

    def __init__(self, indices, ids, scores_of):
        self._indices, self._ids, self._scores_of = indices, ids, scores_of

    def __iter__(self):
        return (self._ids[i] for i in self._indices)

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, partner_id):
        for pid, scores in self.items():
            if pid == partner_id:
                return scores
        raise KeyError(partner_id)

    def items(self):
        indices = self._indices
        for low in range(0, len(indices), SCORE_COPY_LINES):
            block = indices[low : low + SCORE_COPY_LINES]
            yield from zip(
                (self._ids[i] for i in block),
                zip(*self._scores_of(block), strict=True),
                strict=True,
            )


class LoyaltyMlmPartnerScore(models.Model):
    """The segment scores of one customer in one company.

    One narrow row per (commercial partner, company), written in bulk by the
    score refresh with set-based SQL (the engine below) and shown on the contact
    through the mlm_* fields of res.partner, which search, group and sort on
    this table. Kept out of res_partner on purpose: a contact row carries some
    thirty indexes (names, phone trigrams, ...), so rewriting 100,000 contacts
    every night costs seconds, while these rows update in place (HOT, see
    init) in a fraction of that. No row: no order, no scores.

    Plain integer keys, no foreign keys and no create/write log: each foreign
    key costs a key-share lock on the referenced row per written row (about
    10 microseconds: a second per 100,000 customers). The refresh removes the
    rows of contacts that are gone (deleted, merged away, archived) since they
    are no customers any more.
    """

    _name = "loyalty.mlm.partner.score"
    _description = "Customer Segment Scores"
    _log_access = False

    partner_id = fields.Integer(string="Customer", required=True)
    company_id = fields.Integer(string="Company", required=True)
    score_date = fields.Date(string="Scored On", required=True)
    recency_score = fields.Integer()
    frequency_score = fields.Integer()
    monetary_score = fields.Integer()
    rfm_code = fields.Char(string="RFM")
    usage_segment = fields.Selection(USAGE_SEGMENT_SELECTION)
    quadrant = fields.Selection(QUADRANT_SELECTION, string="Loyalty x Profit")
    churn_risk = fields.Integer(string="Churn Risk (%)")
    clv = fields.Float(string="Lifetime Value", digits=(16, 2))
    churn_rise = fields.Integer(
        string="Churn Risk Rise",
        help="Points by which the churn risk rose above the customer's own "
        "pattern (his churn risk right after his last order); the Retention "
        "stage can require it (At-Risk Churn Rise).",
    )

    _sql_constraints = [
        (
            "partner_company_uniq",
            "unique(partner_id, company_id)",
            "A customer has one set of scores per company.",
        )
    ]

    def init(self):
        cr = self.env.cr
        # Room on each page for the nightly new versions of its rows: updates
        # that leave the indexed columns alone stay on the page (HOT), with no
        # index to touch.
        cr.execute(
            SQL("ALTER TABLE %s SET (fillfactor = 80)", SQL.identifier(self._table))
        )
        # Churn risk filters by range ("at risk": 75 and more), often a small
        # share of the customers: indexed. Segments and quadrants have three
        # and four values, each a large share of a company's customers, which
        # PostgreSQL reads faster from this narrow table than through an
        # index; their indexes cost more (a fifth of the nightly write) than
        # they saved, and are gone.
        create_index(
            cr,
            f"{self._table}_company_churn_risk_index",
            self._table,
            ["company_id", "churn_risk"],
        )
        for column in ("usage_segment", "quadrant"):
            cr.execute(
                SQL(
                    "DROP INDEX IF EXISTS %s",
                    SQL.identifier(f"{self._table}_company_{column}_index"),
                )
            )
        # The incremental refresh looks for the orders and credit notes
        # written since its last run (_mlm_dirty_partner_ids): without these
        # it read every order of the company each time (a third of its time
        # at 1,000,000 orders). Partial where the rest never counts.
        for table, where in (
            ("sale_order", ""),
            ("pos_order", "partner_id IS NOT NULL"),
            ("account_move", "move_type = 'out_refund'"),
        ):
            create_index(
                cr, f"{table}_mlm_write_date_index", table, ["write_date"], where=where
            )

    # ------------------------------------------------------------
    # Reading the scores (the contact's mlm_* score fields)
    # ------------------------------------------------------------

    @api.model
    def _mlm_score_rows_of(self, company, partner_ids):
        """{partner id: values of the SCORE_FIELDS columns} of `partner_ids`
        in `company`, in one query (no row: no scores)."""
        self.env.cr.execute(
            SQL(
                "SELECT partner_id, %s FROM loyalty_mlm_partner_score"
                " WHERE company_id = %s AND partner_id = ANY(%s)",
                SQL(", ").join(SQL.identifier(c) for c in SCORE_FIELDS.values()),
                company.id,
                partner_ids,
            )
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    @api.model
    def _mlm_column_sql(self, alias, column, query=None):
        """The score `column` of the contact `alias` in the current company,
        as SQL: a subquery, or a LEFT JOIN added to `query` (see
        res.partner._field_to_sql)."""
        if query is None:
            return SQL(
                "(SELECT s.%s FROM loyalty_mlm_partner_score s"
                " WHERE s.partner_id = %s AND s.company_id = %s)",
                SQL.identifier(column),
                SQL.identifier(alias, "id"),
                self.env.company.id,
            )
        score_alias = query.make_alias(alias, "mlm_score")
        query.add_join(
            "LEFT JOIN",
            score_alias,
            "loyalty_mlm_partner_score",
            SQL(
                "%s = %s AND %s = %s",
                SQL.identifier(score_alias, "partner_id"),
                SQL.identifier(alias, "id"),
                SQL.identifier(score_alias, "company_id"),
                self.env.company.id,
            ),
        )
        return SQL.identifier(score_alias, column)

    # ------------------------------------------------------------
    # Refresh engine
    # ------------------------------------------------------------
    # Computed by tools/scoring.py from one SQL aggregation of the orders and
    # written back with set-based SQL (see _cron_refresh_scores). Empty (not
    # zero) for customers without orders. Times are UTC: an order counts on
    # its UTC day.

    @api.model
    def _mlm_refresh_partners(self, partners, company=None):
        """Rescore the commercial partners of `partners` against the last full
        run.

        Does nothing for a company that never had a full run (the nightly job
        will score everybody). Returns the number of customers rescored.
        """
        company = company or self.env.company
        reference_run = self.env["loyalty.mlm.score.run"]._mlm_reference_run(company)
        if not reference_run or not partners:
            return 0
        return self._mlm_rescore(
            company, partners.commercial_partner_id.ids, reference_run
        )

    @api.model
    def _mlm_scores_mark_dirty(self):
        """Ask for an incremental score refresh as soon as this transaction ends.

        Cheap (one trigger row): call it once per business event that changes
        what a customer bought (order confirmed or cancelled, POS session
        closed, credit note posted), not per line. The refresh itself finds the
        customers whose orders changed since the last run.
        """
        # Once per transaction: a batch of confirmations needs one refresh.
        marked = self.env.cr.precommit.data
        if marked.get("loyalty_mlm.scores_dirty"):
            return
        cron = self.env.ref(
            "loyalty_mlm.ir_cron_scores_incremental", raise_if_not_found=False
        )
        if cron:
            # sudo: triggering a system job; any user may ask for the refresh.
            cron.sudo()._trigger()
            marked["loyalty_mlm.scores_dirty"] = True

    @api.model
    def _cron_refresh_scores(
        self,
        batch_size=SCORE_BATCH_SIZE,
        time_budget=SCORE_TIME_BUDGET,
        companies=None,
        today=None,
    ):
        """Nightly: rescore every customer of every company, resumably.

        Each call aggregates all orders of a company in one query, scores the
        whole population in memory (tools/scoring.py:score_population) and
        writes the contacts in batches of `batch_size`, one statement each
        (new customers inserted first, then the others updated), until
        `time_budget` seconds have passed (at least one batch). It reports
        its progress to ir.cron, which commits and calls again while contacts
        remain: the next call resumes the same run (a loyalty.mlm.score.run
        still "running").

        Only contacts whose stored scores differ from the computed ones are
        written (the CLV: by more than clv_model.CLV_TOLERANCE, see
        _mlm_scores_moved), so the contacts an interrupted call already wrote
        are skipped when it resumes, and a nightly run rewrites only the
        customers whose scores moved. A killed call loses only its own
        uncommitted batches.
        Returns the number of contacts left to write. `companies`: only these
        (default: all); `today`: the scoring day of a new run (default: today).
        """
        Run = self.env["loyalty.mlm.score.run"].sudo()
        domain = [("mode", "=", "full"), ("state", "=", "running")]
        if companies is not None:
            domain.append(("company_id", "in", companies.ids))
        runs = Run.search(domain)
        if not runs:
            runs = Run._mlm_start_full_runs(companies, today)
        deadline = time.monotonic() + time_budget
        done = remaining = 0
        for run in runs.sorted(lambda run: run.company_id.id):
            if done and time.monotonic() > deadline:
                remaining += max(1, run.customer_count - run.done_count)
                continue
            written, left = self._mlm_full_run_step(run, batch_size, deadline)
            done += written
            remaining += left
        if not remaining and not self.env.context.get("mlm_scores_only"):
            # One nightly action: the stages are decided from fresh scores.
            # (mlm_scores_only: the benchmark times the two steps apart.)
            # The treatments follow in their own job, in batches, rather than
            # inside the bulk stage moves. What the call's budget leaves of
            # the stages (a first assignment on a large database) the stage
            # job finishes, which then starts the treatments.
            moved, finished = (
                self.env["loyalty.mlm.stage"]
                .with_context(mlm_defer_treatments=True)
                ._mlm_refresh_stages_until(companies, deadline=deadline)
            )
            done += moved
            if finished:
                self.env["loyalty.mlm.treatment"]._mlm_trigger_run()
                self.env["loyalty.mlm.kpi.snapshot"]._mlm_trigger_snapshots()
            else:
                self.env.ref("loyalty_mlm.ir_cron_stages").sudo()._trigger()
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return remaining

    @api.model
    def _cron_refresh_scores_incremental(self, companies=None):
        """Rescore the customers with orders or refunds since the last run.

        Each is scored against the cut points of the company's last full run,
        so he gets the score a full run would give him. Companies without a
        full run yet are left to the nightly job. Returns the number of
        contacts written. `companies`: only these (default: all).
        """
        Run = self.env["loyalty.mlm.score.run"].sudo()
        written = 0
        if companies is None:
            companies = self.env["res.company"].sudo().search([])
        for company in companies:
            reference_run = Run._mlm_reference_run(company)
            if not reference_run:
                continue
            last = Run.search(
                [("company_id", "=", company.id), ("state", "=", "done")], limit=1
            )
            since = last.date_start - SCORE_INCREMENTAL_OVERLAP
            dirty = self._mlm_dirty_partner_ids(company, since)
            written += self._mlm_rescore(company, dirty, reference_run)
        self.env["ir.cron"]._notify_progress(done=written, remaining=0)
        return written

    def _mlm_full_run_step(self, run, batch_size, deadline):
        """One call's share of a full run: (contacts written, contacts left)."""
        # Every customer's row, stats and scores are built in memory at once.
        with gc_paused():
            return self._mlm_full_run_batches(run, batch_size, deadline)

    def _mlm_full_run_batches(self, run, batch_size, deadline):
        """Score the population of `run`, write what changed in batches until
        `deadline`, clear the customers gone: (written and cleared, left)."""
        company = run.company_id
        today = run.score_date
        with self._mlm_aggregation_cursor() as cr:
            population, days = self.with_env(self.env(cr=cr))._mlm_score_population(
                company, today
            )
        params = self._mlm_score_params(company, population_interval(population))
        # The churn risk and CLV of the old formula are replaced by the
        # model's: not computed.
        score_columns, reference = score_population_columns(
            population, today, params, churn_and_clv=False
        )
        columns = self._mlm_score_model_columns(population, days)
        reference["model"] = self._mlm_score_fit(company, population, days, columns)
        self._mlm_scores_lock(company)
        ids = population.partner_ids
        order = range(len(ids))
        if any(a >= b for a, b in pairwise(ids)):
            # Not in id order (the aggregation groups by customer, so it
            # hardly happens): scored at once, then taken in id order.
            order = sorted(order, key=ids.__getitem__)
            values = self._mlm_score_model_values(
                population, days, score_columns, reference["model"], columns
            )

            def scores_of(indices):
                return [[column[i] for i in indices] for column in values]

        else:
            # Scored as they are compared and written, a chunk or a block
            # at a time (_mlm_full_run_chunk): never all at once.
            scores_of = self._mlm_score_model_scorer(
                population, score_columns, reference["model"], columns
            )
        # The customers in partner id order, a chunk at a time: the stored
        # scores of the chunk's id range are read, compared and written
        # before the next chunk's, so that neither they nor the tuples of
        # the changed customers are held for the whole population at once.
        step = SCORE_READ_CHUNK
        chunks = [order[i : i + step] for i in range(0, len(ids), step)]
        # The id ranges: the first chunk's from 0, the last one's to the end,
        # so that every stored customer falls in one.
        starts = [ids[chunk[0]] for chunk in chunks[1:]]
        bounds = pairwise([None, *starts, None]) if chunks else [(None, None)]
        # Above the highest id stored when the call starts, a range has no
        # stored scores (this call's own writes stay in the ranges already
        # done): not read. On the first night that is every range, whose
        # look-ups otherwise went through the company's rows written so far
        # (the table's statistics still say it is empty): quadratic, 18 s of
        # 50 at 1,000,000 customers.
        stored_max = self._mlm_stored_max(company)
        written = cleared = left = 0
        for chunk, (low, high) in zip(chunks or [[]], bounds, strict=True):
            if left or ((written or cleared) and time.monotonic() > deadline):
                # Out of time: the chunks not compared yet are left (at most
                # their customers, and at least one call to clear the gone).
                left += max(1, len(chunk))
                continue
            (done, gone), rest = self._mlm_full_run_chunk(
                company,
                today,
                chunk,
                ids,
                scores_of,
                (low, high),
                batch_size,
                deadline,
                stored=stored_max is not None and (low is None or low <= stored_max),
            )
            written += done
            cleared += gone
            left += rest
        self._mlm_full_run_record(run, len(ids), written, cleared, left, reference)
        return written + cleared, left

    def _mlm_full_run_chunk(
        self,
        company,
        today,
        chunk,
        ids,
        scores_of,
        bounds,
        batch_size,
        deadline,
        stored=True,
    ):
        """Compare and write one chunk of a full run: the customers `ids[i]`
        for i in `chunk` (ascending ids), whose scores are the ENGINE_KEYS
        columns `scores_of(indices)` (see _mlm_score_model_scorer), against
        the stored scores of the id range `bounds` ((low, high): from low up
        to, not including, high; None is open), whose stored customers not
        among them are cleared (`stored`: False when the range is known to
        have none). Writes until `deadline` (at least one batch). Returns
        ((written, cleared), left)."""
        stored = stored and self._mlm_stored_scores(company, id_range=bounds)
        if not stored:
            # Nobody of this range has scores yet (the first night): nothing
            # to compare or clear; scored while they are written.
            written = self._mlm_write_new(
                company, today, chunk, ids, scores_of, batch_size, deadline
            )
            return (written, 0), len(chunk) - written
        partner_ids = [ids[i] for i in chunk]
        moved = self._mlm_scores_moved
        changed = [
            (pid, scores, old)
            for pid, scores in zip(
                partner_ids, zip(*scores_of(chunk), strict=True), strict=True
            )
            # New customers (every one on the first night) without a call.
            if (old := stored.get(pid)) is None
            or (old != scores and moved(old, scores))
        ]
        to_clear = sorted(stored.keys() - set(partner_ids))
        del stored
        written = self._mlm_write_changed(company, today, changed, batch_size, deadline)
        cleared = 0
        if written == len(changed) and (not written or time.monotonic() <= deadline):
            cleared = self._mlm_clear_gone(company, to_clear, batch_size, deadline)
        return (written, cleared), len(changed) - written + len(to_clear) - cleared

    @contextmanager
    def _mlm_aggregation_cursor(self):
        """The cursor the full run reads all orders of a company with: a
        read-only cursor on Odoo's read replica (db_replica_host) when one is
        configured and the call runs under ir.cron, else this transaction's
        own (no extra query, as before).

        The replica only sees committed data. Under ir.cron (the scheduler,
        which commits before each call, or Run Manually) the orders come
        from other, committed transactions; the only rows this call wrote
        before the aggregation are its score runs, which the aggregation
        does not read. The demo loader and the install hook run the refresh
        in the transaction that just created or imported the orders (no
        ir.cron context): they read here, on the primary. Replica lag is
        tolerated: an order the replica has not replayed yet is missed by
        tonight's full run only, and the hourly incremental refresh, which
        reads on the primary every customer with an order written since
        SCORE_INCREMENTAL_OVERLAP before the last run started, rescores him
        (for a lag well below that hour). Odoo falls back to a cursor on the
        primary when the replica cannot be reached.
        """
        if config["db_replica_host"] is False or not self.env.context.get(
            "ir_cron_progress_id"
        ):
            yield self.env.cr
            return
        # _mlm_score_rows flushes the environment it runs in, the replica
        # cursor's: flush this one, as it did before. (Only Odoo's test mode,
        # whose read-only cursor shares this transaction, sees the result: a
        # replica, or the primary Odoo falls back to, sees committed rows.)
        self.env.flush_all()
        with closing(self.env.registry.cursor(readonly=True)) as cr:
            # Read/write: Odoo fell back to the primary (and said why).
            _logger.debug(
                "Segment scores: orders read on a %s cursor",
                "read-only" if cr.readonly else "read/write",
            )
            yield cr

    def _mlm_write_changed(self, company, today, changed, batch_size, deadline):
        """Write `changed` ([(partner id, scores, stored scores)]) in batches
        until `deadline` (at least one): new customers (nothing stored) first
        (inserted), then those whose scores moved (updated). Returns the
        number written."""
        new = [(pid, scores) for pid, scores, old in changed if old is None]
        moved = [(pid, scores) for pid, scores, old in changed if old is not None]
        todo = [
            *(
                (self._mlm_scores_write, batch)
                for batch in split_every(batch_size, new)
            ),
            *(
                (self._mlm_scores_update, batch)
                for batch in split_every(batch_size, moved)
            ),
        ]
        written = 0
        for write, batch in todo:
            write(company, today, dict(batch))
            written += len(batch)
            if time.monotonic() > deadline:
                break
        return written

    def _mlm_write_new(
        self, company, today, chunk, ids, scores_of, batch_size, deadline
    ):
        """Insert the scores of the customers `ids[i]` for i in `chunk`, none
        of whom has scores, in batches until `deadline` (at least one).
        Each batch is scored a block at a time as COPY reads it (see
        LazyScores): PostgreSQL stores a block while the next one is scored.
        Returns the number written."""
        written = 0
        for low in range(0, len(chunk), batch_size):
            batch = chunk[low : low + batch_size]
            self._mlm_scores_write(company, today, LazyScores(batch, ids, scores_of))
            written += len(batch)
            if time.monotonic() > deadline:
                break
        return written

    def _mlm_clear_gone(self, company, to_clear, batch_size, deadline):
        """Clear the scores of `to_clear` (no customers any more) in batches
        until `deadline`. Returns the number cleared."""
        cleared = 0
        for batch in split_every(batch_size, to_clear):
            self._mlm_scores_clear(company, batch)
            cleared += len(batch)
            if time.monotonic() > deadline:
                break
        return cleared

    def _mlm_full_run_record(self, run, customers, written, cleared, left, reference):
        """Book a call's progress on `run`; done when nothing is `left`."""
        values = {
            "customer_count": customers,
            "done_count": run.done_count + written,
            "cleared_count": run.cleared_count + cleared,
        }
        if left:
            run.write(values)
        else:
            # Written in SQL: the reference (cut points and model, a few
            # hundred kB of JSON at 100,000 customers) would be deep-copied
            # by the field on its way in and again on its way to the column.
            run.flush_recordset()
            self.env.cr.execute(
                SQL(
                    """
                    UPDATE loyalty_mlm_score_run
                       SET customer_count = %s, done_count = %s,
                           cleared_count = %s, state = 'done', date_end = %s,
                           reference = %s, write_uid = %s,
                           write_date = NOW() AT TIME ZONE 'UTC'
                     WHERE id = %s
                    """,
                    values["customer_count"],
                    values["done_count"],
                    values["cleared_count"],
                    fields.Datetime.now(),
                    psycopg2.extras.Json(reference),
                    self.env.uid,
                    run.id,
                )
            )
            run.invalidate_recordset(
                [*values, "state", "date_end", "reference", "write_uid", "write_date"]
            )
            run._mlm_garbage_collect()
            _logger.info(
                "Segment scores of %s: %s customers, %s contacts written, %s cleared",
                run.company_id.name,
                customers,
                values["done_count"],
                values["cleared_count"],
            )

    def _mlm_rescore(self, company, partner_ids, reference_run):
        """Rescore `partner_ids` (commercial partners) against a full run.

        Logged as an incremental run (its start is where the next incremental
        refresh looks from); writes only the contacts whose scores changed.
        Returns the number of customers rescored.
        """
        today = fields.Date.today()
        run = (
            self.env["loyalty.mlm.score.run"]
            .sudo()
            .create(
                {
                    "company_id": company.id,
                    "mode": "incremental",
                    "date_start": fields.Datetime.now(),
                    "score_date": today,
                }
            )
        )
        written = cleared = 0
        if partner_ids:
            # Read as stored: the field would hand a deep copy of the cut
            # points (a tenth of the refresh of a thousand customers).
            reference_run.flush_recordset(["reference"])
            self.env.cr.execute(
                "SELECT reference FROM loyalty_mlm_score_run WHERE id = %s",
                [reference_run.id],
            )
            written, cleared = self._mlm_rescore_write(
                company, today, partner_ids, self.env.cr.fetchone()[0]
            )
        run.write(
            {
                "state": "done",
                "date_end": fields.Datetime.now(),
                "customer_count": len(partner_ids),
                "done_count": written,
                "cleared_count": cleared,
            }
        )
        return len(partner_ids)

    def _mlm_rescore_write(self, company, today, partner_ids, reference):
        """Score `partner_ids` against `reference` (a full run's cut points
        and fitted model) and write those whose scores changed, clear those
        without orders: (written, cleared)."""
        written = cleared = 0
        days = {}
        stats = self._mlm_score_stats(company, today, partner_ids, days=days)
        params = self._mlm_score_params(company, reference["company_interval_days"])
        scores = {
            pid: self._mlm_score_values_key(values)
            for pid, values in score_with_reference(
                stats, today, params, reference
            ).items()
        }
        if scores and reference.get("model"):
            # The company's fitted model of the last full run, applied to
            # today's figures of these customers (no refit for a few).
            population = population_from_stats(
                [stat for stat in stats if stat.partner_id in scores], today
            )
            values = self._mlm_score_model(
                population,
                [days[pid] for pid in population.partner_ids],
                [scores[pid] for pid in population.partner_ids],
                reference["model"],
            )
            scores = dict(zip(population.partner_ids, values, strict=True))
        else:
            # A reference from before the model (an upgrade): the nightly
            # run brings the model; meanwhile no churn rise.
            scores = {pid: (*values, None) for pid, values in scores.items()}
        self._mlm_scores_lock(company)
        stored = self._mlm_stored_scores(company, partner_ids)
        moved = self._mlm_scores_moved
        changed = {
            pid: values
            for pid, values in scores.items()
            if (old := stored.get(pid)) != values and moved(old, values)
        }
        to_clear = sorted(stored.keys() - scores.keys())
        for batch in split_every(SCORE_BATCH_SIZE, sorted(changed)):
            self._mlm_scores_update(
                company, today, {pid: changed[pid] for pid in batch}
            )
            written += len(batch)
        for batch in split_every(SCORE_BATCH_SIZE, to_clear):
            self._mlm_scores_clear(company, batch)
            cleared += len(batch)
        return written, cleared

    @api.model
    def _mlm_score_model_settings(self, company):
        """The horizons and margin of the churn and CLV model (clv_model)."""
        return ModelSettings(
            churn_horizon_days=float(company.mlm_churn_horizon_days),
            clv_months=company.mlm_clv_months,
            company_margin_rate=company.mlm_score_default_margin_pct / 100.0,
        )

    @staticmethod
    def _mlm_score_model_columns(population, days):
        """BG/NBD inputs of `population` (whole days, as of its scoring
        day): (x, t_x, T, mean order value). x = order days - 1 (`days`:
        distinct order days per customer); orders dated after the scoring
        day count as that day's."""
        # Typed arrays (8 bytes a value) rather than lists of objects: they
        # live as long as the whole population's scoring.
        age = array("q", (f if f > 0 else 0 for f in population.first_order_days))
        frequency = array("q", (d - 1 if d > 1 else 0 for d in days))
        # min(max(first - last, 0), T) for repeat buyers, else 0; written
        # out (no min/max calls: this runs for every customer).
        recency = array(
            "q",
            (
                ((g if g < t else t) if (g := f - lst) > 0 else 0) if x else 0
                for f, lst, t, x in zip(
                    population.first_order_days,
                    population.last_order_days,
                    age,
                    frequency,
                    strict=True,
                )
            ),
        )
        means = array(
            "d",
            (
                rev / n if n > 0 else 0.0
                for rev, n in zip(
                    population.revenue_total, population.orders_total, strict=True
                )
            ),
        )
        return frequency, recency, age, means

    @api.model
    def _mlm_score_fit(self, company, population, days, columns=None):
        """Fit BG/NBD and Gamma-Gamma on the company's customers (see
        tools/clv_model.py), and the frequency cut points: the model part
        of a full run's reference (JSON-able), which the incremental
        refresh reuses. `columns`: _mlm_score_model_columns, if the caller
        has them.

        Above SCORE_FIT_CUSTOMERS customers the fits run on a systematic
        sample of that many, in partner id order (the fits sample their
        repeat buyers further, see clv_model.FIT_SAMPLE): the parameters of
        20,000 customers are as good as those of 100,000 for ranking and
        calibration, and sorting and grouping every customer cost more
        than the fits themselves."""
        if columns is None:
            columns = self._mlm_score_model_columns(population, days)
        frequency, recency, age, means = columns
        orders = population.orders_total
        sample = self._mlm_score_fit_sample(population.partner_ids)
        if sample is not None:
            frequency, recency, age, means, orders = (
                [column[i] for i in sample]
                for column in (frequency, recency, age, means, orders)
            )
        bgnbd = fit_bgnbd(frequency, recency, age)
        spend = fit_gamma_gamma(orders, means)
        settings = self._mlm_score_model_settings(company)
        bp, gp = bgnbd.params, spend.params
        return {
            "bgnbd": [bp.r, bp.alpha, bp.a, bp.b],
            "gamma_gamma": [gp.p, gp.q, gp.v],
            "fitted": bgnbd.fitted and spend.fitted,
            "churn_horizon_days": settings.churn_horizon_days,
            "clv_months": settings.clv_months,
            "monthly_discount_rate": settings.monthly_discount_rate,
            "company_margin_rate": settings.company_margin_rate,
            "frequency_cuts": frequency_cuts(population.orders_12m),
        }

    @staticmethod
    def _mlm_score_fit_sample(partner_ids, size=None):
        """Indices of the customers the fits use: None for all of them (at
        most `size`, default SCORE_FIT_CUSTOMERS), else `size` spread evenly
        over the customers in partner id order (deterministic: the same
        customers give the same sample, whatever order they come in)."""
        size = size or SCORE_FIT_CUSTOMERS
        n = len(partner_ids)
        if n <= size:
            return None
        order = range(n)
        if any(a >= b for a, b in pairwise(partner_ids)):
            order = sorted(order, key=partner_ids.__getitem__)
        return [order[int((k + 0.5) * n / size)] for k in range(size)]

    @classmethod
    def _mlm_score_model(cls, population, days, scores, model, columns=None):
        """`scores` (SCORE_KEYS tuples of `population`) with the model's
        frequency level, churn risk and CLV, plus the churn rise
        (ENGINE_KEYS tuples): see _mlm_score_model_values."""
        if not scores:
            return []
        values = cls._mlm_score_model_values(
            population, days, list(zip(*scores, strict=True)), model, columns
        )
        return list(zip(*values, strict=True))

    @classmethod
    def _mlm_score_model_values(
        cls, population, days, score_columns, model, columns=None
    ):
        """`score_columns` (SCORE_KEYS columns of `population`, see
        tools/scoring.py:score_population_columns) with the model's frequency
        level, churn risk and CLV, plus the churn rise: ENGINE_KEYS columns.

        Churn risk: P(no purchase within the horizon) under the fitted
        BG/NBD, 0..100. CLV: discounted expected purchases over the CLV
        horizon x Gamma-Gamma expected order value x margin rate shrunk to
        the company's. Frequency: `frequency_cuts` levels of the orders in
        the last 12 months (one-order customers no longer flatten the
        quintiles). The RFM code follows the new frequency level."""
        n = len(population.partner_ids)
        if not n:
            return [[] for _key in ENGINE_KEYS]
        if columns is None:
            columns = cls._mlm_score_model_columns(population, days)
        scorer = cls._mlm_score_model_scorer(population, score_columns, model, columns)
        # A slice at a time: each slice's intermediate columns (P(alive),
        # expected purchases and value, margin rates...) are let go before
        # the next, and only the results are kept (the model's three as
        # typed arrays).
        values = [[], [], [], [], [], [], array("q"), array("d"), array("q")]
        for low in range(0, n, SCORE_MODEL_SLICE):
            part = scorer(range(low, min(low + SCORE_MODEL_SLICE, n)))
            for column, values_part in zip(values, part, strict=True):
                column.extend(values_part)
        return values

    @classmethod
    def _mlm_score_model_scorer(cls, population, score_columns, model, columns):
        """A function of population indices (a range, or a list) returning
        the ENGINE_KEYS columns of those customers (see
        _mlm_score_model_values): the model's tables are built once, here,
        for every customer; each call scores only its customers, so that a
        caller can score and write a block at a time."""
        frequency, recency, age, means = columns
        settings = ModelSettings(
            churn_horizon_days=model["churn_horizon_days"],
            clv_months=model["clv_months"],
            monthly_discount_rate=model["monthly_discount_rate"],
            company_margin_rate=model["company_margin_rate"],
        )
        bgnbd = BgNbdParams(*model["bgnbd"])
        gamma_gamma = GammaGammaParams(*model["gamma_gamma"])
        tables = model_tables(bgnbd, frequency, age, settings)
        cuts = model["frequency_cuts"]
        # One frequency level per distinct order count (a few hundred).
        level = {o12: frequency_score(o12, cuts) for o12 in set(population.orders_12m)}
        recency_scores, _f, monetary_scores, _c, segments, quadrants = score_columns[:6]
        inputs = (
            frequency,
            recency,
            age,
            population.orders_total,
            means,
            population.margin_12m,
            population.revenue_12m,
        )

        def values(indices):
            if isinstance(indices, range) and indices.step == 1:
                part = slice(indices.start, indices.stop)

                def take(column):
                    return column[part]

            else:

                def take(column):
                    return [column[i] for i in indices]

            x, t_x, t, orders, mean, margins, revenues = map(take, inputs)
            result = score_model(
                bgnbd,
                gamma_gamma,
                x,
                t_x,
                t,
                orders,
                mean,
                margins,
                revenues,
                settings,
                tables=tables,
            )
            rise = churn_rise(
                bgnbd, x, t_x, result.churn_probability, settings.churn_horizon_days
            )
            r_scores, m_scores = take(recency_scores), take(monetary_scores)
            f_scores = [level[o12] for o12 in take(population.orders_12m)]
            codes = [
                RFM_CODES[key] for key in zip(r_scores, f_scores, m_scores, strict=True)
            ]
            return [
                r_scores,
                f_scores,
                m_scores,
                codes,
                take(segments),
                take(quadrants),
                result.churn_risk,
                result.clv,
                rise,
            ]

        return values

    @api.model
    def _mlm_score_params(self, company, interval):
        return ScoringParams(
            heavy_pct=company.mlm_score_heavy_pct,
            low_pct=company.mlm_score_low_pct,
            low_threshold=company.mlm_score_low_threshold,
            loyalty_split_pct=company.mlm_score_loyalty_split_pct,
            profit_split_pct=company.mlm_score_profit_split_pct,
            default_margin_pct=company.mlm_score_default_margin_pct,
            company_interval_days=interval,
            clv_horizon_cap_years=company.mlm_score_clv_years,
        )

    @api.model
    def _mlm_score_stats_query(
        self, company, today, partner_ids=None, previous=True, until=None
    ):
        """The aggregation behind the scores: one row per commercial partner.

        Inputs, all in company currency, of `company` only:

        * confirmed sale orders (state sale): one order each, revenue the
          untaxed amount converted at the order's rate; margin the order's
          margin (sale_margin, from its lines' costs), or the default margin %
          of the amount when none of its lines has a cost (the margin then
          equals the amount). A line without cost in an order that has other
          costed lines counts at its full price (sale_margin's own rule);
        * paid, done or invoiced POS orders: an order when the total is not
          negative, else a refund (revenue only); margin price - cost per line,
          or the default margin % of the line when it has no cost;
        * posted credit notes on confirmed sale orders: negative revenue and
          margin (at the refunded line's margin rate), on the credit note's day;
        * cancelled orders count for nothing.

        Columns: partner id, days from the first and from the last order to
        `today` (negative for orders dated after it), orders_12m, revenue_12m,
        margin_12m, orders_total, revenue_total, distinct order days (the
        purchase occasions of the churn model) and, with `previous`,
        orders_prev_12m and revenue_prev_12m (the scores do not need them).
        Archived customers are left out (their scores are cleared). Orders
        count on their UTC day; "12m" is the 12 months up to `today`.
        `until`: only the rows before this moment (the scores as they were
        then: the score quality report).
        """
        # Every source yields one row per order, refund, line or credit note
        # line into a single stream, aggregated once per commercial partner
        # (see _mlm_score_rows for how). The CTEs are each used once, so
        # PostgreSQL inlines them: one plan, as if written as subqueries.
        day_12m, day_24m = self._mlm_score_windows(today)
        rate = company.mlm_score_default_margin_pct / 100.0
        restrict = self._mlm_score_restrict(partner_ids)
        sources = (company, rate, restrict, day_12m)
        contacts = SQL()
        if partner_ids is not None:
            # The contacts of `partner_ids` whose commercial partner is
            # active, read once: each source then reads their orders
            # through its partner index (_mlm_score_restrict), and the
            # aggregation maps them to their commercial partner from here,
            # where joins with res_partner scanned every order and contact.
            contacts = SQL(
                """
                mlm_contacts AS MATERIALIZED (
                    SELECT c.id, c.commercial_partner_id
                      FROM res_partner c
                      JOIN res_partner cp ON cp.id = c.commercial_partner_id
                     WHERE c.commercial_partner_id = ANY(%s) AND cp.active),
                """,
                list(partner_ids),
            )
        return SQL(
            """
            WITH %(contacts)s
                 sale_rows AS (%(sale)s),
                 pos_rows AS (%(pos)s),
                 pos_line_rows AS (%(pos_line)s),
                 credit_note_rows AS (%(credit_note)s),
                 stream AS (
                    SELECT * FROM sale_rows
                    UNION ALL SELECT * FROM pos_rows
                    UNION ALL SELECT * FROM pos_line_rows
                    UNION ALL SELECT * FROM credit_note_rows
                 ),
                 per_customer AS (%(per_customer)s)
            SELECT s.* FROM per_customer s
             WHERE s.id IS NOT NULL %(active)s
            """,
            contacts=contacts,
            # Archived customers: with `partner_ids`, their contacts' orders
            # are left out already (mlm_contacts).
            active=SQL(
                "AND NOT EXISTS (SELECT FROM res_partner cp"
                " WHERE cp.id = s.id AND NOT cp.active)"
            )
            if partner_ids is None
            else SQL(),
            sale=self._mlm_score_sale_rows(*sources),
            pos=self._mlm_score_pos_rows(*sources),
            pos_line=self._mlm_score_pos_line_rows(*sources),
            credit_note=self._mlm_score_credit_note_rows(*sources),
            per_customer=self._mlm_score_per_customer(
                today,
                day_12m,
                day_24m,
                previous,
                until,
                SQL("res_partner" if partner_ids is None else "mlm_contacts"),
            ),
        )

    @staticmethod
    def _mlm_score_windows(today):
        """The first moments of "the last 12 months" and "the 12 before" as
        of `today`: an order day after today - 1 year counts as recent, i.e.
        from the next midnight on (timestamps are compared as they are,
        rather than casting each row)."""
        midnight = datetime.min.time()
        day_12m = datetime.combine(today - relativedelta(years=1), midnight)
        day_24m = datetime.combine(today - relativedelta(years=2), midnight)
        return day_12m + timedelta(days=1), day_24m + timedelta(days=1)

    @staticmethod
    def _mlm_score_restrict(partner_ids):
        """The filter of each source on the orders of `partner_ids`
        (commercial partners; their contacts' orders count, unless the
        commercial partner is archived: the mlm_contacts of
        _mlm_score_stats_query), or nothing."""
        if partner_ids is None:
            return SQL()
        # As an array (computed once per source: an InitPlan), which the
        # partner index of each source serves.
        return SQL("AND o.partner_id = ANY(ARRAY(SELECT id FROM mlm_contacts))")

    @staticmethod
    def _mlm_score_row(when, is_order, revenue, margin, day_12m):
        """The stream's columns for one source: partner_id, at, is_order,
        revenue, margin_12m. Each row carries its revenue once, split into
        "last 12 months" and the rest by the aggregates' filters; the margin
        is kept for the last 12 months only, as NULL elsewhere, so that its
        expression is evaluated only where it counts. Sums stay numeric:
        exact, so the scores never depend on the order rows were added in."""
        return SQL(
            """
            o.partner_id, %(when)s AS at, %(is_order)s AS is_order,
            %(revenue)s AS revenue,
            CASE WHEN %(when)s >= %(day_12m)s THEN %(margin)s END AS margin_12m
            """,
            when=when,
            is_order=is_order,
            revenue=revenue,
            margin=margin,
            day_12m=day_12m,
        )

    @staticmethod
    def _mlm_score_in_currency(amount):
        """`amount` of the order `o` in company currency (at the order's
        rate; skipped when the rate is 1)."""
        return SQL(
            "CASE WHEN o.currency_rate = 1 THEN %s"
            " ELSE %s / COALESCE(NULLIF(o.currency_rate, 0), 1) END",
            amount,
            amount,
        )

    @api.model
    def _mlm_score_sale_rows(self, company, rate, restrict, day_12m):
        """Confirmed sale orders: one order each, revenue the untaxed amount,
        margin the order's (sale_margin), or the default margin `rate` of the
        amount when none of its lines has a cost (the margin then equals the
        amount)."""
        in_currency = self._mlm_score_in_currency
        row = self._mlm_score_row(
            SQL("o.date_order"),
            SQL("TRUE"),
            in_currency(SQL("o.amount_untaxed")),
            in_currency(
                SQL(
                    "CASE WHEN o.margin IS NULL OR o.margin = o.amount_untaxed"
                    " THEN o.amount_untaxed * %s ELSE o.margin END",
                    rate,
                )
            ),
            day_12m,
        )
        return SQL(
            """
            SELECT %(row)s
              FROM sale_order o
             WHERE o.state = 'sale' AND o.company_id = %(company)s
                   %(restrict)s
            """,
            row=row,
            company=company.id,
            restrict=restrict,
        )

    @staticmethod
    def _mlm_score_valid_pos(company):
        """Paid, done or invoiced POS orders `o` of `company`."""
        return SQL(
            "o.state IN ('paid', 'done', 'invoiced') AND o.company_id = %s", company.id
        )

    @api.model
    def _mlm_score_pos_rows(self, company, rate, restrict, day_12m):
        """POS orders: an order when the total is not negative, else a refund;
        revenue only (their margin comes from their lines)."""
        row = self._mlm_score_row(
            SQL("o.date_order"),
            SQL("o.amount_total >= 0"),
            self._mlm_score_in_currency(SQL("(o.amount_total - o.amount_tax)")),
            SQL("NULL::numeric"),
            day_12m,
        )
        return SQL(
            "SELECT %s FROM pos_order o WHERE %s %s",
            row,
            self._mlm_score_valid_pos(company),
            restrict,
        )

    @api.model
    def _mlm_score_pos_line_rows(self, company, rate, restrict, day_12m):
        """POS order lines of the last 12 months: their margin only (price -
        cost, or the default margin `rate` of the line without cost)."""
        in_currency = self._mlm_score_in_currency
        row = self._mlm_score_row(
            SQL("o.date_order"),
            SQL("FALSE"),
            SQL("NULL::numeric"),
            SQL(
                "CASE WHEN l.total_cost <> 0 THEN %s - l.total_cost ELSE %s END",
                in_currency(SQL("l.price_subtotal")),
                in_currency(SQL("l.price_subtotal * %s", rate)),
            ),
            day_12m,
        )
        return SQL(
            """
            SELECT %(row)s
              FROM pos_order_line l
              JOIN pos_order o ON o.id = l.order_id
             WHERE %(valid_pos)s %(restrict)s
               AND o.date_order >= %(day_12m)s  -- margin only
            """,
            row=row,
            valid_pos=self._mlm_score_valid_pos(company),
            restrict=restrict,
            day_12m=day_12m,
        )

    @api.model
    def _mlm_score_credit_note_rows(self, company, rate, restrict, day_12m):
        """Posted credit notes on confirmed sale orders: negative revenue and
        margin (at the refunded line's margin rate, else the default `rate`),
        on the credit note's day."""
        row = self._mlm_score_row(
            SQL("COALESCE(m.invoice_date, m.date)::timestamp"),
            SQL("FALSE"),
            SQL("-aml.balance"),
            SQL(
                "-aml.balance * CASE WHEN sl.purchase_price <> 0"
                " AND sl.price_subtotal <> 0 THEN sl.margin / sl.price_subtotal"
                " ELSE %s END",
                rate,
            ),
            day_12m,
        )
        return SQL(
            """
            SELECT %(row)s
              FROM account_move m
              JOIN account_move_line aml ON aml.move_id = m.id
              JOIN sale_order_line_invoice_rel rel
                ON rel.invoice_line_id = aml.id
              JOIN sale_order_line sl ON sl.id = rel.order_line_id
              JOIN sale_order o ON o.id = sl.order_id
             WHERE m.move_type = 'out_refund' AND m.state = 'posted'
               AND m.company_id = %(company)s
               AND o.state = 'sale' AND o.company_id = %(company)s
                   %(restrict)s
            """,
            row=row,
            company=company.id,
            restrict=restrict,
        )

    @staticmethod
    def _mlm_score_per_customer(
        today, day_12m, day_24m, previous, until=None, contacts=None
    ):
        """The aggregation of the `stream` per commercial partner (customers
        with at least one order): the columns of _mlm_score_stats_query.
        `contacts`: the table mapping contacts to their commercial partner
        (default res_partner)."""
        # The windows start at midnight: compared by day.
        recent = SQL("r.day >= %s", day_12m.date())
        before = SQL("WHERE r.at < %s", until) if until else SQL()
        previous_columns = SQL()
        if previous:
            older = SQL("r.day >= %s AND r.day < %s", day_24m.date(), day_12m.date())
            previous_columns = SQL(
                """,
                COUNT(*) FILTER (WHERE r.is_order AND %(older)s)::int,
                ROUND(COALESCE(SUM(r.revenue) FILTER (WHERE %(older)s), 0),
                      2)::float8
                """,
                older=older,
            )
        # The stream is sorted by customer *and time* before it is grouped:
        # the distinct order days (COUNT(DISTINCT), which PostgreSQL cannot
        # split between parallel workers, so the aggregation itself runs in
        # one process) then find each customer's days already in order, and
        # the parallel workers still read, join and sort the rows. Measured
        # on 1,000,000 orders: 15% to 25% less than grouping the stream as
        # it comes (bench/README.md).
        return SQL(
            """
            SELECT r.commercial_partner_id AS id,
                   %(today)s - MIN(r.day) FILTER (WHERE r.is_order),
                   %(today)s - MAX(r.day) FILTER (WHERE r.is_order),
                   COUNT(*) FILTER (WHERE r.is_order AND %(recent)s)::int,
                   ROUND(COALESCE(SUM(r.revenue) FILTER (WHERE %(recent)s), 0),
                         2)::float8,
                   ROUND(COALESCE(SUM(r.margin_12m), 0), 2)::float8,
                   COUNT(*) FILTER (WHERE r.is_order)::int,
                   ROUND(COALESCE(SUM(r.revenue), 0), 2)::float8,
                   COUNT(DISTINCT r.day) FILTER (WHERE r.is_order)::int
                   %(previous_columns)s
              FROM (SELECT p.commercial_partner_id, r.at::date AS day,
                           r.is_order, r.revenue, r.margin_12m
                      FROM stream r
                      JOIN %(contacts)s p ON p.id = r.partner_id
                      %(before)s
                     ORDER BY p.commercial_partner_id, day) r
             GROUP BY r.commercial_partner_id
            HAVING COUNT(*) FILTER (WHERE r.is_order) > 0
            """,
            today=today,
            recent=recent,
            previous_columns=previous_columns,
            before=before,
            contacts=contacts or SQL("res_partner"),
        )

    @api.model
    def _mlm_score_rows(
        self, company, today, partner_ids=None, previous=True, until=None
    ):
        """The rows of _mlm_score_stats_query, fetched."""
        # Unpacked: the generator runs to its end (and resets the settings).
        (rows,) = self._mlm_score_row_chunks(
            company, today, partner_ids, previous, until
        )
        return rows

    def _mlm_score_row_chunks(
        self,
        company,
        today,
        partner_ids=None,
        previous=True,
        until=None,
        chunk_size=None,
    ):
        """The rows of _mlm_score_stats_query, fetched: one list, or lists of
        `chunk_size` rows (a generator: consume it to the end)."""
        self.env.flush_all()
        cr = self.env.cr
        # One aggregation over every order: give it the memory to stay off
        # disk (SET LOCAL: this transaction only; reset right after). Grouped
        # by sorting rather than hashing: the planner's pick, one hash table
        # holding three numeric sums for each of 100,000 customers, takes a
        # third longer than workers that each sort their share and hand
        # their sums on in customer order (measured: bench/README.md).
        # (jit: compiling the expressions costs more than it saves here.)
        cr.execute(
            SQL(
                "SET LOCAL work_mem = %s; SET LOCAL jit = off;"
                " SET LOCAL enable_hashagg = off",
                SCORE_WORK_MEM,
            )
        )
        cr.execute(
            self._mlm_score_stats_query(company, today, partner_ids, previous, until)
        )
        if chunk_size:
            # The rows as Python objects a chunk at a time (the whole result
            # is in the client library's memory already).
            while rows := cr.fetchmany(chunk_size):
                yield rows
        else:
            yield cr.fetchall()
        cr.execute(SQL("RESET work_mem; RESET jit; RESET enable_hashagg"))

    @api.model
    def _mlm_score_stats(self, company, today, partner_ids=None, days=None):
        """CustomerStats of the company's customers (or of `partner_ids`);
        `days`: a dict to fill with their distinct order days."""
        stats = []
        rows = self._mlm_score_rows(company, today, partner_ids)
        for row in rows:
            pid, first, last, o12, r12, m12, total, rtotal, order_days = row[:9]
            oprev, rprev = row[9:]
            if days is not None:
                days[pid] = order_days
            interval = None
            if total > 1:
                interval = (first - last) / (total - 1)
            stats.append(
                CustomerStats(
                    pid,
                    today - timedelta(days=first),
                    today - timedelta(days=last),
                    o12,
                    r12,
                    oprev,
                    rprev,
                    m12,
                    total,
                    rtotal,
                    interval,
                )
            )
        return stats

    @api.model
    def _mlm_score_population(self, company, today, until=None):
        """The scored Population of the company (the full run's input), and
        each customer's distinct order days. `until`: from the orders before
        that moment only."""
        # Read into typed arrays, a chunk of rows at a time: 8 bytes a value,
        # where all the rows as tuples of Python objects, then lists of them,
        # took four to five times that at once: at a million customers, more
        # than a cron worker may hold.
        ids, first, last, o12, r12, m12, total, rtotal, days = columns = [
            array(code) for code in "qqqqddqdq"
        ]
        for rows in self._mlm_score_row_chunks(
            company, today, previous=False, until=until, chunk_size=SCORE_FETCH_ROWS
        ):
            for column, values in zip(columns, zip(*rows, strict=True), strict=True):
                column.extend(values)
        # Mean days between orders, as _mlm_score_stats computes it (None for
        # one-order customers: a list).
        intervals = [
            (days_first - days_last) / (count - 1) if count > 1 else None
            for days_first, days_last, count in zip(first, last, total, strict=True)
        ]
        population = Population(
            ids, first, last, o12, r12, m12, total, rtotal, intervals
        )
        return population, days

    @staticmethod
    def _mlm_score_population_of_rows(rows, today):
        """(Population, distinct order days) of _mlm_score_stats_query rows
        scored on `today`."""
        if not rows:
            return population_from_stats([], today), []
        # One list per column (a comprehension each: much cheaper than
        # zip(*rows) over 100,000 rows).
        ids, first, last, o12, r12, m12, total, rtotal = (
            [row[column] for row in rows] for column in range(8)
        )
        # Mean days between orders, as _mlm_score_stats computes it.
        intervals = [
            (days_first - days_last) / (count - 1) if count > 1 else None
            for days_first, days_last, count in zip(first, last, total, strict=True)
        ]
        days = [row[8] for row in rows]
        population = Population(
            ids, first, last, o12, r12, m12, total, rtotal, intervals
        )
        return population, days

    @api.model
    def _mlm_dirty_partner_ids(self, company, since):
        """Commercial partners with orders or credit notes written after `since`."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT p.commercial_partner_id
                  FROM sale_order o JOIN res_partner p ON p.id = o.partner_id
                 WHERE o.company_id = %(company)s AND o.write_date > %(since)s
                UNION
                SELECT p.commercial_partner_id
                  FROM pos_order o JOIN res_partner p ON p.id = o.partner_id
                 WHERE o.company_id = %(company)s AND o.write_date > %(since)s
                UNION
                SELECT m.commercial_partner_id
                  FROM account_move m
                 WHERE m.move_type = 'out_refund' AND m.company_id = %(company)s
                   AND m.write_date > %(since)s
                   AND m.commercial_partner_id IS NOT NULL
                """,
                company=company.id,
                since=since,
            )
        )
        return sorted(row[0] for row in self.env.cr.fetchall())

    @staticmethod
    def _mlm_score_values_key(values):
        """The contact's part of a customer's scores (all but the day): the
        values of tools/scoring.py:SCORE_KEYS (the refresh adds the churn
        rise: ENGINE_KEYS)."""
        return tuple(values[key] for key in SCORE_KEYS)

    @staticmethod
    def _mlm_scores_moved(stored, values):
        """Whether `values` (ENGINE_KEYS) must replace the `stored` ones
        (None: no row): a score changed, or the CLV moved beyond
        clv_moved's tolerance. Without it every night rewrote every
        customer, whose CLV drifts by cents each day."""
        if stored is None:
            return True
        i = CLV_INDEX
        return (
            stored[:i] != values[:i]
            or stored[i + 1 :] != values[i + 1 :]
            or clv_moved(stored[i], values[i])
        )

    @api.model
    def _mlm_stored_scores(self, company, partner_ids=None, id_range=None):
        """{partner id: _mlm_score_values_key} of the customers with scores in
        `company` (among `partner_ids`, if given; with ids from low up to,
        not including, high for an `id_range` (low, high), None being open),
        in one query."""
        restrict = SQL()
        if partner_ids is not None:
            restrict = SQL("AND partner_id = ANY(%s)", list(partner_ids))
        low, high = id_range or (None, None)
        if low is not None:
            restrict = SQL("%s AND partner_id >= %s", restrict, low)
        if high is not None:
            restrict = SQL("%s AND partner_id < %s", restrict, high)
        self.env.cr.execute(
            SQL(
                """
                SELECT partner_id, recency_score, frequency_score, monetary_score,
                       rfm_code, usage_segment, quadrant, churn_risk, clv,
                       churn_rise
                  FROM loyalty_mlm_partner_score
                 WHERE company_id = %s %s
                """,
                company.id,
                restrict,
            )
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    @api.model
    def _mlm_stored_max(self, company):
        """The highest partner id with scores in `company`, or None."""
        self.flush_model(["partner_id", "company_id"])
        self.env.cr.execute(
            SQL(
                "SELECT MAX(partner_id) FROM loyalty_mlm_partner_score"
                " WHERE company_id = %s",
                company.id,
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _mlm_scores_lock(self, company):
        """Take the company's score lock until the transaction ends.

        Every refresh holds it from reading the stored scores to writing its
        own, so the customers it finds without scores still have none when it
        inserts theirs (see _mlm_scores_write): two refreshes of one company
        (the nightly job, the hourly one, the button) take turns.
        """
        self.env.cr.execute(
            SQL("SELECT pg_advisory_xact_lock(%s, %s)", SCORE_LOCK_KEY, company.id)
        )

    @api.model
    def _mlm_scores_values(self, scores):
        """The unnest() of `scores` ({partner_id: _mlm_score_values_key}), as
        SQL: the rows v(id, r, f, m, code, segment, quadrant, churn, clv,
        rise)."""

        def array(items):
            # One array literal ('{1,2,3}') passed as a parameter, which
            # PostgreSQL parses in one go (psycopg2's ARRAY[...] costs a parse
            # per element). Items are numbers and selection keys or digit
            # codes: nothing that needs quoting in an array literal.
            if None in items:
                items = ["NULL" if item is None else item for item in items]
            return "{" + ",".join(map(str, items)) + "}"

        r, f, m, code, segment, quadrant, churn, clv, rise = map(
            array, zip(*scores.values(), strict=True)
        )
        return SQL(
            """
            unnest(%(ids)s::int[], %(r)s::int[], %(f)s::int[], %(m)s::int[],
                   %(code)s::varchar[], %(segment)s::varchar[],
                   %(quadrant)s::varchar[], %(churn)s::int[], %(clv)s::float8[],
                   %(rise)s::int[])
                AS v(id, r, f, m, code, segment, quadrant, churn, clv, rise)
            """,
            ids=array(list(scores)),
            r=r,
            f=f,
            m=m,
            code=code,
            segment=segment,
            quadrant=quadrant,
            churn=churn,
            clv=clv,
            rise=rise,
        )

    @api.model
    def _mlm_scores_write(self, company, day, scores):
        """Insert `scores` ({partner_id: _mlm_score_values_key}) of customers
        without scores in `company`, dated `day`, in one statement.

        A plain insert: the caller holds _mlm_scores_lock since it found them
        without scores. (An upsert checks and confirms each row on top, a
        fifth of the nightly write when every customer is new.) Sent with COPY,
        which puts the rows straight into the table: no arrays to build, parse
        and unnest first (a third less time for 100,000 new customers).
        """
        # A line per customer in COPY's text format. The values are numbers,
        # selection keys and digit codes: nothing to escape but NULL.
        fixed = [str(company.id), str(day)]
        line = "\t".join(["%s", *fixed] + ["%s"] * len(ENGINE_KEYS)) + "\n"
        # Formatted a block at a time while COPY sends: PostgreSQL stores
        # the rows already sent while the next ones are formatted.
        pieces = (
            "".join(
                [
                    line % (pid, *values)
                    if None not in values
                    else line % (pid, *(r"\N" if v is None else v for v in values))
                    for pid, values in block
                ]
            )
            for block in split_every(SCORE_COPY_LINES, scores.items())
        )
        self._mlm_copy(
            "loyalty_mlm_partner_score",
            ["partner_id", "company_id", "score_date", *ENGINE_COLUMNS],
            pieces,
        )
        self._mlm_scores_invalidate()
        return len(scores)

    @api.model
    def _mlm_copy(self, table, columns, text):
        """COPY `text` (COPY's text format, a line per row; or an iterable of
        such texts, consumed as they are sent) into `columns` of `table`: one
        statement, counted as one like those of cr.execute (the query
        budgets of the tests and the benchmark see it)."""
        source = io.StringIO(text) if isinstance(text, str) else CopyStream(text)
        cr = self.env.cr
        # As Odoo does for its own COPY (models.py, _ensure_xml_id): psycopg2
        # cannot COPY under an asynchronous wait callback (gevent).
        callback = psycopg2.extensions.get_wait_callback()
        psycopg2.extensions.set_wait_callback(None)
        try:
            cr.copy_from(source, table=table, columns=columns, size=COPY_READ_SIZE)
        finally:
            psycopg2.extensions.set_wait_callback(callback)
        cr.sql_log_count += 1
        sql_db.sql_counter += 1

    @api.model
    def _mlm_scores_update(self, company, day, scores):
        """Rewrite `scores` ({partner_id: _mlm_score_values_key}) of customers
        with scores in `company`, dated `day`, in one statement (an upsert:
        rows gone meanwhile come back)."""
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO loyalty_mlm_partner_score AS s (
                       partner_id, company_id, score_date, recency_score,
                       frequency_score, monetary_score, rfm_code, usage_segment,
                       quadrant, churn_risk, clv, churn_rise)
                SELECT v.id, %s, %s, v.r, v.f, v.m, v.code, v.segment,
                       v.quadrant, v.churn, v.clv, v.rise
                  FROM %s
                ON CONFLICT (partner_id, company_id) DO UPDATE
                   SET score_date = EXCLUDED.score_date,
                       recency_score = EXCLUDED.recency_score,
                       frequency_score = EXCLUDED.frequency_score,
                       monetary_score = EXCLUDED.monetary_score,
                       rfm_code = EXCLUDED.rfm_code,
                       usage_segment = EXCLUDED.usage_segment,
                       quadrant = EXCLUDED.quadrant,
                       churn_risk = EXCLUDED.churn_risk,
                       clv = EXCLUDED.clv,
                       churn_rise = EXCLUDED.churn_rise
                """,
                company.id,
                day,
                self._mlm_scores_values(scores),
            )
        )
        self._mlm_scores_invalidate()
        return len(scores)

    @api.model
    def _mlm_scores_invalidate(self):
        """Forget cached scores after the SQL writes (and the related badges)."""
        self.invalidate_model()
        self.env["res.partner"].invalidate_model(list(SCORE_FIELDS))
        for model in ("crm.lead", "sale.order"):
            fnames = [name for name in SCORE_FIELDS if name in self.env[model]._fields]
            self.env[model].invalidate_model(fnames)

    @api.model
    def _mlm_scores_clear(self, company, partner_ids):
        """Remove the scores of `partner_ids` in `company`, in one statement."""
        self.env.cr.execute(
            SQL(
                "DELETE FROM loyalty_mlm_partner_score"
                " WHERE company_id = %s AND partner_id = ANY(%s)",
                company.id,
                list(partner_ids),
            )
        )
        self._mlm_scores_invalidate()
        return self.env.cr.rowcount

    @api.model
    def _mlm_scores_demo(self):
        """Order histories for the score demo customers, then a full refresh.

        Confirmed through the real sale flow, then dated back. Every usage
        segment and quadrant is represented (see demo/res_partner_scores_demo.xml).
        """
        ref = self.env.ref
        beans = ref("loyalty_mlm.product_espresso_beans_demo")
        papers = ref("loyalty_mlm.product_filter_papers_demo")
        story = {
            # customer: (product, quantity, [days ago of each order])
            "tf1": (beans, 3, range(10, 730, 30)),
            "tf2": (beans, 2, range(5, 730, 35)),
            "tf3": (beans, 1, range(12, 700, 30)),
            "risk": (beans, 4, range(180, 540, 14)),
            "bf1": (beans, 15, [30]),
            "bf2": (beans, 8, [120, 20]),
            "bf3": (beans, 10, [90]),
            "ba1": (papers, 10, range(7, 730, 35)),
            "ba2": (papers, 8, range(15, 730, 42)),
            "ba3": (papers, 12, range(3, 540, 30)),
            "ba4": (papers, 10, range(25, 730, 60)),
            "st1": (papers, 5, [600]),
            "st2": (beans, 1, [400, 500]),
            "st3": (papers, 3, [150]),
            "st4": (beans, 1, [450]),
            "md1": (beans, 2, range(45, 730, 90)),
        }
        now = fields.Datetime.now()
        orders = self.env["sale.order"]
        dates = []
        for key, (product, quantity, days_ago) in story.items():
            partner = ref(f"loyalty_mlm.res_partner_score_{key}_demo")
            for days in days_ago:
                orders |= orders.create(
                    {
                        "partner_id": partner.id,
                        "order_line": [
                            (
                                0,
                                0,
                                {"product_id": product.id, "product_uom_qty": quantity},
                            )
                        ],
                    }
                )
                dates.append(now - timedelta(days=days))
        # Oldest first, each at its own date: the ledger entries, lots and
        # stage moves of these customers tell the order history they stand
        # for, not one spike on the day the demo was loaded.
        first = {}
        for order, when in sorted(
            zip(orders, dates, strict=True), key=lambda pair: pair[1]
        ):
            order.with_context(
                tracking_disable=True, mlm_ledger_date=when
            ).action_confirm()
            order.date_order = when
            first.setdefault(order.partner_id, when)
        for partner, when in first.items():
            if partner.mlm_member_since:
                partner.mlm_member_since = when.date()
        backfill = self.with_context(mlm_stage_backfill=True)
        while backfill._cron_refresh_scores(time_budget=600):
            pass
