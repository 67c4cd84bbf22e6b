from datetime import datetime, timedelta

from odoo import _, fields, models
from odoo.exceptions import AccessError

# Digest KPI (the Boolean's name) -> (snapshot KPI code, factor). Rates are
# fractions in the snapshots and shown in percent here ("Retention (%)").
DIGEST_KPIS = {
    "kpi_loyalty_mlm_active_members": ("members_active", 1),
    "kpi_loyalty_mlm_retention": ("retention_rate", 100),
    "kpi_loyalty_mlm_redemption": ("redemption_rate", 100),
    "kpi_loyalty_mlm_liability": ("points_liability", 1),
}


class DigestDigest(models.Model):
    """The member programme's KPIs in Odoo's periodic digest mail.

    The digest counts events in three moving windows (last 24 hours, 7 days,
    30 days), each against the window before it. Our KPIs are not events but
    period figures kept in the KPI snapshots (active members and liability
    are levels, retention and redemption rates of a period or of the 12
    months ending with it), so they are not summed over the window: each
    column shows the snapshot of the calendar period that contains the
    window's last day, a week for the 24-hour and 7-day columns and a month
    for the 30-day one (the running period shows its figures to the last
    night's run). The digest's margin compares it with the snapshot of the
    period containing the previous window's last day: the previous week or
    month; for the 24-hour column that is usually the same week, so no
    change shows (no daily history is kept). A KPI without a value (no
    snapshot yet, or nothing to divide by) reads 0.
    """

    _inherit = "digest.digest"

    kpi_loyalty_mlm_active_members = fields.Boolean("Active Members")
    kpi_loyalty_mlm_active_members_value = fields.Integer(
        string="Active Members Value",
        compute="_compute_kpi_loyalty_mlm_active_members_value",
    )
    kpi_loyalty_mlm_retention = fields.Boolean("Member Retention (%)")
    kpi_loyalty_mlm_retention_value = fields.Float(
        string="Member Retention (%) Value",
        compute="_compute_kpi_loyalty_mlm_retention_value",
    )
    kpi_loyalty_mlm_redemption = fields.Boolean("Points Redemption (%)")
    kpi_loyalty_mlm_redemption_value = fields.Float(
        string="Points Redemption (%) Value",
        compute="_compute_kpi_loyalty_mlm_redemption_value",
    )
    kpi_loyalty_mlm_liability = fields.Boolean("Points Liability")
    kpi_loyalty_mlm_liability_value = fields.Monetary(
        string="Points Liability Value",
        compute="_compute_kpi_loyalty_mlm_liability_value",
    )

    def _compute_kpi_loyalty_mlm_active_members_value(self):
        self._mlm_compute_digest_kpi("kpi_loyalty_mlm_active_members")

    def _compute_kpi_loyalty_mlm_retention_value(self):
        self._mlm_compute_digest_kpi("kpi_loyalty_mlm_retention")

    def _compute_kpi_loyalty_mlm_redemption_value(self):
        self._mlm_compute_digest_kpi("kpi_loyalty_mlm_redemption")

    def _compute_kpi_loyalty_mlm_liability_value(self):
        self._mlm_compute_digest_kpi("kpi_loyalty_mlm_liability")

    def _mlm_compute_digest_kpi(self, kpi_field):
        """Set `<kpi_field>_value` from the snapshot of the period (week or
        month, by the window's length) that contains the window's last day
        (the context's end_datetime, as digest._compute_kpis sets it)."""
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_user"):
            # digest._compute_kpis leaves the KPI out of this user's mail.
            raise AccessError(_("Only Loyalty Users see the member programme KPIs."))
        code, factor = DIGEST_KPIS[kpi_field]
        end = self.env.context.get("end_datetime") or datetime.now()
        start = self.env.context.get("start_datetime") or end - timedelta(days=1)
        kind = "week" if end - start <= timedelta(days=7) else "month"
        Snapshot = self.env["loyalty.mlm.kpi.snapshot"]
        for digest in self:
            company = digest.company_id or self.env.company
            series = Snapshot._mlm_series(
                company, kind, code, limit=1, until=end.date()
            )
            value = series[-1][2] if series else None
            digest[kpi_field + "_value"] = round((value or 0.0) * factor, 2)

    def _compute_kpis_actions(self, company, user):
        res = super()._compute_kpis_actions(company, user)
        menu = self.env.ref("loyalty_mlm.menu_root", raise_if_not_found=False)
        action = "loyalty_mlm.loyalty_mlm_dashboard_action"
        if menu:
            action = f"{action}&menu_id={menu.id}"
        for kpi_field in DIGEST_KPIS:
            res[kpi_field] = action
        return res
