"""18.0.1.3.0.

- Issue #21: the lifecycle stage becomes per company. Each contact's stage,
  stage date and lock (kept aside by pre-migrate) go to the company that set
  them: the company of his latest stage move, else his own company, else the
  first company. A single-company database therefore keeps every stage as it
  was; in a database with several companies, the other companies' stages are
  decided by their next nightly run.
- Issue #17: treatment logs say what was done in the reader's language. Logs
  written before stored that as text in the language of whoever triggered the
  treatment; they get their lines back as codes and values, matched in every
  installed language. A log with a line that matches nothing keeps its text
  (shown as it is).
"""

import logging

from odoo import SUPERUSER_ID, api
from odoo.tools import SQL, sql

_logger = logging.getLogger(__name__)

KEPT = {
    "mlm_stage_id": "mlm_stage_id_1_2",
    "mlm_stage_date": "mlm_stage_date_1_2",
    "mlm_stage_locked_until": "mlm_stage_locked_until_1_2",
}


def move_stages(cr, kept=None):
    """Write the kept plain columns into the company-dependent ones and drop
    them; returns the number of contacts with a stage moved. Set-based: one
    UPDATE. `kept`: {column: kept column} (tests pass their own)."""
    kept = kept or KEPT
    if not all(sql.column_exists(cr, "res_partner", col) for col in kept.values()):
        return 0
    stage, date, locked = (SQL.identifier(kept[col]) for col in KEPT)
    cr.execute(
        SQL(
            """
            WITH owner AS (
                SELECT p.id,
                       COALESCE(
                           (SELECT h.company_id
                              FROM loyalty_mlm_stage_history h
                             WHERE h.partner_id = p.id AND h.company_id IS NOT NULL
                          ORDER BY h.date DESC, h.id DESC
                             LIMIT 1),
                           p.company_id,
                           (SELECT MIN(id) FROM res_company)
                       )::text AS company
                  FROM res_partner p
                 WHERE p.%(stage)s IS NOT NULL
            )
            UPDATE res_partner p
               SET mlm_stage_id = jsonb_build_object(o.company, p.%(stage)s),
                   mlm_stage_date = CASE WHEN p.%(date)s IS NOT NULL THEN
                       jsonb_build_object(
                           o.company, to_char(p.%(date)s, 'YYYY-MM-DD HH24:MI:SS'))
                   END,
                   mlm_stage_locked_until = CASE WHEN p.%(locked)s IS NOT NULL THEN
                       jsonb_build_object(
                           o.company, to_char(p.%(locked)s, 'YYYY-MM-DD'))
                   END
              FROM owner o
             WHERE o.id = p.id
            """,
            stage=stage,
            date=date,
            locked=locked,
        )
    )
    moved = cr.rowcount
    for column in kept.values():
        cr.execute(
            SQL("ALTER TABLE res_partner DROP COLUMN %s", SQL.identifier(column))
        )
    return moved


def migrate(cr, version):
    if not version:
        return
    moved = move_stages(cr)
    _logger.info("loyalty_mlm: lifecycle stages of %s contacts made per company", moved)
    env = api.Environment(cr, SUPERUSER_ID, {})
    changed = env["loyalty.mlm.treatment.log"]._mlm_backfill_summary_lines()
    _logger.info("loyalty_mlm: %s treatment logs given their outcome codes", changed)
