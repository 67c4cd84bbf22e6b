from datetime import timedelta

from odoo import fields
from odoo.tests import tagged
from odoo.tools import format_date

from .common import LoyaltyMlmCommon


@tagged("post_install", "-at_install")
class TestExpiryReminder(LoyaltyMlmCommon):
    """Points are valid 1 month; the reminder goes out 14 days ahead (the
    default), once per lot."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.mlm_points_validity_months = 1
        cls.partner.email = "anna@example.com"
        cls.partner._mlm_enroll(cls.company)
        cls.card = cls.card_of(cls, cls.partner)
        cls.Reminder = cls.env["loyalty.mlm.expiry.reminder"]
        # Only this test's lots are due.
        cls.env.flush_all()
        cls.env.cr.execute(
            "INSERT INTO loyalty_mlm_expiry_reminder"
            " (lot_id, date, company_id)"
            " SELECT id, now(), company_id FROM loyalty_mlm_ledger"
            " WHERE points > 0 ON CONFLICT DO NOTHING"
        )

    def earn(self, points, days_ago):
        when = fields.Datetime.now() - timedelta(days=days_ago)
        self.card.with_context(mlm_ledger_date=when)._mlm_post_points(
            points, "adjustment", reason="Earned"
        )
        return self.ledger(card_id=self.card.id)[-1]

    def mails(self):
        return self.env["mail.mail"].search(
            [
                ("model", "=", "res.partner"),
                ("res_id", "=", self.partner.id),
                ("subject", "=", "Your points expire soon"),
            ],
            order="id",
        )

    def test_once_per_lot(self):
        old = self.earn(100, days_ago=20)  # expires in about 10 days
        self.earn(40, days_ago=0)  # expires in a month: not yet
        self.card._mlm_post_points(-30, "adjustment", reason="Spent")  # FIFO: old
        run = self.Reminder._cron_mlm_expiry_reminders
        self.assertEqual(run(), 1)
        reminder = self.Reminder.search([("lot_id.card_id", "=", self.card.id)])
        self.assertEqual(
            (reminder.lot_id, reminder.points, reminder.expiry_date),
            (old, 70.0, old.expiry_date),
        )
        mail = self.mails()
        self.assertEqual(len(mail), 1)
        self.assertIn(
            "70 points on your member card expire on "
            f"{format_date(self.env, old.expiry_date)}.",
            mail.body_html,
        )
        self.assertEqual(run(), 0)  # rerun: nothing new
        self.assertEqual(len(self.mails()), 1)
        # A second lot entering the window: one more mail, for it alone.
        newer = self.earn(15, days_ago=25)
        self.assertEqual(run(), 1)
        self.assertEqual(len(self.mails()), 2)
        self.assertEqual(self.Reminder.search([("lot_id", "=", newer.id)]).points, 15.0)
        # The ledger itself is untouched.
        self.assertEqual(old.remaining, 70.0)
        self.assertLedgerInvariant()

    def test_setting_and_no_email(self):
        self.earn(100, days_ago=20)
        self.env["ir.config_parameter"].set_param(
            "loyalty_mlm.expiry_reminder_days", "0"
        )
        self.assertEqual(self.Reminder._cron_mlm_expiry_reminders(), 0)
        self.env["ir.config_parameter"].set_param(
            "loyalty_mlm.expiry_reminder_days", "5"
        )
        self.assertEqual(self.Reminder._cron_mlm_expiry_reminders(), 0)  # 10 days
        self.env["ir.config_parameter"].set_param(
            "loyalty_mlm.expiry_reminder_days", "14"
        )
        self.partner.email = False
        self.assertEqual(self.Reminder._cron_mlm_expiry_reminders(), 0)
        self.partner.email = "anna@example.com"
        self.assertEqual(self.Reminder._cron_mlm_expiry_reminders(), 1)
