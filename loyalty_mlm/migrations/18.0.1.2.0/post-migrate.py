"""18.0.1.2.0: the programme cockpit starts with its history.

A new install backfills 24 months of KPI snapshots in its post-init hook and
switches the member KPIs on in Odoo's default digest; an upgraded database
gets the same here (the hook does not run on an update, and the digest's
record is another module's noupdate record).

Issue #16 (control groups, NPS survey): the shipped winback and growth
recognition treatments send the member NPS survey; their records are
noupdate, so an upgraded database gets the survey here (only where nobody
chose another one). Treatment logs get outcome "done" and treatments their
10% control share from the new columns' defaults.
"""

import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)

# Shipped treatments that send the member NPS survey (issue #16).
SURVEY_TREATMENTS = ("treatment_winback", "treatment_growth_heavy")

DIGEST_KPIS = (
    "kpi_loyalty_mlm_active_members",
    "kpi_loyalty_mlm_retention",
    "kpi_loyalty_mlm_redemption",
    "kpi_loyalty_mlm_liability",
)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    companies = env["res.company"].search([])
    rows = env["loyalty.mlm.kpi.snapshot"]._mlm_backfill(companies)
    _logger.info("loyalty_mlm: %s KPI snapshots backfilled", len(rows))
    digest = env.ref("digest.digest_digest_default", raise_if_not_found=False)
    if digest:
        digest.write(dict.fromkeys(DIGEST_KPIS, True))
    survey = env.ref("loyalty_mlm.survey_member_nps", raise_if_not_found=False)
    for xmlid in SURVEY_TREATMENTS:
        rule = env.ref(f"loyalty_mlm.{xmlid}", raise_if_not_found=False)
        if survey and rule and not rule.survey_id:
            rule.survey_id = survey
    # Issue 17: the ledger's own reasons are stored as codes and values and
    # rendered in the reader's language; older entries get theirs back from
    # their text (English or any installed language). Free texts stay.
    changed = env["loyalty.mlm.ledger"]._mlm_backfill_reason_codes()
    _logger.info("loyalty_mlm: %s ledger reasons given their code", changed)
