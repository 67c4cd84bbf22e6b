from odoo import fields, models
from odoo.tools import SQL, create_index

from .res_partner import QUADRANT_SELECTION, USAGE_SEGMENT_SELECTION


class LoyaltyMlmPartnerScore(models.Model):
    """The segment scores of one customer in one company.

    One narrow row per (commercial partner, company), written in bulk by the
    score refresh with set-based SQL (res_partner.py) and shown on the contact
    through the mlm_* fields of res.partner, which search, group and sort on
    this table. Kept out of res_partner on purpose: a contact row carries some
    thirty indexes (names, phone trigrams, ...), so rewriting 100,000 contacts
    every night costs seconds, while these rows update in place (HOT, see
    init) in a fraction of that. No row: no order, no scores.

    Plain integer keys, no foreign keys and no create/write log: each foreign
    key costs a key-share lock on the referenced row per written row (about
    10 microseconds: a second per 100,000 customers). The refresh removes the
    rows of contacts that are gone (deleted, merged away, archived) since they
    are no customers any more.
    """

    _name = "loyalty.mlm.partner.score"
    _description = "Customer Segment Scores"
    _log_access = False

    partner_id = fields.Integer(string="Customer", required=True)
    company_id = fields.Integer(string="Company", required=True)
    score_date = fields.Date(string="Scored On", required=True)
    recency_score = fields.Integer()
    frequency_score = fields.Integer()
    monetary_score = fields.Integer()
    rfm_code = fields.Char(string="RFM")
    usage_segment = fields.Selection(USAGE_SEGMENT_SELECTION)
    quadrant = fields.Selection(QUADRANT_SELECTION, string="Loyalty x Profit")
    churn_risk = fields.Integer(string="Churn Risk (%)")
    clv = fields.Float(string="Lifetime Value", digits=(16, 2))

    _sql_constraints = [
        (
            "partner_company_uniq",
            "unique(partner_id, company_id)",
            "A customer has one set of scores per company.",
        )
    ]

    def init(self):
        cr = self.env.cr
        # Room on each page for the nightly new versions of its rows: updates
        # that leave the indexed columns alone stay on the page (HOT), with no
        # index to touch.
        cr.execute(
            SQL("ALTER TABLE %s SET (fillfactor = 80)", SQL.identifier(self._table))
        )
        # Churn risk filters by range ("at risk": 75 and more), often a small
        # share of the customers: indexed. Segments and quadrants have three
        # and four values, each a large share of a company's customers, which
        # PostgreSQL reads faster from this narrow table than through an
        # index; their indexes cost more (a fifth of the nightly write) than
        # they saved, and are gone.
        create_index(
            cr,
            f"{self._table}_company_churn_risk_index",
            self._table,
            ["company_id", "churn_risk"],
        )
        for column in ("usage_segment", "quadrant"):
            cr.execute(
                SQL(
                    "DROP INDEX IF EXISTS %s",
                    SQL.identifier(f"{self._table}_company_{column}_index"),
                )
            )
