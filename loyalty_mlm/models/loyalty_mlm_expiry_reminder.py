import logging
from collections import defaultdict
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL, float_round

from .loyalty_mlm_ledger import PRECISION

_logger = logging.getLogger(__name__)

DEFAULT_REMINDER_DAYS = 14


class LoyaltyMlmExpiryReminder(models.Model):
    """One row per ledger lot whose coming expiry was announced to the member.

    Append-only, like the ledger it points at (which stays untouched): the
    UNIQUE lot makes the reminder go out once per lot, whatever reruns.
    """

    _name = "loyalty.mlm.expiry.reminder"
    _description = "Points Expiry Reminder"
    _order = "date desc, id desc"
    _rec_name = "lot_id"

    lot_id = fields.Many2one(
        "loyalty.mlm.ledger", string="Lot", required=True, ondelete="cascade"
    )
    partner_id = fields.Many2one("res.partner", string="Member", index=True)
    date = fields.Datetime(required=True, default=fields.Datetime.now)
    points = fields.Float(digits=(16, PRECISION), help="Points left at the reminder.")
    expiry_date = fields.Date()
    company_id = fields.Many2one("res.company", required=True, index=True)

    _sql_constraints = [
        ("lot_unique", "UNIQUE(lot_id)", "A lot's expiry is announced once."),
    ]

    @api.model
    def _mlm_reminder_days(self):
        value = (
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("loyalty_mlm.expiry_reminder_days", DEFAULT_REMINDER_DAYS)
        )
        try:
            # The settings refuse other values; a parameter edited by hand
            # is kept in the same range.
            return min(max(int(value), 0), 365)
        except ValueError:
            return DEFAULT_REMINDER_DAYS

    @api.model
    def _mlm_due_lots(self, today, days, limit):
        """[(lot id, partner id, company id, remaining, expiry)] of member lots
        expiring within `days` days with points left and no reminder yet, for
        members with an email address: one query."""
        self.env["loyalty.mlm.ledger"].flush_model()
        self.env["res.partner"].flush_model(["email", "active"])
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT l.id, l.partner_id, l.company_id, l.remaining, l.expiry_date
                  FROM loyalty_mlm_ledger l
                  JOIN res_partner p ON p.id = l.partner_id
                 WHERE l.points > 0 AND l.remaining > 0
                   AND l.expiry_date >= %(today)s AND l.expiry_date <= %(until)s
                   AND l.card_id IS NOT NULL
                   AND p.active AND COALESCE(p.email, '') != ''
                   AND NOT EXISTS (
                        SELECT 1 FROM loyalty_mlm_expiry_reminder r
                         WHERE r.lot_id = l.id)
              ORDER BY l.partner_id, l.expiry_date, l.id
                 LIMIT %(limit)s
                """,
                today=today,
                until=today + timedelta(days=days),
                limit=limit,
            )
        )
        return self.env.cr.fetchall()

    def _mlm_remind(self, partner, company, lots):
        """Claim the lots of one member and queue one mail for them, in a
        savepoint: a failing mail leaves the lots unclaimed for the next run."""
        template = self.env.ref(
            "loyalty_mlm.mail_template_mlm_points_expiry", raise_if_not_found=False
        )
        if not template:
            return 0
        with self.env.cr.savepoint():
            self.env.cr.execute(
                SQL(
                    """
                    INSERT INTO loyalty_mlm_expiry_reminder
                           (lot_id, partner_id, date, points, expiry_date,
                            company_id, create_uid, create_date, write_uid,
                            write_date)
                    SELECT lot, %(partner)s, %(now)s, points, expiry,
                           %(company)s, %(uid)s, %(now)s, %(uid)s, %(now)s
                      FROM unnest(%(lots)s::int[], %(points)s::float8[],
                                  %(expiries)s::date[]) AS t(lot, points, expiry)
                ON CONFLICT (lot_id) DO NOTHING
                 RETURNING points, expiry_date
                    """,
                    partner=partner.id,
                    company=company.id,
                    now=fields.Datetime.now(),
                    uid=self.env.uid,
                    lots=[lot[0] for lot in lots],
                    points=[lot[3] for lot in lots],
                    expiries=[lot[4] for lot in lots],
                )
            )
            claimed = self.env.cr.fetchall()
            if claimed:
                points = float_round(sum(row[0] for row in claimed), PRECISION)
                first = min(row[1] for row in claimed)
                template.with_company(company).with_context(
                    mlm_expiring_points=f"{points:g}",
                    mlm_expiry_date=first,
                ).send_mail(partner.id)
        return len(claimed)

    @api.model
    def _cron_mlm_expiry_reminders(self, batch_size=1000):
        """Daily: tell members which points expire within the reminder period
        (Settings), once per lot, one mail per member and run.

        At most `batch_size` lots per call; ir.cron calls again while some
        remain. A member whose mail fails is logged and left for the next day.
        """
        days = self._mlm_reminder_days()
        if not days:
            self.env["ir.cron"]._notify_progress(done=0, remaining=0)
            return 0
        today = fields.Date.context_today(self)
        rows = self._mlm_due_lots(today, days, batch_size + 1)
        more = len(rows) > batch_size
        rows = rows[:batch_size]
        per_member = defaultdict(list)
        for row in rows:
            per_member[row[1], row[2]].append(row)
        partners = self.env["res.partner"].browse({pid for pid, _c in per_member})
        partners.fetch(["email", "lang", "name"])
        done = 0
        for (partner_id, company_id), lots in per_member.items():
            try:
                done += self._mlm_remind(
                    self.env["res.partner"].browse(partner_id),
                    self.env["res.company"].browse(company_id),
                    lots,
                )
            except Exception:
                _logger.exception(
                    "Expiry reminder for contact %s failed: retried tomorrow.",
                    partner_id,
                )
        remaining = 1 if more and done else 0
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done
