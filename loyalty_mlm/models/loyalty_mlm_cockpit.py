from datetime import date

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools.misc import format_date

from ..tools import kpi as kpi_tools
from .loyalty_mlm_kpi_snapshot import KPI_FORMAT, KPI_SELECTION, SNAPSHOT_KINDS

# What the cockpit draws in its grid, in this order.
GRID_SEGMENTS = ("heavy", "medium", "low")
GRID_QUADRANTS = ("true_friend", "butterfly", "barnacle", "stranger")
# How many periods a sparkline shows, and how many months the points chart.
SPARK_PERIODS = 12
POINTS_MONTHS = 12
# Qualifying orders (tools/kpi.py): confirmed sale orders, paid POS orders.
POS_DONE_STATES = ("paid", "done", "invoiced")


class LoyaltyMlmCockpit(models.AbstractModel):
    """The programme cockpit: the Members app's first screen.

    Reads the KPI snapshots only (loyalty.mlm.kpi.snapshot writes them), so
    its cost does not depend on the number of customers, and says which
    records stand behind each figure (action_open_kpi). Its own model: the
    snapshot model owns computing and storing the KPIs, this one showing
    them.
    """

    _name = "loyalty.mlm.cockpit"
    _description = "Member Programme Cockpit"

    @api.model
    def _mlm_kpi_labels(self):
        """{code: translated label} of KPI_SELECTION.

        Spelled out with `_()` so that the template carries them (the
        selection list is plain data shared with the goals); test_cockpit
        checks that they stay the labels of KPI_SELECTION."""
        return {
            "members_total": _("Members"),
            "members_new": _("New members"),
            "members_active": _("Active members"),
            "active_customers": _("Active customers"),
            "participation_rate": _("Participation"),
            "member_revenue_share": _("Members' share of revenue"),
            "retention_rate": _("Retention rate"),
            "repeat_purchase_rate": _("Repeat purchase rate"),
            "aov_members": _("Average order value (members)"),
            "aov_non_members": _("Average order value (non-members)"),
            "average_clv": _("Average CLV"),
            "redemption_rate": _("Redemption rate"),
            "breakage_rate": _("Breakage"),
            "points_liability": _("Points liability"),
            "churned": _("Churned"),
            "won_back": _("Won back"),
        }

    @api.model
    def _mlm_check_cockpit_access(self):
        # Public RPC entry points: the menu hides the app, this closes the door.
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_user"):
            raise AccessError(_("Only loyalty staff can read the programme cockpit."))

    @api.model
    def _mlm_tz(self):
        """The time zone of the days the cockpit shows: the snapshots' (the
        company's, else the user's)."""
        return self.env["loyalty.mlm.kpi.snapshot"]._mlm_tz(self.env.company)

    @api.model
    def _mlm_cockpit_period(self, period_kind, date_start):
        """The calendar Period of `period_kind` containing `date_start` (any
        day of it; today when empty). UserError on a bad kind or date."""
        if not isinstance(period_kind, str) or period_kind not in SNAPSHOT_KINDS:
            raise UserError(
                _(
                    "Unknown period %(kind)s: choose a week, a month, a quarter "
                    "or a year.",
                    kind=period_kind,
                )
            )
        if not date_start:
            return kpi_tools.Period.containing(
                fields.Date.context_today(self), period_kind
            )
        day = None
        if isinstance(date_start, str | date):
            try:
                day = fields.Date.to_date(date_start)
            except (TypeError, ValueError):
                day = None
        # Far-off years would overflow the previous / last-year periods.
        if not day or not date(1900, 1, 1) <= day <= date(9998, 12, 31):
            raise UserError(
                _("%(value)s is not a valid date (YYYY-MM-DD).", value=date_start)
            )
        return kpi_tools.Period.containing(day, period_kind)

    @api.model
    def _mlm_period_label(self, period):
        if period.kind == "week":
            year, week, _weekday = period.start.isocalendar()
            return _("Week %(week)s, %(year)s", week=week, year=year)
        if period.kind == "month":
            return format_date(self.env, period.start, date_format="MMMM y")
        if period.kind == "quarter":
            return _(
                "Q%(quarter)s %(year)s",
                quarter=(period.start.month - 1) // 3 + 1,
                year=period.start.year,
            )
        return str(period.start.year)

    @api.model
    def _mlm_row_values(self, row):
        """{code: value or None} of every KPI of snapshot `row` (may be empty)."""
        if not row:
            return dict.fromkeys(kpi_tools.KPIS)
        return {code: row._mlm_kpi_value(code) for code in kpi_tools.KPIS}

    @api.model
    def get_cockpit_data(self, period_kind="month", date_start=False):
        """Everything the cockpit draws for one period of the current company.

        Reads snapshots only, in one search (the "all" rows of the period,
        the 11 before it, the same period last year and the 12 months the
        points chart shows), plus the stages and the goals: the number of
        queries does not depend on the number of customers or orders.
        `date_start`: any day of the period (ISO string); today when empty.
        """
        self._mlm_check_cockpit_access()
        period = self._mlm_cockpit_period(period_kind, date_start)
        company = self.env.company
        today = fields.Date.context_today(self)

        spark = [period]
        while len(spark) < SPARK_PERIODS:
            spark.insert(0, spark[0].previous())
        previous = period.previous()
        last_year = period.same_period_last_year()
        months = [kpi_tools.Period.containing(period.last_day, "month")]
        while len(months) < POINTS_MONTHS:
            months.insert(0, months[0].previous())
        starts = sorted({p.start for p in spark} | {last_year.start})
        rows = self.env["loyalty.mlm.kpi.snapshot"].search(
            [
                ("company_id", "=", company.id),
                ("dimension", "=", "all"),
                "|",
                "&",
                ("period_kind", "=", period_kind),
                ("date_start", "in", starts),
                "&",
                ("period_kind", "=", "month"),
                ("date_start", "in", [month.start for month in months]),
            ]
        )
        by_key = {(row.period_kind, row.date_start): row for row in rows}
        empty = self.env["loyalty.mlm.kpi.snapshot"]

        def row_of(kind, some_period):
            return by_key.get((kind, some_period.start), empty)

        current = row_of(period_kind, period)
        values = {p.start: self._mlm_row_values(row_of(period_kind, p)) for p in spark}
        compared = kpi_tools.compare(
            values[period.start],
            values[previous.start],
            self._mlm_row_values(row_of(period_kind, last_year)),
        )
        labels = self._mlm_kpi_labels()
        kpis = [
            {
                "code": code,
                "label": labels[code],
                "format": KPI_FORMAT[code],
                "direction": kpi_tools.KPI_DIRECTION[code],
                **compared[code],
                "spark": [values[p.start][code] for p in spark],
            }
            for code, _label in KPI_SELECTION
        ]
        stages = self.env["loyalty.mlm.stage"].search([])
        currency = company.currency_id
        return {
            "company": {
                "id": company.id,
                "name": company.name,
                "currency": {
                    "id": currency.id,
                    "symbol": currency.symbol,
                    "position": currency.position,
                    "decimal_places": currency.decimal_places,
                },
            },
            "period": {
                "kind": period_kind,
                "date_start": fields.Date.to_string(period.start),
                "date_end": fields.Date.to_string(period.last_day),
                "label": self._mlm_period_label(period),
                "previous_start": fields.Date.to_string(previous.start),
                # No browsing into periods that have not started yet.
                "next_start": period.stop <= today
                and fields.Date.to_string(period.stop),
                "date_computed": current.date_computed
                and fields.Date.to_string(current.date_computed),
                "is_closed": current.is_closed,
            },
            "has_data": bool(current),
            "can_compute": self.env.user.has_group(
                "loyalty_mlm.group_loyalty_mlm_manager"
            ),
            "kpis": kpis,
            "goals": self._mlm_cockpit_goals(company),
            "results": self._mlm_cockpit_results(company),
            "funnel": self._mlm_cockpit_funnel(current, stages),
            "flow": self._mlm_cockpit_flow(current, stages),
            "grid": self._mlm_cockpit_grid(current),
            "points": [
                self._mlm_cockpit_points_month(row_of("month", month), month)
                for month in months
            ],
        }

    @api.model
    def _mlm_cockpit_results(self, company):
        """ "Does it work?": the latest verdicts of the measured actions (the
        stored results, issue #16) and the members' NPS over the last 12
        months; two queries, whatever the number of customers."""
        since = fields.Datetime.now() - relativedelta(months=12)
        return {
            "actions": self.env["loyalty.mlm.action.result"]._mlm_verdict_summary(
                company
            ),
            # Survey answers belong to no company: every member's answer.
            "nps": self.env["survey.user_input"]._mlm_nps(
                [("end_datetime", ">=", since)]
            ),
        }

    @api.model
    def _mlm_cockpit_goals(self, company):
        # The goals live in their own model (issue #15); without it, none.
        if "loyalty.mlm.goal" not in self.env:
            return []
        Goal = self.env["loyalty.mlm.goal"]
        statuses = dict(Goal._fields["status"]._description_selection(self.env))
        labels = self._mlm_kpi_labels()
        return [
            {
                "id": goal.id,
                "name": goal.name,
                "kpi": goal.kpi,
                "kpi_label": labels.get(goal.kpi, goal.kpi),
                "format": KPI_FORMAT.get(goal.kpi, "float"),
                "status": goal.status or False,
                "status_label": statuses.get(goal.status, ""),
                # Nothing measured yet (or no baseline for a target in %):
                # no value, not 0; the goal's note says why.
                "progress": goal.progress if goal.status else None,
                "expected": goal.expected if goal.status else None,
                "current_value": goal.current_value if goal.last_measured else None,
                "target_value": goal.target_value if goal.has_target else None,
                "note": False if goal.status else goal.measure_note or False,
                "deadline": goal.deadline and fields.Date.to_string(goal.deadline),
                "user": goal.user_id.name or False,
            }
            for goal in Goal.search([("company_id", "=", company.id)])
        ]

    @api.model
    def _mlm_cockpit_funnel(self, row, stages):
        distribution = (row.stage_distribution if row else None) or {}
        return [
            {
                "stage_id": stage.id,
                "code": stage.code,
                "name": stage.name,
                "count": int(distribution.get(stage.code) or 0),
            }
            for stage in stages
        ]

    @api.model
    def _mlm_cockpit_flow(self, row, stages):
        """Matrix of the stage moves of the period: one row per origin
        ("new" first: a first assignment), one column per stage."""
        moves = {}
        for from_code, to_code, count in (row.stage_flow if row else None) or []:
            key = (from_code or "new", to_code)
            moves[key] = moves.get(key, 0) + int(count)
        origins = [("new", _("New"))] + [(stage.code, stage.name) for stage in stages]
        return {
            "stages": [
                {"id": stage.id, "code": stage.code, "name": stage.name}
                for stage in stages
            ],
            "rows": [
                {
                    "from": code,
                    "name": name,
                    "cells": [
                        {"to": stage.code, "count": moves.get((code, stage.code), 0)}
                        for stage in stages
                    ],
                    "total": sum(moves.get((code, stage.code), 0) for stage in stages),
                }
                for code, name in origins
            ],
            "total": sum(moves.values()),
        }

    @api.model
    def _mlm_grid_labels(self):
        """({segment: label}, {quadrant: label}), translated: the contact's
        fields, whose labels the users already know."""
        fields_ = self.env["res.partner"]._fields
        return (
            dict(fields_["mlm_usage_segment"]._description_selection(self.env)),
            dict(fields_["mlm_quadrant"]._description_selection(self.env)),
        )

    @api.model
    def _mlm_cockpit_grid(self, row):
        cells = {}
        for segment, quadrant, customers, revenue in (
            row.segment_grid if row else None
        ) or []:
            cells[segment, quadrant] = (int(customers), float(revenue))
        segments, quadrants = self._mlm_grid_labels()
        return {
            "quadrants": [
                {"code": quadrant, "name": quadrants[quadrant]}
                for quadrant in GRID_QUADRANTS
            ],
            "rows": [
                {
                    "segment": segment,
                    "name": segments[segment],
                    "cells": [
                        {
                            "quadrant": quadrant,
                            "customers": cells.get((segment, quadrant), (0, 0.0))[0],
                            "revenue": cells.get((segment, quadrant), (0, 0.0))[1],
                        }
                        for quadrant in GRID_QUADRANTS
                    ],
                }
                for segment in GRID_SEGMENTS
            ],
        }

    @api.model
    def _mlm_cockpit_points_month(self, row, month):
        return {
            "date_start": fields.Date.to_string(month.start),
            "label": format_date(self.env, month.start, date_format="MMM y"),
            "has_data": bool(row),
            "earned": row.points_earned if row else None,
            "spent": row.points_spent if row else None,
            "expired": row.points_expired if row else None,
            "liability": row.points_liability if row else None,
            "outstanding": row.points_outstanding if row else None,
        }

    # -- what is behind a figure ------------------------------------------

    @api.model
    def action_open_kpi(self, code, period_kind, date_start, filters=None):
        """The window action listing the records behind one cockpit figure.

        `code`: a KPI code, or "stage" (filters {"stage_id"}), "flow"
        ({"from": stage code or "new", "to": stage code}), "grid"
        ({"segment", "quadrant"}) or "points_month" ({"month": any day of
        the month, "kind": optional earned / spent / expired}).

        What opens, per figure (the period's local days, user's time zone):
        members: the members at the period's end; new members: joined in the
        period; active members / customers: those with a qualifying order in
        the 90 days ending with the period; participation: the members;
        retention, AOV, members' share: the confirmed sale orders of the
        period (members' / non-members' for the AOVs; POS orders have their
        own menu), or, for a user without sales rights, the customers who
        placed them; repeat rate: the same over the 12 months ending with the
        period; CLV: customers with a lifetime value;
        redemption / breakage: the spending / expiry ledger entries of those
        12 months; liability: member cards with points; churned / won back:
        the moves into / out of Winback in the period.
        """
        self._mlm_check_cockpit_access()
        period = self._mlm_cockpit_period(period_kind, date_start)
        if filters is None:
            filters = {}
        if not isinstance(filters, dict):
            raise UserError(_("The filters of a figure must be a dictionary."))
        openers = {
            "stage": self._mlm_open_stage,
            "flow": self._mlm_open_flow,
            "grid": self._mlm_open_grid,
            "points_month": self._mlm_open_points_month,
        }
        if code in openers:
            return openers[code](period, filters)
        if not isinstance(code, str) or code not in kpi_tools.KPI_DIRECTION:
            raise UserError(_("Unknown KPI %(code)s.", code=code))
        name = _(
            "%(kpi)s, %(period)s",
            kpi=self._mlm_kpi_labels()[code],
            period=self._mlm_period_label(period),
        )
        company = self.env.company
        first, last = (
            fields.Date.to_string(d) for d in (period.start, period.last_day)
        )
        members = [("mlm_member_since", "!=", False), ("mlm_member_since", "<=", last)]
        if code in ("members_total", "participation_rate"):
            return self._mlm_partner_action(name, members)
        if code == "members_new":
            return self._mlm_partner_action(
                name, [*members, ("mlm_member_since", ">=", first)]
            )
        if code in ("members_active", "active_customers"):
            active_window = period.trailing_days(kpi_tools.ACTIVE_DAYS)
            active = [
                ("id", "in", self._mlm_ordering_partner_ids(company, active_window))
            ]
            if code == "members_active":
                active += members
            return self._mlm_partner_action(name, active)
        if code == "average_clv":
            return self._mlm_partner_action(name, [("mlm_clv", ">", 0)])
        if code in (
            "retention_rate",
            "repeat_purchase_rate",
            "aov_members",
            "aov_non_members",
            "member_revenue_share",
        ):
            window = (
                period.trailing_year() if code == "repeat_purchase_rate" else period
            )
            member = None
            if code in ("aov_members", "member_revenue_share"):
                member = True
            elif code == "aov_non_members":
                member = False
            if not self.env["sale.order"].has_access("read"):
                # Without sales rights: the customers who ordered instead.
                ids = self._mlm_ordering_partner_ids(company, window, sale_only=True)
                domain = [("id", "in", ids)]
                if member is not None:
                    domain.append(("mlm_member_since", "!=" if member else "=", False))
                return self._mlm_partner_action(name, domain)
            start, stop = window.utc_bounds(self._mlm_tz())
            domain = [
                ("company_id", "=", company.id),
                ("state", "=", "sale"),
                ("date_order", ">=", fields.Datetime.to_string(start)),
                ("date_order", "<", fields.Datetime.to_string(stop)),
            ]
            if member is not None:
                domain.append(
                    (
                        "partner_id.commercial_partner_id.mlm_member_since",
                        "!=" if member else "=",
                        False,
                    )
                )
            return self._mlm_window_action(
                name, "sale.order", domain, "sale.view_order_tree"
            )
        if code in ("redemption_rate", "breakage_rate"):
            kinds = kpi_tools.SPEND_KINDS if code == "redemption_rate" else ("expire",)
            return self._mlm_ledger_action(
                name, period.trailing_year(), [("kind", "in", list(kinds))]
            )
        if code == "points_liability":
            return self._mlm_window_action(
                name,
                "loyalty.card",
                [
                    ("program_id", "=", company.mlm_program_id.id),
                    ("points", ">", 0),
                ],
                "loyalty.loyalty_card_view_tree",
            )
        winback = self.env.ref("loyalty_mlm.stage_winback").id
        if code == "churned":
            moves = [
                ("to_stage_id", "=", winback),
                ("from_stage_id", "!=", False),
                ("from_stage_id", "!=", winback),
            ]
        else:  # won_back
            moves = [("from_stage_id", "=", winback), ("to_stage_id", "!=", winback)]
        return self._mlm_history_action(name, period, moves)

    @api.model
    def _mlm_ordering_partner_ids(self, company, period, sale_only=False):
        """Customers (commercial partners) with a qualifying order in
        `period`: two grouped reads.

        Loyalty staff read the KPI "active customers" without sales rights:
        they may see who is behind it, not the orders. So the orders are
        grouped as superuser and only customer ids leave this method; the
        list then opens with the user's own rights on contacts."""
        start, stop = period.utc_bounds(self._mlm_tz())
        window = [
            ("company_id", "=", company.id),
            ("date_order", ">=", start),
            ("date_order", "<", stop),
        ]
        groups = (
            self.env["sale.order"]
            .sudo()
            ._read_group([*window, ("state", "=", "sale")], ["partner_id"])
        )
        if not sale_only:
            # A POS refund (negative total) is not an order (tools/kpi.py).
            groups += (
                self.env["pos.order"]
                .sudo()
                ._read_group(
                    [
                        *window,
                        ("state", "in", POS_DONE_STATES),
                        ("amount_total", ">", 0),
                    ],
                    ["partner_id"],
                )
            )
        partners = self.env["res.partner"].union(*(partner for (partner,) in groups))
        return partners.commercial_partner_id.ids

    @api.model
    def _mlm_open_stage(self, period, filters):
        stage = self._mlm_stage_filter(filters.get("stage_id"), by="id")
        name = _("Lifecycle stage %(stage)s", stage=stage.name)
        return self._mlm_partner_action(name, [("mlm_stage_id", "=", stage.id)])

    @api.model
    def _mlm_open_flow(self, period, filters):
        to_stage = self._mlm_stage_filter(filters.get("to"))
        origin = filters.get("from")
        if origin == "new":
            moves, origin_name = [("from_stage_id", "=", False)], _("New")
        else:
            from_stage = self._mlm_stage_filter(origin)
            moves, origin_name = (
                [("from_stage_id", "=", from_stage.id)],
                from_stage.name,
            )
        name = _(
            "%(origin)s to %(stage)s, %(period)s",
            origin=origin_name,
            stage=to_stage.name,
            period=self._mlm_period_label(period),
        )
        return self._mlm_history_action(
            name, period, [*moves, ("to_stage_id", "=", to_stage.id)]
        )

    @api.model
    def _mlm_stage_filter(self, value, by="code"):
        stages = self.env["loyalty.mlm.stage"].search([])
        stage = stages.filtered(lambda s: (s.id if by == "id" else s.code) == value)
        if not value or len(stage) != 1:
            raise UserError(_("Unknown lifecycle stage %(stage)s.", stage=value))
        return stage

    @api.model
    def _mlm_open_grid(self, period, filters):
        segment, quadrant = filters.get("segment"), filters.get("quadrant")
        if segment not in GRID_SEGMENTS or quadrant not in GRID_QUADRANTS:
            raise UserError(
                _(
                    "Unknown segment %(segment)s or quadrant %(quadrant)s.",
                    segment=segment,
                    quadrant=quadrant,
                )
            )
        segments, quadrants = self._mlm_grid_labels()
        name = _(
            "%(segment)s, %(quadrant)s",
            segment=segments[segment],
            quadrant=quadrants[quadrant],
        )
        return self._mlm_partner_action(
            name,
            [("mlm_usage_segment", "=", segment), ("mlm_quadrant", "=", quadrant)],
        )

    @api.model
    def _mlm_open_points_month(self, period, filters):
        month = self._mlm_cockpit_period("month", filters.get("month"))
        kinds = {
            "earned": kpi_tools.EARN_KINDS,
            "spent": kpi_tools.SPEND_KINDS,
            "expired": ("expire",),
        }
        kind = filters.get("kind")
        if kind and kind not in kinds:
            raise UserError(_("Unknown kind of points %(kind)s.", kind=kind))
        domain = [("kind", "in", list(kinds[kind]))] if kind else []
        name = _("Points, %(month)s", month=self._mlm_period_label(month))
        return self._mlm_ledger_action(name, month, domain)

    @api.model
    def _mlm_partner_action(self, name, domain):
        member_kanban = self.env.ref("loyalty_mlm.res_partner_view_kanban_member").id
        action = self._mlm_window_action(name, "res.partner", domain)
        action["views"] = [(False, "list"), (member_kanban, "kanban"), (False, "form")]
        action["search_view_id"] = [
            self.env.ref("loyalty_mlm.res_partner_view_search").id,
            "search",
        ]
        return action

    @api.model
    def _mlm_ledger_action(self, name, period, domain):
        start, stop = period.utc_bounds(self._mlm_tz())
        domain = [
            ("company_id", "=", self.env.company.id),
            ("date", ">=", fields.Datetime.to_string(start)),
            ("date", "<", fields.Datetime.to_string(stop)),
            *domain,
        ]
        return self._mlm_window_action(
            name,
            "loyalty.mlm.ledger",
            domain,
            "loyalty_mlm.loyalty_mlm_ledger_view_list",
        )

    @api.model
    def _mlm_history_action(self, name, period, domain):
        start, stop = period.utc_bounds(self._mlm_tz())
        domain = [
            ("company_id", "=", self.env.company.id),
            ("date", ">=", fields.Datetime.to_string(start)),
            ("date", "<", fields.Datetime.to_string(stop)),
            *domain,
        ]
        return self._mlm_window_action(
            name,
            "loyalty.mlm.stage.history",
            domain,
            "loyalty_mlm.loyalty_mlm_stage_history_view_list",
        )

    @api.model
    def _mlm_window_action(self, name, model, domain, list_view=None):
        list_id = self.env.ref(list_view).id if list_view else False
        return {
            "type": "ir.actions.act_window",
            "name": name,
            "res_model": model,
            "views": [(list_id, "list"), (False, "form")],
            "domain": domain,
            "context": {"create": False},
            "target": "current",
        }
