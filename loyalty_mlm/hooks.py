import logging
from datetime import timedelta

from odoo import fields

_logger = logging.getLogger(__name__)


def post_init_hook(env):
    """Start on an existing database as if the add-on had always been there.

    Member cards that existed before get an opening ledger entry; every
    customer gets the lifecycle stage its order history gives (set-based),
    instead of everyone starting in Acquisition.
    """
    programs = (
        env["res.company"].search([("mlm_program_id", "!=", False)]).mlm_program_id
    )
    programs.coupon_ids._mlm_post_opening_balance()
    partners = env["res.partner"]
    # The stages computed here describe the past: moves dated by the order
    # history they stand for (see loyalty.mlm.stage._mlm_apply_stages).
    scores = env["loyalty.mlm.partner.score"].with_context(mlm_stage_backfill=True)
    # Scores, then stages (the same chain as the nightly job), to the end.
    while scores._cron_refresh_scores(time_budget=3600):
        pass
    _logger.info(
        "loyalty_mlm: scores and lifecycle stages computed for %s customers",
        partners.search_count([("mlm_stage_id", "!=", False)]),
    )
    # The KPIs of the last 24 months, so that the cockpit shows trends on
    # day one.
    env["loyalty.mlm.kpi.snapshot"]._mlm_backfill(env["res.company"].search([]))
    # The stages just computed describe the past: no welcome mail or winback
    # coupon for them. Stage-entry treatments fire for the moves from now on.
    # (Datetimes are stored to the second: start after the second of the moves.)
    env["loyalty.mlm.treatment"].with_context(active_test=False).search([]).write(
        {"date_start": fields.Datetime.now() + timedelta(seconds=1)}
    )
