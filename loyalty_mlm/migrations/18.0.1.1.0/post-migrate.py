"""18.0.1.1.0: the scheduled actions call the model that owns their job.

The crons are `noupdate` records (an administrator may retime them), so
updating the module does not rewrite them: point the ones that still call
res.partner at their new model and method, keeping their XML ids, timing
and activity as they are.
"""

import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)

# XML id: (old code, new model, new code)
CRONS = {
    "loyalty_mlm.ir_cron_scores_full": (
        "model._cron_mlm_refresh_scores()",
        "loyalty.mlm.partner.score",
        "model._cron_refresh_scores()",
    ),
    "loyalty_mlm.ir_cron_scores_incremental": (
        "model._cron_mlm_refresh_scores_incremental()",
        "loyalty.mlm.partner.score",
        "model._cron_refresh_scores_incremental()",
    ),
    "loyalty_mlm.ir_cron_review_tiers": (
        "model._cron_review_tiers()",
        "loyalty.mlm.tier",
        "model._cron_review()",
    ),
    "loyalty_mlm.ir_cron_birthday_bonus": (
        "model._cron_birthday_bonus()",
        "loyalty.mlm.bonus",
        "model._cron_birthday_bonus()",
    ),
}


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    for xmlid, (old_code, model, code) in CRONS.items():
        cron = env.ref(xmlid, raise_if_not_found=False)
        if not cron or cron.model_id.model != "res.partner":
            continue
        if (cron.code or "").strip() != old_code:
            # Edited by hand: leave it, but say so (it would fail on res.partner).
            _logger.warning(
                "loyalty_mlm: scheduled action %s has custom code; its job is "
                "now %s on %s.",
                xmlid,
                code,
                model,
            )
            continue
        cron.write({"model_id": env["ir.model"]._get_id(model), "code": code})
        _logger.info("loyalty_mlm: scheduled action %s now calls %s", xmlid, model)
