from odoo import api, fields, models


class LoyaltyMlmTreatmentLog(models.Model):
    """One row per treatment executed for a customer: what was done, when.

    The row is also the claim of its occasion: UNIQUE (treatment, customer,
    occasion) means a rerun, a resumed job or a concurrent run can never
    treat a customer twice for the same stage entry or day. Written by the
    system only (see LoyaltyMlmTreatment._mlm_claim).
    """

    _name = "loyalty.mlm.treatment.log"
    _description = "Member Treatment Log"
    _order = "date desc, id desc"
    _rec_name = "treatment_id"

    treatment_id = fields.Many2one(
        "loyalty.mlm.treatment",
        string="Treatment",
        required=True,
        index=True,
        ondelete="restrict",
    )
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, index=True, ondelete="cascade"
    )
    date = fields.Datetime(required=True, default=fields.Datetime.now, index=True)
    occasion = fields.Char(
        required=True,
        help="What the execution answered: the stage entry (its history row) "
        "or the day of a periodic run.",
    )
    trigger = fields.Selection(
        [("stage_entry", "On stage entry"), ("periodic", "Periodic")]
    )
    stage_id = fields.Many2one("loyalty.mlm.stage", string="Stage")
    company_id = fields.Many2one("res.company", required=True, index=True)
    outcome = fields.Selection(
        [("done", "Treated"), ("control", "Control group")],
        required=True,
        default="done",
        index=True,
        help="Control group: held out by the rule's control share, nothing was "
        "done; compared with the treated customers in the results.",
    )
    summary = fields.Text(string="Done")
    activity_id = fields.Many2one("mail.activity", ondelete="set null")
    coupon_id = fields.Many2one("loyalty.card", string="Coupon", ondelete="set null")
    mail_id = fields.Many2one("mail.mail", string="Mail", ondelete="set null")
    ledger_ids = fields.One2many(
        "loyalty.mlm.ledger",
        "res_id",
        string="Points",
        domain=[("res_model", "=", "loyalty.mlm.treatment.log")],
    )
    rationale = fields.Char(related="treatment_id.rationale")

    _sql_constraints = [
        (
            "occasion_unique",
            "UNIQUE(treatment_id, partner_id, occasion)",
            "A treatment runs once per customer and occasion.",
        ),
    ]

    @api.depends("treatment_id", "partner_id")
    def _compute_display_name(self):
        for log in self:
            log.display_name = (
                f"{log.treatment_id.name or ''} ({log.partner_id.display_name or ''})"
            )
