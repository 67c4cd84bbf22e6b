"""18.0.1.7.0.

- Issue #22: res.partner's stage, stage date, stage lock, tier and
  below-tier date no longer have an index of their own, nor the referral
  code a second one beside its UNIQUE constraint's (see the fields). Odoo
  keeps an index a field no longer asks for, so they are dropped here:
  each cost a new entry in every contact row the nightly stage and tier
  jobs rewrite, and kept the tier moves from being heap-only updates.
"""

import logging

from odoo.tools import SQL

_logger = logging.getLogger(__name__)

INDEXES = (
    "res_partner__mlm_stage_id_index",
    "res_partner__mlm_stage_date_index",
    "res_partner__mlm_stage_locked_until_index",
    "res_partner__mlm_tier_id_index",
    "res_partner__mlm_tier_below_since_index",
    "res_partner__mlm_referral_code_index",
)


def migrate(cr, version):
    if not version:
        return
    for name in INDEXES:
        cr.execute(SQL("DROP INDEX IF EXISTS %s", SQL.identifier(name)))
    _logger.info(
        "loyalty_mlm 18.0.1.7.0: %s unused contact indexes dropped", len(INDEXES)
    )
