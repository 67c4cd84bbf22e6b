"""18.0.1.3.0 (issue #17): treatment logs say what was done in the reader's
language.

Logs written before stored that as text in the language of whoever triggered
the treatment; they get their lines back as codes and values, matched in
every installed language. A log with a line that matches nothing keeps its
text (shown as it is).
"""

import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    changed = env["loyalty.mlm.treatment.log"]._mlm_backfill_summary_lines()
    _logger.info("loyalty_mlm: %s treatment logs given their outcome codes", changed)
