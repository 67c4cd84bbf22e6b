import math
from collections import defaultdict

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, ValidationError
from odoo.tools import format_amount, format_date, formatLang

from ..tools import kpi as kpi_tools
from .loyalty_mlm_kpi_snapshot import (
    KPI_FORMAT,
    KPI_SELECTION,
    PERIOD_KIND_SELECTION,
    PROGRAMME_KPIS,
)

SCOPE_SELECTION = [
    ("all", "All customers"),
    ("stage", "Stage"),
    ("segment", "Segment"),
    ("tier", "Tier"),
]
# The goal's scope is the snapshot's dimension of the same name; the field
# that holds the part (stage, segment or tier) is the same on both models.
SCOPE_FIELD = {"stage": "stage_id", "segment": "usage_segment", "tier": "tier_id"}
# Fields that define what a goal measures: changing one measures it again.
MEASURE_FIELDS = (
    "company_id",
    "kpi",
    "scope",
    "stage_id",
    "usage_segment",
    "tier_id",
    "period_kind",
    "baseline_date",
    "baseline_manual",
    "baseline_manual_value",
    "target_type",
    "target",
    "date_start",
    "deadline",
    "active",
)


class LoyaltyMlmGoal(models.Model):
    """A SMART goal of the member programme: "+20% retention by June".

    A goal names a KPI of the snapshots (tools/kpi.py), a scope (all
    customers, or one stage, segment or tier), a baseline period, a target
    (an absolute value or a change in percent of the baseline) and a
    deadline. Its status comes from the snapshots of the goal's period kind
    (kpi_tools.goal_status), measured by `_mlm_update_goals`, which the
    nightly snapshot job calls after writing the snapshots.

    Baseline: the KPI of the snapshot of the period that contains
    `baseline_date` (computed, stored, and measured again by each update,
    since a backfill may write that snapshot later); a manager may type
    the baseline instead (`baseline_manual`), e.g. a figure from before the
    programme existed.

    Measurements: one value per closed period after the baseline period,
    dated at the period's last day. A period still running is not used: its
    "to date" figure understates period rates (a retention of three days is
    not a month's retention), so a monthly goal moves once a month.
    """

    _name = "loyalty.mlm.goal"
    _description = "Member Programme Goal"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "deadline, id"
    _check_company_auto = True

    @api.model
    def _default_baseline_date(self):
        """A day of last month: the month just closed is the usual baseline."""
        today = fields.Date.context_today(self)
        return kpi_tools.Period.containing(today, "month").previous().start

    name = fields.Char(required=True, translate=True, tracking=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        index=True,
        default=lambda self: self.env.company,
    )
    user_id = fields.Many2one(
        "res.users",
        string="Responsible",
        default=lambda self: self.env.user,
        domain="[('share', '=', False)]",
        tracking=True,
        help="Gets an activity when the goal turns at risk.",
    )
    kpi = fields.Selection(KPI_SELECTION, string="KPI", required=True, tracking=True)
    kpi_format = fields.Selection(
        [("integer", "Integer"), ("percent", "Percent"), ("monetary", "Amount")],
        string="KPI Format",
        compute="_compute_kpi_format",
        help="How the KPI is shown: rates are stored as fractions (0.25 is 25%).",
    )
    scope = fields.Selection(
        SCOPE_SELECTION,
        required=True,
        default="all",
        help="Whom the KPI is measured on: every customer, or one stage, "
        "segment or tier (the programme-wide KPIs only on all).",
    )
    stage_id = fields.Many2one("loyalty.mlm.stage", string="Stage")
    usage_segment = fields.Selection(
        [("heavy", "Heavy user"), ("medium", "Medium user"), ("low", "Low user")],
        string="Segment",
    )
    tier_id = fields.Many2one("loyalty.mlm.tier", string="Tier", check_company=True)
    period_kind = fields.Selection(
        PERIOD_KIND_SELECTION,
        string="Measured per",
        required=True,
        default="month",
        help="Which snapshots measure the goal: one value per closed week, "
        "month, quarter or year.",
    )
    baseline_date = fields.Date(
        required=True,
        default=_default_baseline_date,
        help="A day of the baseline period: the goal starts from the KPI of "
        "the period (of the kind measured) that contains it.",
    )
    baseline_start = fields.Date(
        string="Baseline From", compute="_compute_baseline_period"
    )
    baseline_end = fields.Date(string="Baseline To", compute="_compute_baseline_period")
    baseline_manual = fields.Boolean(
        string="Baseline by Hand",
        help="Type the baseline instead of taking it from the snapshot.",
    )
    baseline_manual_value = fields.Float(
        string="Manual Baseline", digits=(16, 4), tracking=True
    )
    baseline_value = fields.Float(
        string="Baseline",
        digits=(16, 4),
        compute="_compute_baseline_value",
        store=True,
        help="The KPI in the baseline period (rates as fractions: 0.25 is 25%).",
    )
    has_baseline = fields.Boolean(
        string="Baseline Known",
        compute="_compute_baseline_value",
        store=True,
        help="False when the baseline period has no snapshot or the KPI has "
        "no value in it.",
    )
    target_type = fields.Selection(
        [("absolute", "Value"), ("percent", "Change in %")],
        required=True,
        default="percent",
        tracking=True,
    )
    target = fields.Float(
        digits=(16, 4),
        required=True,
        tracking=True,
        help="A value of the KPI, or a change in percent of the baseline: "
        "20 means +20%, -10 means -10%.",
    )
    target_value = fields.Float(
        digits=(16, 4),
        compute="_compute_target_value",
        store=True,
        tracking=True,
        help="The KPI value to reach by the deadline.",
    )
    has_target = fields.Boolean(
        string="Target Known", compute="_compute_target_value", store=True
    )
    date_start = fields.Date(
        string="Start",
        compute="_compute_date_start",
        store=True,
        precompute=True,
        readonly=False,
        required=True,
        help="The day the trajectory from baseline to target starts; by "
        "default the day after the baseline period.",
    )
    deadline = fields.Date(required=True, tracking=True)

    # -- measured by _mlm_update_goals --------------------------------------
    status = fields.Selection(
        [
            ("on_track", "On track"),
            ("at_risk", "At risk"),
            ("achieved", "Achieved"),
            ("missed", "Missed"),
        ],
        readonly=True,
        copy=False,
        tracking=True,
        help="Empty until a period after the baseline has been measured.",
    )
    current_value = fields.Float(
        string="Current",
        digits=(16, 4),
        readonly=True,
        copy=False,
        help="The KPI of the last closed period measured.",
    )
    progress = fields.Float(
        digits=(16, 1),
        readonly=True,
        copy=False,
        help="Percent of the way from baseline to target (below 0: worse "
        "than the baseline; above 100: beyond the target).",
    )
    expected = fields.Float(
        string="Expected Progress",
        digits=(16, 1),
        readonly=True,
        copy=False,
        help="Percent of the way a straight line from start to deadline "
        "asks for today.",
    )
    last_measured = fields.Date(
        string="Measured To",
        readonly=True,
        copy=False,
        help="Last day of the latest period the status is judged on.",
    )
    measure_note = fields.Char(
        string="Not Measured",
        readonly=True,
        copy=False,
        help="Why the goal has no status yet.",
    )

    # -- the values above as the user reads them (rates in %, amounts) -----
    baseline_display = fields.Char(
        string="Baseline Shown", compute="_compute_display_values"
    )
    target_display = fields.Char(
        string="Target Shown", compute="_compute_display_values"
    )
    current_display = fields.Char(
        string="Current Shown", compute="_compute_display_values"
    )

    # ------------------------------------------------------------------
    # Computes
    # ------------------------------------------------------------------

    @api.depends("kpi")
    def _compute_kpi_format(self):
        for goal in self:
            goal.kpi_format = KPI_FORMAT.get(goal.kpi) or False

    @api.depends("baseline_date", "period_kind")
    def _compute_baseline_period(self):
        for goal in self:
            period = goal._mlm_baseline_period()
            goal.baseline_start = period and period.start
            goal.baseline_end = period and period.last_day

    @api.depends(
        "company_id",
        "kpi",
        "scope",
        "stage_id",
        "usage_segment",
        "tier_id",
        "period_kind",
        "baseline_date",
        "baseline_manual",
        "baseline_manual_value",
    )
    def _compute_baseline_value(self):
        """Set-based: one snapshot search for all goals (by baseline period)."""
        rows = self._mlm_snapshot_rows(baseline=True)
        for goal in self:
            if goal.baseline_manual:
                goal.baseline_value = goal.baseline_manual_value
                goal.has_baseline = True
                continue
            period = goal._mlm_baseline_period()
            value = None
            if period and goal.kpi:
                row = next(
                    (
                        row
                        for row in rows.get(goal._mlm_series_key(), ())
                        if row.date_start == period.start
                    ),
                    None,
                )
                value = row._mlm_kpi_value(goal.kpi) if row else None
            goal.baseline_value = value or 0.0
            goal.has_baseline = value is not None

    @api.depends("baseline_value", "has_baseline", "target_type", "target")
    def _compute_target_value(self):
        for goal in self:
            percent = goal.target_type == "percent"
            if percent and (not goal.has_baseline or not goal.baseline_value):
                # No baseline yet, or a percentage of 0: no target value.
                goal.target_value = 0.0
                goal.has_target = False
                continue
            goal.target_value = kpi_tools.goal_target(
                goal.baseline_value, goal.target, percent=percent
            )
            goal.has_target = True

    @api.depends(
        "kpi",
        "baseline_value",
        "has_baseline",
        "target_value",
        "has_target",
        "current_value",
        "status",
    )
    def _compute_display_values(self):
        for goal in self:
            show = goal.kpi and goal._mlm_format
            goal.baseline_display = (
                show(goal.baseline_value, self.env) if goal.has_baseline else False
            )
            goal.target_display = (
                show(goal.target_value, self.env) if goal.has_target else False
            )
            goal.current_display = (
                show(goal.current_value, self.env) if goal.status else False
            )

    @api.depends("baseline_date", "period_kind")
    def _compute_date_start(self):
        for goal in self:
            period = goal._mlm_baseline_period()
            goal.date_start = period and period.stop

    # ------------------------------------------------------------------
    # Constraints
    # ------------------------------------------------------------------

    @api.constrains("kpi", "scope", "stage_id", "usage_segment", "tier_id")
    def _check_scope(self):
        labels = dict(self._fields["kpi"]._description_selection(self.env))
        for goal in self:
            if goal.scope != "all" and goal.kpi in PROGRAMME_KPIS:
                raise ValidationError(
                    _(
                        "%(kpi)s is measured on the whole programme only: "
                        "set the goal's scope to All customers.",
                        kpi=labels[goal.kpi],
                    )
                )
            field = SCOPE_FIELD.get(goal.scope)
            if field and not goal[field]:
                raise ValidationError(
                    _(
                        "The goal %(goal)s is scoped on a %(scope)s: choose one.",
                        goal=goal.name,
                        scope=goal._fields[field].get_description(self.env)["string"],
                    )
                )

    @api.constrains(
        "target_type",
        "target",
        "baseline_manual",
        "baseline_manual_value",
        "baseline_date",
        "period_kind",
        "kpi",
    )
    def _check_target(self):
        for goal in self:
            if (
                goal.target_type == "percent"
                and goal.has_baseline
                and not goal.baseline_value
            ):
                raise ValidationError(
                    _(
                        "The goal %(goal)s aims at a change in percent of a "
                        "baseline of 0, which means nothing: give the target "
                        "as a value instead.",
                        goal=goal.name,
                    )
                )

    @api.constrains("baseline_date", "period_kind", "date_start", "deadline")
    def _check_dates(self):
        for goal in self:
            period = goal._mlm_baseline_period()
            if goal.deadline <= period.last_day:
                raise ValidationError(
                    _(
                        "The deadline of the goal %(goal)s must come after its "
                        "baseline period (%(start)s to %(end)s).",
                        goal=goal.name,
                        start=period.start,
                        end=period.last_day,
                    )
                )
            if not period.last_day < goal.date_start < goal.deadline:
                raise ValidationError(
                    _(
                        "The goal %(goal)s must start after its baseline period "
                        "and before its deadline.",
                        goal=goal.name,
                    )
                )

    # ------------------------------------------------------------------
    # CRUD
    # ------------------------------------------------------------------

    @api.model
    def _mlm_check_numbers(self, vals):
        """Refuse NaN and infinities before the ORM rounds them (which fails
        with a bare ValueError or OverflowError)."""
        for name in ("target", "baseline_manual_value"):
            value = vals.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationError(
                    _(
                        "%(field)s must be a finite number.",
                        field=self._fields[name].get_description(self.env)["string"],
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._mlm_check_numbers(vals)
        goals = super().create(vals_list)
        goals._mlm_measure()
        return goals

    def write(self, vals):
        self._mlm_check_numbers(vals)
        res = super().write(vals)
        if any(name in vals for name in MEASURE_FIELDS):
            self._mlm_measure()
        return res

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------

    def action_refresh(self):
        """Measure the goals again now (the nightly job does it after the
        snapshots). Managers only: it writes the measured fields."""
        if not self.env.user.has_group("loyalty_mlm.group_loyalty_mlm_manager"):
            raise AccessError(_("Only Loyalty Managers can refresh goals."))
        self.check_access("write")
        self._mlm_update_goals()
        return True

    # ------------------------------------------------------------------
    # Measuring
    # ------------------------------------------------------------------

    def _mlm_baseline_period(self):
        """The tools Period of the baseline (None while incomplete)."""
        self.ensure_one()
        if not self.baseline_date or not self.period_kind:
            return None
        return kpi_tools.Period.containing(self.baseline_date, self.period_kind)

    def _mlm_series_key(self):
        """(company id, kind, dimension, part) of the snapshots measuring self."""
        self.ensure_one()
        field = SCOPE_FIELD.get(self.scope)
        value = self[field] if field else False
        if isinstance(value, models.BaseModel):
            value = value.id
        return (self.company_id.id, self.period_kind, self.scope or "all", value)

    def _mlm_snapshot_rows(self, baseline=False):
        """{series key: snapshot rows oldest first} for the goals of self.

        One search per company and period kind (the goals of one company
        share its snapshots), whatever the number of goals. baseline=True
        reads the baseline periods only; otherwise every period from the
        earliest baseline on.
        """
        Snapshot = self.env["loyalty.mlm.kpi.snapshot"].sudo()
        groups = defaultdict(lambda: self.browse())
        for goal in self:
            if goal.company_id and goal.period_kind and goal.baseline_date:
                groups[(goal.company_id.id, goal.period_kind)] |= goal
        result = defaultdict(list)
        for (company_id, kind), goals in groups.items():
            starts = sorted({goal._mlm_baseline_period().start for goal in goals})
            domain = [
                ("company_id", "=", company_id),
                ("period_kind", "=", kind),
                ("dimension", "in", list(set(goals.mapped("scope")))),
            ]
            if baseline:
                domain.append(("date_start", "in", starts))
            else:
                domain.append(("date_start", ">=", starts[0]))
            for row in Snapshot.search(domain, order="date_start, id"):
                field = SCOPE_FIELD.get(row.dimension)
                value = row[field] if field else False
                if isinstance(value, models.BaseModel):
                    value = value.id
                result[(company_id, kind, row.dimension, value)].append(row)
        return result

    def _mlm_measure(self, today=None):
        """Measure the goals of self from the snapshots; return the goals
        that turned at risk. Set-based: one snapshot search per company and
        period kind; the writes are flushed together (Odoo sends one UPDATE
        for all the goals' new values)."""
        goals = self.filtered("active")  # an archived goal keeps its last status
        if not goals:
            return goals
        today = today or fields.Date.context_today(self)
        rows = goals._mlm_snapshot_rows()
        turned = self.browse()
        for goal in goals:
            vals = goal._mlm_measure_one(rows.get(goal._mlm_series_key(), ()), today)
            if vals["status"] == "at_risk" and goal.status != "at_risk":
                turned |= goal
            changed = {
                name: value for name, value in vals.items() if goal[name] != value
            }
            if changed:
                # None of these is in MEASURE_FIELDS: no measuring loop.
                goal.write(changed)
        return turned

    @api.model
    def _mlm_update_goals(self, companies=None, today=None):
        """Measure the goals again and warn the responsible of those that
        turned at risk (one To-Do activity each); return the goals measured.

        Called by the nightly snapshot job after writing the snapshots (and
        after a backfill), on an empty recordset: every active goal of
        `companies` (all companies when None). On goals (action_refresh):
        those. `today`: the day of judgement (default: today).

        Queries do not grow with the number of goals: one search of the
        goals, one snapshot search per company and period kind for the
        baselines and one for the measures, one batched write; only the
        chatter tracking of goals whose status or target changed and the
        activities of goals turning at risk cost queries per goal.
        """
        goals = self
        if not goals:
            domain = [("active", "=", True)]
            if companies is not None:
                domain.append(("company_id", "in", companies.ids))
            goals = self.search(domain)
        goals = goals.filtered("active")
        if not goals:
            return goals
        # A backfill may have written the baseline periods' snapshots since
        # the goals were saved: take the baselines again, all at once.
        baseline_fields = [
            "baseline_value",
            "has_baseline",
            "target_value",
            "has_target",
        ]
        for name in baseline_fields:
            self.env.add_to_compute(self._fields[name], goals)
        goals._recompute_recordset(baseline_fields)
        turned = goals._mlm_measure(today=today)
        turned._mlm_warn_at_risk(today or fields.Date.context_today(self))
        return goals

    def _mlm_warn_at_risk(self, today):
        """One To-Do activity per goal of self for its responsible, in the
        responsible's language, saying what the KPI is and what it should be."""
        todo = self.env.ref("mail.mail_activity_data_todo", raise_if_not_found=False)
        model_id = self.env["ir.model"]._get_id(self._name)
        vals_list = []
        for goal in self.filtered("user_id"):
            lang_env = goal.with_context(lang=goal.user_id.lang).env
            kpi = dict(goal._fields["kpi"]._description_selection(lang_env))[goal.kpi]
            expected = goal.baseline_value + (
                goal.target_value - goal.baseline_value
            ) * (goal.expected / 100.0)
            values = {
                "goal": goal.with_env(lang_env).name,
                "kpi": kpi,
                "current": goal._mlm_format(goal.current_value, lang_env),
                "expected": goal._mlm_format(expected, lang_env),
                "target": goal._mlm_format(goal.target_value, lang_env),
                "deadline": format_date(lang_env, goal.deadline),
            }
            vals_list.append(
                {
                    "activity_type_id": todo.id if todo else False,
                    "res_model_id": model_id,
                    "res_id": goal.id,
                    "user_id": goal.user_id.id,
                    "date_deadline": today,
                    "summary": lang_env._("Goal at risk: %(goal)s", **values),
                    "note": lang_env._(
                        "%(kpi)s is %(current)s; to reach %(target)s by "
                        "%(deadline)s it should be about %(expected)s by now.",
                        **values,
                    ),
                }
            )
        return self.env["mail.activity"].create(vals_list)

    def _mlm_format(self, value, env):
        """A KPI value as the user reads it: rates in percent, amounts in
        the company's currency, counts as integers."""
        self.ensure_one()
        kind = KPI_FORMAT.get(self.kpi)
        if kind == "percent":
            return f"{formatLang(env, value * 100, digits=1)} %"
        if kind == "monetary":
            return format_amount(env, value, self.company_id.currency_id)
        return formatLang(env, value, digits=0 if kind == "integer" else 2)

    def _mlm_measure_one(self, rows, today):
        """The measured fields' values of one goal from its snapshot rows."""
        self.ensure_one()
        empty = {
            "status": False,
            "current_value": 0.0,
            "progress": 0.0,
            "expected": 0.0,
            "last_measured": False,
        }
        if not self.has_baseline:
            return dict(
                empty,
                measure_note=_("No snapshot with this KPI for the baseline period."),
            )
        if not self.has_target:
            return dict(
                empty,
                measure_note=_(
                    "A target in percent needs a baseline other than 0: "
                    "give the target as a value."
                ),
            )
        baseline_end = self._mlm_baseline_period().last_day
        # Closed periods after the baseline, dated at their last day.
        points = [
            (row.date_end, row._mlm_kpi_value(self.kpi))
            for row in rows
            if row.date_start > baseline_end and row.date_computed >= row.date_end
        ]
        result = kpi_tools.goal_status(
            points,
            self.baseline_value,
            self.target_value,
            self.deadline,
            today,
            start=self.date_start,
            higher_is_better=kpi_tools.KPI_DIRECTION.get(self.kpi, 1) >= 0,
        )
        judged_on = min(today, self.deadline)
        measured = [day for day, value in points if value is not None]
        measured = [day for day in measured if day <= judged_on]
        return {
            "status": result.status or False,
            "current_value": result.current or 0.0,
            "progress": result.progress or 0.0,
            "expected": result.expected or 0.0,
            "last_measured": measured[-1] if measured else False,
            "measure_note": False
            if result.status
            else _("No closed period measured since the baseline yet."),
        }
