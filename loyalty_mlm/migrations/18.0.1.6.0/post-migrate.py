"""18.0.1.6.0.

- Issue #22: the stage and tier histories lose their log columns (a move
  is never edited; its date and user say when and by whom). Odoo leaves
  the columns of a model that no longer logs access, with their foreign
  keys, so they are dropped here.
- The members' stage index of each company now follows the Members views'
  order (res.partner._mlm_create_stage_indexes, made by the update before
  this script): the former ones are dropped.
"""

import logging

from odoo.tools import SQL, sql

_logger = logging.getLogger(__name__)

TABLES = ("loyalty_mlm_stage_history", "loyalty_mlm_tier_history")
LOG_COLUMNS = ("create_uid", "create_date", "write_uid", "write_date")


def migrate(cr, version):
    if not version:
        return
    for table in TABLES:
        for column in LOG_COLUMNS:
            if sql.column_exists(cr, table, column):
                cr.execute(
                    SQL(
                        "ALTER TABLE %s DROP COLUMN %s",
                        SQL.identifier(table),
                        SQL.identifier(column),
                    )
                )
    cr.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'res_partner'"
        " AND indexname ~ '^res_partner_mlm_stage_[0-9]+_index$'"
    )
    for (name,) in cr.fetchall():
        cr.execute(SQL("DROP INDEX IF EXISTS %s", SQL.identifier(name)))
    _logger.info("loyalty_mlm 18.0.1.6.0: log columns of %s dropped", ", ".join(TABLES))
