"""18.0.1.3.0: the lifecycle stage becomes per company (issue #21).

The stage, its date and its lock were plain columns of res_partner; they are
company-dependent (jsonb, {company id: value}) from this version. Odoo cannot
cast an integer, a timestamp or a date column to jsonb: the old columns are
kept aside here under another name, post-migrate moves their values into the
new jsonb columns the update creates, then drops them.
"""

from odoo.tools import SQL, sql

# column: the name it is kept under until post-migrate
KEPT = {
    "mlm_stage_id": "mlm_stage_id_1_2",
    "mlm_stage_date": "mlm_stage_date_1_2",
    "mlm_stage_locked_until": "mlm_stage_locked_until_1_2",
}


def _column_type(cr, column):
    cr.execute(
        SQL(
            "SELECT udt_name FROM information_schema.columns"
            " WHERE table_name = 'res_partner' AND column_name = %s",
            column,
        )
    )
    row = cr.fetchone()
    return row and row[0]


def migrate(cr, version):
    if not version:
        return
    for column, kept in KEPT.items():
        if sql.column_exists(cr, "res_partner", kept):
            continue
        if _column_type(cr, column) in (None, "jsonb"):
            continue
        sql.rename_column(cr, "res_partner", column, kept)
        # The index keeps its name: the new column's index would not be made.
        cr.execute(
            SQL(
                "DROP INDEX IF EXISTS %s",
                SQL.identifier(f"res_partner__{column}_index"),
            )
        )
