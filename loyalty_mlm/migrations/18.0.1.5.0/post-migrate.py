"""18.0.1.5.0.

- Issue #22: the expiry job writes fewer index entries and checks fewer
  foreign keys. The ledger's single-column indexes on company_id, kind,
  res_model and expiry_date served no query alone (see
  LoyaltyMlmLedger.init for the partial indexes that replace them); Odoo
  keeps an index a field no longer asks for, so they are dropped here.
  Lot allocations lose their log columns (who and when are the entry's).
"""

import logging

from odoo.tools import SQL, sql

_logger = logging.getLogger(__name__)

DROPPED_INDEXES = (
    "loyalty_mlm_ledger__company_id_index",
    "loyalty_mlm_ledger__kind_index",
    "loyalty_mlm_ledger__res_model_index",
    "loyalty_mlm_ledger__expiry_date_index",
)
ALLOCATION_LOG_COLUMNS = ("create_uid", "create_date", "write_uid", "write_date")


def migrate(cr, version):
    if not version:
        return
    for name in DROPPED_INDEXES:
        cr.execute(SQL("DROP INDEX IF EXISTS %s", SQL.identifier(name)))
    table = "loyalty_mlm_ledger_allocation"
    for column in ALLOCATION_LOG_COLUMNS:
        if sql.column_exists(cr, table, column):
            cr.execute(
                SQL(
                    "ALTER TABLE %s DROP COLUMN %s",
                    SQL.identifier(table),
                    SQL.identifier(column),
                )
            )
    _logger.info(
        "loyalty_mlm 18.0.1.5.0: ledger indexes %s and allocation log columns dropped",
        ", ".join(DROPPED_INDEXES),
    )
