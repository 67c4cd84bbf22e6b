import logging
import time
from datetime import timedelta
from itertools import groupby
from operator import itemgetter

from odoo import Command, _, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.osv import expression
from odoo.tools import SQL, format_date, formatLang, split_every

from ..tools.domains import id_range_domain
from .loyalty_mlm_partner_score import QUADRANT_SELECTION, USAGE_SEGMENT_SELECTION

_logger = logging.getLogger(__name__)

# Customers treated together by the nightly job (one claim, one create or
# write per action, one savepoint).
TREATMENT_BATCH_SIZE = 500
# Seconds a call of the nightly job keeps treating batches before it hands
# back to ir.cron (which commits and calls again while some remain). Not
# more: the member cards credited in a call stay locked until its commit,
# and a till selling to one of them waits for it (the per-customer job held
# them about as long per call of 500).
TREATMENT_TIME_BUDGET = 10.0
# Contacts the nightly job plans at a time (in the order of their ids): a
# call plans what it can treat, not the whole company (18 s at 1,000,000
# customers, made again by every call of a first night, issue #22).
TREATMENT_PLAN_RANGE = 20000
# A range's plan costs about the same whatever is due in it (one search per
# rule): after a range where fewer than a tenth of the contacts were due, the
# next one is this many times bigger (up to TREATMENT_PLAN_RANGE_MAX), so that
# a quiet night plans in a few ranges, not fifty (59 s instead of 18 s at
# 1,000,000 customers), while a first night keeps the small ones.
TREATMENT_PLAN_GROWTH = 4
TREATMENT_PLAN_RANGE_MAX = 16 * TREATMENT_PLAN_RANGE
# A stage move of at most this many contacts (a manual move, an order that
# moves its customer) runs its stage-entry treatments at once; bigger moves
# (the nightly refresh) leave them to the treatment job that follows it.
TREATMENT_INLINE_LIMIT = 20


class LoyaltyMlmTreatment(models.Model):
    """A rule turning a customer's stage and segment into an action.

    The active rules form a decision list: each customer gets the first rule
    (by sequence) whose conditions he meets, its "next best action". That rule
    fires on its trigger: once per entry into the stage (the stage history
    row is the occasion), or periodically, at most once per cooldown. A rule
    without actions stops the list ("strangers: nothing").
    """

    _name = "loyalty.mlm.treatment"
    _inherit = ["loyalty.mlm.measured.mixin"]
    _description = "Member Treatment Rule"
    _order = "sequence, id"

    name = fields.Char(required=True, translate=True)
    active = fields.Boolean(default=True)
    sequence = fields.Integer(default=10)
    company_id = fields.Many2one(
        "res.company",
        string="Company",
        index=True,
        help="Empty: the rule applies in every company.",
    )
    rationale = fields.Char(
        translate=True, help="Why this treatment: one line for the sales team."
    )
    # Conditions -----------------------------------------------------------
    stage_ids = fields.Many2many(
        "loyalty.mlm.stage", string="Stages", help="Empty: any stage."
    )
    usage_segment = fields.Selection(
        USAGE_SEGMENT_SELECTION, string="Usage Segment", help="Empty: any segment."
    )
    quadrant = fields.Selection(
        QUADRANT_SELECTION, string="Loyalty x Profit", help="Empty: any quadrant."
    )
    segment_match = fields.Selection(
        [("all", "Both"), ("any", "Either")],
        string="Segment and Quadrant",
        default="all",
        required=True,
        help="With both a usage segment and a quadrant: must the customer be in "
        "both, or is either enough (heavy user or True Friend)?",
    )
    tier_ids = fields.Many2many(
        "loyalty.mlm.tier", string="Tiers", help="Empty: any tier, or none."
    )
    churn_risk_min = fields.Integer(string="Churn Risk From (%)", default=0)
    churn_risk_max = fields.Integer(string="Churn Risk To (%)", default=100)
    stage_days_min = fields.Integer(
        string="Days in Stage From", help="At least this many days in the stage."
    )
    stage_days_max = fields.Integer(
        string="Days in Stage To", help="At most this many days; 0: no limit."
    )
    # Trigger --------------------------------------------------------------
    trigger = fields.Selection(
        [("stage_entry", "On stage entry"), ("periodic", "Periodic")],
        required=True,
        default="stage_entry",
        help="On stage entry: once each time a customer enters the stage. "
        "Periodic: at every nightly run, at most once per cooldown.",
    )
    date_start = fields.Datetime(
        string="Fires From",
        required=True,
        default=fields.Datetime.now,
        help="Stage entries from this moment on fire the rule; older entries "
        "(before the rule existed, or the stages computed at installation) "
        "do not.",
    )
    cooldown_days = fields.Integer(
        string="Cooldown (days)",
        default=30,
        help="The rule never fires again for the same customer within this many "
        "days of its last execution for him.",
    )
    # Actions --------------------------------------------------------------
    mail_template_id = fields.Many2one(
        "mail.template",
        string="Send Mail",
        domain=[("model", "=", "res.partner")],
        help="Sent to the customer in his language. The template may show "
        "ctx.get('mlm_coupon_code') and ctx.get('mlm_bonus_points').",
    )
    activity_type_id = fields.Many2one(
        "mail.activity.type",
        string="Schedule Activity",
        domain=[("res_model", "in", (False, "res.partner"))],
        help="For the customer's salesperson (or the fallback user below).",
    )
    activity_summary = fields.Char(string="Activity Summary", translate=True)
    activity_deadline_days = fields.Integer(string="Activity Due In (days)", default=3)
    activity_user_id = fields.Many2one(
        "res.users",
        string="Fallback Responsible",
        help="Gets the activity for customers without a salesperson; empty: "
        "no activity for them.",
    )
    bonus_points = fields.Float(
        string="Credit Points", digits=(16, 2), help="Credited to the member card."
    )
    coupon_program_id = fields.Many2one(
        "loyalty.program",
        string="Issue Coupon",
        domain=[("program_type", "=", "coupons")],
    )
    coupon_validity_days = fields.Integer(
        string="Coupon Valid For (days)", default=30, help="0: no expiry."
    )
    tag_ids = fields.Many2many(
        "res.partner.category", string="Add Tags", help="Contact tags to add."
    )
    survey_id = fields.Many2one(
        "survey.survey",
        string="Send Survey",
        help="Invites the customer by mail to answer this survey; his answers "
        "are linked to him (score, comment, date on the contact and the lead).",
    )
    action_summary = fields.Char(
        string="Actions", compute="_compute_action_summary", translate=False
    )
    log_count = fields.Integer(compute="_compute_log_count", string="Executions")

    # ------------------------------------------------------------
    # Computes and constraints
    # ------------------------------------------------------------

    @api.depends(
        "mail_template_id",
        "activity_type_id",
        "activity_summary",
        "activity_deadline_days",
        "bonus_points",
        "coupon_program_id",
        "tag_ids",
        "survey_id",
    )
    def _compute_action_summary(self):
        for rule in self:
            rule.action_summary = "; ".join(rule._mlm_action_labels()) or _("Nothing")

    def _compute_log_count(self):
        counts = dict(
            self.env["loyalty.mlm.treatment.log"]._read_group(
                [("treatment_id", "in", self.ids)], ["treatment_id"], ["__count"]
            )
        )
        for rule in self:
            rule.log_count = counts.get(rule, 0)

    @api.constrains(
        "churn_risk_min",
        "churn_risk_max",
        "stage_days_min",
        "stage_days_max",
        "cooldown_days",
        "trigger",
    )
    def _check_mlm_conditions(self):
        for rule in self:
            if not 0 <= rule.churn_risk_min <= rule.churn_risk_max <= 100:
                raise ValidationError(
                    _(
                        "%(rule)s: the churn risk range must lie between 0 and 100, "
                        "from the lower to the higher value.",
                        rule=rule.name,
                    )
                )
            if rule.stage_days_min < 0 or rule.stage_days_max < 0:
                raise ValidationError(
                    _("%(rule)s: days in stage cannot be negative.", rule=rule.name)
                )
            if rule.stage_days_max and rule.stage_days_max < rule.stage_days_min:
                raise ValidationError(
                    _(
                        "%(rule)s: the days in stage range ends before it starts.",
                        rule=rule.name,
                    )
                )
            if rule.cooldown_days < 0 or (
                rule.trigger == "periodic" and rule.cooldown_days < 1
            ):
                raise ValidationError(
                    _(
                        "%(rule)s: a periodic treatment needs a cooldown of at "
                        "least one day.",
                        rule=rule.name,
                    )
                )

    @api.constrains(
        "bonus_points",
        "activity_deadline_days",
        "coupon_validity_days",
        "coupon_program_id",
    )
    def _check_mlm_actions(self):
        for rule in self:
            if rule.bonus_points < 0:
                raise ValidationError(
                    _(
                        "%(rule)s: a treatment credits points, never takes them.",
                        rule=rule.name,
                    )
                )
            program = rule.coupon_program_id
            if program and program.program_type != "coupons":
                raise ValidationError(
                    _(
                        "%(rule)s: %(program)s is not a coupons programme.",
                        rule=rule.name,
                        program=program.name,
                    )
                )
            if rule.activity_deadline_days < 0 or rule.coupon_validity_days < 0:
                raise ValidationError(
                    _(
                        "%(rule)s: a number of days cannot be negative.",
                        rule=rule.name,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        if any(not vals.get("company_id") for vals in vals_list):
            self.env["res.company"]._mlm_check_shared_config(
                _("Shared treatment rules")
            )
        return super().create(vals_list)

    def write(self, vals):
        self._mlm_check_shared(vals)
        return super().write(vals)

    def unlink(self):
        self._mlm_check_shared({})
        return super().unlink()

    def _mlm_check_shared(self, vals):
        """A rule without a company is every company's (see res.company)."""
        if any(not record.company_id for record in self) or (
            "company_id" in vals and not vals["company_id"]
        ):
            self.env["res.company"]._mlm_check_shared_config(
                _("Shared treatment rules")
            )

    @api.ondelete(at_uninstall=False)
    def _unlink_except_executed(self):
        if (
            self.env["loyalty.mlm.treatment.log"]
            .sudo()
            .search_count([("treatment_id", "in", self.ids)], limit=1)
        ):
            raise UserError(
                _(
                    "A treatment that was executed keeps its log: archive it "
                    "instead of deleting it."
                )
            )

    # ------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------

    def action_mlm_open_log(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "loyalty_mlm.loyalty_mlm_treatment_log_action"
        )
        action["domain"] = [("treatment_id", "=", self.id)]
        return action

    # ------------------------------------------------------------
    # Matching
    # ------------------------------------------------------------

    def _mlm_action_labels(self):
        """What the rule does, in words (the next best action, the log)."""
        self.ensure_one()
        labels = []
        if self.mail_template_id:
            labels.append(_("Mail: %s", self.mail_template_id.name))
        if self.activity_type_id:
            labels.append(
                _(
                    "%(type)s for the salesperson within %(days)s days",
                    type=self.activity_summary or self.activity_type_id.name,
                    days=self.activity_deadline_days,
                )
            )
        if self.bonus_points:
            points = f"{self.bonus_points:g}"
            labels.append(_("%s bonus points", points))
        if self.coupon_program_id:
            labels.append(_("Coupon: %s", self.coupon_program_id.name))
        if self.tag_ids:
            labels.append(_("Tags: %s", ", ".join(self.tag_ids.mapped("name"))))
        if self.survey_id:
            labels.append(_("Survey: %s", self.survey_id.title))
        return labels

    def _mlm_has_actions(self):
        self.ensure_one()
        return bool(
            self.mail_template_id
            or self.activity_type_id
            or self.bonus_points
            or self.coupon_program_id
            or self.tag_ids
            or self.survey_id
        )

    def _mlm_partner_domain(self, now):
        """The rule's conditions as a domain on res.partner (scores in the
        current company)."""
        self.ensure_one()
        domain = [("mlm_stage_id", "!=", False)]
        if self.stage_ids:
            domain.append(("mlm_stage_id", "in", self.stage_ids.ids))
        segments = []
        if self.usage_segment:
            segments.append([("mlm_usage_segment", "=", self.usage_segment)])
        if self.quadrant:
            segments.append([("mlm_quadrant", "=", self.quadrant)])
        if segments:
            combine = expression.OR if self.segment_match == "any" else expression.AND
            domain = expression.AND([domain, combine(segments)])
        if self.tier_ids:
            domain.append(("mlm_tier_id", "in", self.tier_ids.ids))
        if self.churn_risk_min > 0:
            domain.append(("mlm_churn_risk", ">=", self.churn_risk_min))
        if self.churn_risk_max < 100:
            domain.append(("mlm_churn_risk", "<=", self.churn_risk_max))
        # Days in stage = whole days since the stage date (see the contact).
        if self.stage_days_min:
            domain.append(
                ("mlm_stage_date", "<=", now - timedelta(days=self.stage_days_min))
            )
        if self.stage_days_max:
            domain.append(
                ("mlm_stage_date", ">", now - timedelta(days=self.stage_days_max + 1))
            )
        return domain

    @api.model
    def _mlm_rules(self, company):
        return self.search(
            [("company_id", "in", (False, company.id))], order="sequence, id"
        )

    def _mlm_match(self, company, partner_ids=None, id_range=None):
        """{rule: set of partner ids} for the rules `self` of `company`: each
        customer under the first rule he meets (among `partner_ids`, and the
        ids from `id_range`'s start up to its end, excluded, if given; an end
        of None: the last contact). One search per rule."""
        now = fields.Datetime.now()
        Partner = self.env["res.partner"].with_company(company).sudo()
        company_domain = [("company_id", "in", (False, company.id))]
        if partner_ids is not None:
            company_domain.append(("id", "in", list(partner_ids)))
        if id_range is not None:
            # The score conditions then read the scores of the range only
            # (res.partner._mlm_score_rows_leaf), not every customer's for
            # each range of the walk.
            Partner = Partner.with_context(mlm_partner_id_range=id_range)
            company_domain += id_range_domain("id", id_range)
        taken = set()
        matches = {}
        for rule in self:
            ids = set(
                Partner.search(
                    expression.AND([company_domain, rule._mlm_partner_domain(now)]),
                    order="id",
                ).ids
            )
            matches[rule] = ids - taken
            taken |= ids
        return matches

    def _mlm_due(self, company, partner_ids, now):
        """{partner id: occasion key} of `partner_ids` (matched to the rule
        `self`) for whom the rule must fire now in `company`.

        Stage entry: the occasion is the history row of the customer's entry
        into his current stage, if it happened after the rule's start (rules
        do not replay old moves). Periodic: the occasion is the day.
        Either way, nothing within the cooldown of the last execution in the
        company (a customer shared by two companies is treated by each, as
        he is scored and carded by each).
        """
        self.ensure_one()
        if not partner_ids or not self._mlm_has_actions():
            return {}
        partner_ids = sorted(partner_ids)
        if self.trigger == "stage_entry":
            self.env["loyalty.mlm.stage.history"].flush_model()
            self.env.cr.execute(
                SQL(
                    """
                    SELECT DISTINCT ON (h.partner_id) h.partner_id, h.id, h.date
                      FROM loyalty_mlm_stage_history h
                     WHERE h.partner_id = ANY(%s) AND h.company_id = %s
                  ORDER BY h.partner_id, h.date DESC, h.id DESC
                    """,
                    partner_ids,
                    company.id,
                )
            )
            candidates = {
                pid: f"{company.id}:stage:{hid}"
                for pid, hid, date in self.env.cr.fetchall()
                if date >= self.date_start
            }
        else:
            candidates = dict.fromkeys(
                partner_ids, f"{company.id}:day:{now.date().isoformat()}"
            )
        if not candidates:
            return {}
        since = now - timedelta(days=self.cooldown_days) if self.cooldown_days else now
        self.env["loyalty.mlm.treatment.log"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT partner_id FROM loyalty_mlm_treatment_log
                 WHERE treatment_id = %(rule)s AND partner_id = ANY(%(partners)s)
                   AND company_id = %(company)s
                   AND (occasion = ANY(%(occasions)s) OR date > %(since)s)
                """,
                rule=self.id,
                company=company.id,
                partners=list(candidates),
                occasions=list(set(candidates.values())),
                since=since,
            )
        )
        for (partner_id,) in self.env.cr.fetchall():
            candidates.pop(partner_id, None)
        return candidates

    @api.model
    def _mlm_plan(self, company, partner_ids=None, triggers=None, id_range=None):
        """[(rule, {partner id: occasion})] due now in `company` (see
        _mlm_match for `partner_ids` and `id_range`)."""
        now = fields.Datetime.now()
        plan = []
        rules = self._mlm_rules(company)
        for rule, matched in rules._mlm_match(company, partner_ids, id_range).items():
            if triggers and rule.trigger not in triggers:
                continue
            due = rule._mlm_due(company, matched, now)
            if due:
                plan.append((rule, due))
        return plan

    # ------------------------------------------------------------
    # Next best action (shown on the contact)
    # ------------------------------------------------------------

    @api.model
    def _mlm_next_actions(self, company, partner_ids):
        """What the contacts `partner_ids` get next in `company`: (rule of
        each partner id, the due (rule id, partner id) pairs, the last
        execution of each (partner id, rule id)).

        Set-based: one search per rule for all of them, one query for what
        is due per rule, one for the last executions."""
        rule_of, due, last = {}, set(), {}
        if not partner_ids:
            return rule_of, due, last
        now = fields.Datetime.now()
        matches = self._mlm_rules(company)._mlm_match(company, partner_ids)
        for rule, ids in matches.items():
            rule_of.update(dict.fromkeys(ids, rule))
            due.update((rule.id, pid) for pid in rule._mlm_due(company, ids, now))
        if rule_of:
            groups = (
                self.env["loyalty.mlm.treatment.log"]
                .sudo()
                ._read_group(
                    [
                        ("partner_id", "in", list(rule_of)),
                        ("treatment_id", "in", [r.id for r in matches]),
                        ("company_id", "=", company.id),
                    ],
                    ["partner_id", "treatment_id"],
                    ["date:max"],
                )
            )
            last = {(p.id, r.id): date for p, r, date in groups}
        return rule_of, due, last

    def _mlm_next_action_status(self, is_due, last_date):
        """When the rule `self` (may be empty) acts next for a contact."""
        rule = self
        if not rule:
            return ""
        if not rule._mlm_has_actions():
            return _("No action on purpose")
        if is_due:
            return _("Due at the next run")
        if rule.trigger == "periodic" and last_date:
            return _(
                "Done on %(done)s, again from %(next)s",
                done=format_date(self.env, last_date),
                next=format_date(
                    self.env, last_date + timedelta(days=rule.cooldown_days)
                ),
            )
        if last_date:
            return _("Done on %s", format_date(self.env, last_date))
        return _("On the next entry into the stage")

    # ------------------------------------------------------------
    # Execution
    # ------------------------------------------------------------

    @api.model
    def _mlm_apply(self, company, partner_ids=None, triggers=None):
        """Run the due treatments of `company` (for `partner_ids` only if
        given), all at once. Returns (done, failed, left)."""
        plan = self._mlm_plan(company, partner_ids, triggers)
        total = sum(len(due) for _rule, due in plan)
        done, failed, _stopped_at = self._mlm_run_plan(company, plan)
        return done, failed, total - done - failed

    @api.model
    def _mlm_run_plan(
        self, company, plan, batch_size=None, deadline=None, worked=False
    ):
        """Fire `plan` ([(rule, {partner id: occasion})], _mlm_plan) in
        `company`, in the order of the customers' ids, `batch_size` customers
        at a time (default: all at once); within a batch, each rule's
        customers are fired together (_mlm_fire_batch), a few queries per rule
        and batch rather than per customer. No new batch once
        time.monotonic() passed `deadline` and a batch was fired (or
        `worked`: the caller fired some already).

        Returns (done, failed, the id of the first customer the deadline left
        out, else None): the customers before it are settled."""
        order = {rule: index for index, (rule, _due) in enumerate(plan)}
        queue = sorted(
            (pid, order[rule], rule, occasion)
            for rule, due in plan
            for pid, occasion in due.items()
        )
        done = failed = 0
        for batch in split_every(batch_size or len(queue) or 1, queue):
            if (
                deadline is not None
                and (worked or done or failed)
                and time.monotonic() > deadline
            ):
                return done, failed, batch[0][0]
            by_rule = sorted(batch, key=itemgetter(1, 0))
            for _index, items in groupby(by_rule, key=itemgetter(1)):
                items = list(items)
                ok, ko = items[0][2]._mlm_fire_batch(
                    company, {pid: occasion for pid, _i, _rule, occasion in items}
                )
                done, failed = done + ok, failed + ko
        return done, failed, None

    @api.model
    def _mlm_walk(self, company, batch_size=None, deadline=None):
        """The nightly job in `company`: plan and fire the due treatments of
        a range of contacts at a time (TREATMENT_PLAN_RANGE, bigger where few
        are due: _mlm_next_range_size), in the order of their ids, from the
        company's mlm_treatment_cursor, with no new batch once
        time.monotonic() passed `deadline` (at least one batch; the time
        spent planning does not count: the plan reads and locks nothing, the
        budget bounds how long the cards credited stay locked).

        The cursor, committed with the call, is where the next call goes on:
        a call plans only the contacts it reaches, rather than the whole
        company every call (18 s at 1,000,000 customers, for 10 s of
        treatments). A walk over every contact sets it to -1; the job sets
        it back to 0 once every company is walked. A contact who becomes due
        behind the cursor waits for the next walk (the next night, or the
        next run after this one): stage entries of a few contacts are
        treated at once anyway (_mlm_on_stage_enter).

        Returns (done, failed, whether the walk is over)."""
        cursor = max(company.sudo().mlm_treatment_cursor, 0)
        done = failed = 0
        for end, plan, seconds in self._mlm_range_plans(company, cursor):
            if deadline is not None:
                deadline += seconds
            r_done, r_failed, stopped_at = self._mlm_run_plan(
                company,
                plan,
                batch_size=batch_size,
                deadline=deadline,
                worked=bool(done or failed),
            )
            done, failed = done + r_done, failed + r_failed
            if stopped_at is not None:
                cursor = stopped_at
                break
            if end is None:
                cursor = -1
                break
            cursor = end
            # Checked before the next range is planned (the generator plans
            # it when asked for it).
            if (
                deadline is not None
                and (done or failed)
                and time.monotonic() > deadline
            ):
                break
        company.sudo().mlm_treatment_cursor = cursor
        return done, failed, cursor < 0

    @api.model
    def _mlm_range_plans(self, company, start):
        """(end, plan, seconds spent planning) of each range of the walk
        from the contact id `start`, planned when asked for: ranges of
        TREATMENT_PLAN_RANGE contacts, bigger where few are due
        (_mlm_next_range_size); the last one has an end of None."""
        size = TREATMENT_PLAN_RANGE
        while True:
            end = self._mlm_range_end(start, size)
            planned = time.monotonic()
            plan = self._mlm_plan(company, id_range=(start, end))
            yield end, plan, time.monotonic() - planned
            if end is None:
                return
            size = self._mlm_next_range_size(size, plan)
            start = end

    @api.model
    def _mlm_next_range_size(self, size, plan):
        """How many contacts the walk plans next, after a range of `size`
        contacts whose `plan` it just made (see TREATMENT_PLAN_GROWTH)."""
        due = sum(len(partners) for _rule, partners in plan)
        if due * 10 < size:
            return min(size * TREATMENT_PLAN_GROWTH, TREATMENT_PLAN_RANGE_MAX)
        return size

    @api.model
    def _mlm_range_end(self, start, size):
        """The id ending the range of `size` contacts from `start` (excluded
        from it), None if the range reaches the last contact. One walk of
        the primary key over the range."""
        self.env.cr.execute(
            SQL(
                """
                SELECT id FROM res_partner WHERE id >= %s
              ORDER BY id OFFSET %s LIMIT 1
                """,
                start,
                size,
            )
        )
        row = self.env.cr.fetchone()
        return row[0] if row else None

    def _mlm_fire_batch(self, company, due):
        """Claim the occasions `due` ({partner id: occasion}) and execute the
        actions for all of them, in one savepoint. If anything fails, the
        savepoint undoes the whole batch and each customer is fired on his
        own (_mlm_fire): one bad customer neither sinks the others nor is
        left half-treated. Returns (done, failed)."""
        self.ensure_one()
        try:
            with self.env.cr.savepoint():
                claimed = self._mlm_claim_batch(company, due)
                if claimed:
                    self._mlm_execute_batch(company, claimed)
        except Exception:
            _logger.warning(
                "Treatment %s failed for a batch of %s contacts: each is "
                "tried on his own.",
                self.id,
                len(due),
                exc_info=True,
            )
            self.env.invalidate_all()
        else:
            return len(due), 0
        done = failed = 0
        for pid in sorted(due):
            if self._mlm_fire(company, pid, due[pid]):
                done += 1
            else:
                failed += 1
        return done, failed

    def _mlm_fire(self, company, partner_id, occasion):
        """Claim the occasion in the log, then execute the actions, all in one
        savepoint: a failing action undoes the claim too, so the customer is
        neither half-treated nor skipped (the next run tries again); a claim
        already taken (a rerun) does nothing. Returns False on failure."""
        self.ensure_one()
        try:
            with self.env.cr.savepoint():
                claimed = self._mlm_claim_batch(company, {partner_id: occasion})
                if claimed:
                    self._mlm_execute_batch(company, claimed)
        except Exception:
            _logger.exception(
                "Treatment %s failed for contact %s: retried at the next run.",
                self.id,
                partner_id,
            )
            self.env.invalidate_all()
            return False
        return True

    def _mlm_claim_batch(self, company, due):
        """Claim the occasions `due` ({partner id: occasion}) in the log, one
        statement: [(partner, new log)] of those no previous (or concurrent)
        run claimed already, by partner id. The partners are in `company`
        (their stage, which the log keeps, is company-dependent)."""
        self.ensure_one()
        if not due:
            return []
        pids = sorted(due)
        partners = self.env["res.partner"].with_company(company).browse(pids)
        # One query for the stages of all of them (prefetch).
        stages = {partner.id: partner.mlm_stage_id.id or None for partner in partners}
        now = fields.Datetime.now()
        rows = self.env.execute_query(
            SQL(
                """
                INSERT INTO loyalty_mlm_treatment_log
                       (treatment_id, partner_id, occasion, date, company_id,
                        stage_id, trigger, outcome, create_uid, create_date,
                        write_uid, write_date)
                SELECT %(rule)s, p.partner_id, p.occasion, %(now)s,
                       %(company)s, p.stage_id, %(trigger)s, p.outcome,
                       %(uid)s, %(now)s, %(uid)s, %(now)s
                  FROM unnest(%(partners)s::int[], %(occasions)s::varchar[],
                              %(stages)s::int[], %(outcomes)s::varchar[])
                       AS p(partner_id, occasion, stage_id, outcome)
              ORDER BY p.partner_id
           ON CONFLICT (treatment_id, partner_id, occasion) DO NOTHING
             RETURNING id, partner_id, outcome
                """,
                rule=self.id,
                now=now,
                company=company.id,
                trigger=self.trigger,
                uid=self.env.uid,
                partners=pids,
                occasions=[due[pid] for pid in pids],
                stages=[stages[pid] for pid in pids],
                # Held out or not is decided here, when the customer would be
                # treated (a stable hash: the same answer on every run).
                outcomes=[
                    "control" if self._mlm_in_control(pid) else "done" for pid in pids
                ],
            )
        )
        Log = self.env["loyalty.mlm.treatment.log"]
        by_partner = {}
        for log_id, partner_id, outcome in rows:
            log = Log.browse(log_id)
            # What the statement wrote, known without reading it back.
            self.env.cache.insert_missing(log, Log._fields["outcome"], [outcome])
            by_partner[partner_id] = log
        return [
            (partners.browse(pid), by_partner[pid]) for pid in pids if pid in by_partner
        ]

    def _mlm_execute_batch(self, company, claimed):
        """The rule's actions for the customers `claimed` ([(partner, log)]),
        each written down on his log; set-based: one create or write per
        action for the whole batch (the mails: one batch rendering per
        distinct mail context).

        Points and coupons first, so the mails can quote them."""
        self.ensure_one()
        Log = self.env["loyalty.mlm.treatment.log"]
        claimed = [(partner.with_company(company), log) for partner, log in claimed]
        control = Log.union(*(log for _p, log in claimed if log.outcome == "control"))
        if control:
            # Held out: the occasion is claimed (logged as control, with its
            # date: the start of his measurement window) and nothing is done.
            control.write(Log._mlm_summary_vals([("control", {})]))
        treated = [(p, log) for p, log in claimed if log.outcome != "control"]
        if not treated:
            return
        partners = (
            self.env["res.partner"]
            .with_company(company)
            .union(*(partner for partner, _log in treated))
        )
        log_of = {partner.id: log for partner, log in treated}
        # What was done, as codes and values (rendered in the reader's
        # language, see OUTCOMES); the mail's values in the customer's.
        done = {pid: [] for pid in log_of}
        values = {pid: {} for pid in log_of}
        mail_ctx = {pid: {} for pid in log_of}
        if self.bonus_points:
            self._mlm_credit_points(company, partners, log_of, done, mail_ctx)
        if self.coupon_program_id and self.coupon_program_id.company_id not in (
            company,
            self.env["res.company"],
        ):
            # A rule shared by every company issues no coupon of another
            # company's programme: the customer could not use it here.
            line = (
                "no_coupon_company",
                {
                    "program": self.coupon_program_id.id,
                    "name": self.coupon_program_id.name,
                },
            )
            for lines in done.values():
                lines.append(line)
        elif self.coupon_program_id:
            coupons = self._mlm_issue_coupons(partners)
            for partner, coupon in zip(partners, coupons, strict=True):
                values[partner.id]["coupon_id"] = coupon.id
                mail_ctx[partner.id]["mlm_coupon_code"] = coupon.code
                done[partner.id].append(("coupon", {"code": coupon.code}))
        if self.tag_ids:
            partners.write({"category_id": [Command.link(t.id) for t in self.tag_ids]})
            line = (
                "tags",
                {
                    "tags": self.tag_ids.ids,
                    "name": ", ".join(self.tag_ids.mapped("name")),
                },
            )
            for lines in done.values():
                lines.append(line)
        if self.activity_type_id:
            activities = self._mlm_schedule_activities(partners)
            for partner in partners:
                activity = activities.get(partner.id)
                if activity:
                    values[partner.id]["activity_id"] = activity.id
                    done[partner.id].append(
                        (
                            "activity",
                            {
                                "user": activity.user_id.name,
                                "date": activity.date_deadline.isoformat(),
                            },
                        )
                    )
                else:
                    done[partner.id].append(("no_activity", {}))
        if self.survey_id:
            invited = partners.filtered("email")
            self._mlm_send_surveys(invited)
            line = (
                "survey",
                {"survey": self.survey_id.id, "name": self.survey_id.title},
            )
            for partner in partners:
                done[partner.id].append(
                    line if partner in invited else ("no_survey", {})
                )
        if self.mail_template_id:
            mails = self._mlm_send_mails(company, partners, mail_ctx)
            line = (
                "mail",
                {
                    "template": self.mail_template_id.id,
                    "name": self.mail_template_id.name,
                },
            )
            for partner in partners:
                if partner.id in mails:
                    values[partner.id]["mail_id"] = mails[partner.id]
                    done[partner.id].append(line)
                else:
                    done[partner.id].append(("no_mail", {}))
        # The records the lines name are the rule's own: they exist (no
        # query per line to check it).
        existing = {
            "mail.template": set(self.mail_template_id.ids),
            "survey.survey": set(self.survey_id.ids),
            "res.partner.category": set(self.tag_ids.ids),
            "loyalty.program": set(self.coupon_program_id.ids),
        }
        # One write each, flushed together (one UPDATE per set of fields).
        for pid, log in log_of.items():
            log.write(
                {**values[pid], **Log._mlm_summary_vals(done[pid], existing=existing)}
            )

    def _mlm_credit_points(self, company, partners, log_of, done, mail_ctx):
        """The rule's bonus points on the member card of each of `partners`
        (the log of each is the entry's source): one search, one batch
        posting."""
        cards = self.env["loyalty.card"].search(
            [
                ("program_id", "=", company.mlm_program_id.id),
                ("partner_id", "in", partners.ids),
            ],
            order="id",
        )
        card_of = {}
        for card in cards:
            card_of.setdefault(card.partner_id.id, card)
        self.env["loyalty.card"]._mlm_post_points_batch(
            [
                (
                    card_of[partner.id],
                    self.bonus_points,
                    "treatment",
                    log_of[partner.id],
                    self.name,
                )
                for partner in partners
                if partner.id in card_of
            ]
        )
        digits = company.mlm_program_id.mlm_points_digits
        for partner in partners:
            if partner.id not in card_of:
                done[partner.id].append(("no_points", {}))
                continue
            done[partner.id].append(
                ("points", {"points": self.bonus_points, "digits": digits})
            )
            mail_ctx[partner.id]["mlm_bonus_points"] = formatLang(
                self.with_context(lang=partner.lang).env,
                self.bonus_points,
                digits=digits,
            )

    def _mlm_issue_coupons(self, partners):
        """A coupon of the rule's programme for each of `partners` (in their
        order), as Odoo's coupon generation wizard makes them (one point buys
        the reward): one create for the coupons, one for their history."""
        # The expiry date is a date the customer reads: count the validity
        # from the local date (context_today, as Odoo shows dates), not the
        # UTC one: east of UTC, the UTC date lags a day behind around midnight.
        today = fields.Date.context_today(self)
        validity = self.coupon_validity_days
        expiration = today + timedelta(days=validity) if validity else False
        coupons = self.env["loyalty.card"].create(
            [
                {
                    "program_id": self.coupon_program_id.id,
                    "partner_id": partner.id,
                    "points": 1,
                    "expiration_date": expiration,
                }
                for partner in partners
            ]
        )
        self.env["loyalty.history"].create(
            [
                {"description": self.name, "card_id": coupon.id, "issued": 1}
                for coupon in coupons
            ]
        )
        return coupons

    def _mlm_send_mails(self, company, partners, mail_ctx):
        """The rule's mail to each of `partners` who has an email address:
        {partner id: mail.mail id}. The template is rendered in batch for
        the customers who share the same mail values (the points, in their
        language): a coupon code is each customer's own, so a coupon rule's
        mails render one by one (templates read the values from the context,
        see mail_template_id)."""
        with_email = partners.filtered("email")
        members = with_email.filtered("mlm_member_since")
        if members:
            self.env["loyalty.mlm.referral"]._mlm_ensure_referral_codes(members)
        groups = {}
        for partner in with_email:
            key = tuple(sorted(mail_ctx[partner.id].items()))
            groups.setdefault(key, []).append(partner.id)
        template = self.mail_template_id.with_company(company)
        mails = {}
        for key, pids in groups.items():
            sent = template.with_context(**dict(key)).send_mail_batch(pids)
            mails.update(zip(pids, sent.ids, strict=True))
        return mails

    def _mlm_send_surveys(self, partners):
        """Invite `partners` to the rule's survey, as the survey's Share
        wizard does: one answer record per invitation, linked to its
        partner, and one invitation wizard per language (its texts are
        rendered in it) for all the partners who read it. Returns the
        answers."""
        survey = self.survey_id.sudo()
        answers = self.env["survey.user_input"].sudo()
        if not partners:
            return answers
        template = self.env.ref(
            "survey.mail_template_user_input_invite", raise_if_not_found=False
        )
        by_lang = {}
        for partner in partners:
            by_lang.setdefault(partner.lang, []).append(partner)
        for lang, group in by_lang.items():
            invite = (
                self.env["survey.invite"]
                .sudo()
                .with_context(lang=lang)
                .create(
                    {
                        "survey_id": survey.id,
                        "partner_ids": [Command.link(p.id) for p in group],
                        "template_id": template.id if template else False,
                    }
                )
            )
            for partner in group:
                answer = survey._create_answer(partner=partner, check_attempts=False)
                invite._send_mail(answer)
                answers |= answer
        return answers

    def _mlm_schedule_activities(self, partners):
        """The rule's activity for the salesperson of each of `partners` (or
        the fallback user), with Odoo's activity_schedule: one create per
        salesperson: {partner id: activity}; none for a partner without
        anyone."""
        by_user = {}
        for partner in partners:
            user = partner.user_id or self.activity_user_id
            if user:
                by_user.setdefault(user, []).append(partner.id)
        deadline = fields.Date.context_today(self) + timedelta(
            days=self.activity_deadline_days
        )
        activities = {}
        for user, pids in by_user.items():
            # The salesperson reads the summary and the rationale: in his
            # language.
            rule = self.with_context(lang=user.lang or self.env.lang)
            scheduled = partners.browse(pids).activity_schedule(
                activity_type_id=self.activity_type_id.id,
                summary=rule.activity_summary or rule.activity_type_id.summary or "",
                note=rule.rationale or "",
                date_deadline=deadline,
                user_id=user.id,
            )
            if not scheduled:  # mail_activity_automation_skip
                return {}
            activities.update(zip(pids, scheduled, strict=True))
        return activities

    # ------------------------------------------------------------
    # Results (loyalty.mlm.measured.mixin)
    # ------------------------------------------------------------

    @api.model
    def _mlm_default_control_share(self):
        return 10.0

    @api.model
    def _mlm_measured_actions(self):
        treated = self.env["loyalty.mlm.treatment.log"]._read_group(
            [], ["treatment_id"]
        )
        return self.browse([rule.id for (rule,) in treated]).exists()

    def _mlm_result_population(self):
        """Each customer's first execution of the rule: treated or control,
        and when (the start of his window)."""
        self.ensure_one()
        self.env["loyalty.mlm.treatment.log"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT DISTINCT ON (partner_id) partner_id, date,
                       outcome = 'control'
                  FROM loyalty_mlm_treatment_log
                 WHERE treatment_id = %s
              ORDER BY partner_id, date, id
                """,
                self.id,
            )
        )
        return self.env.cr.fetchall()

    def _mlm_result_coupons(self):
        """The coupons the rule issued (its log keeps each one)."""
        return SQL(
            "c.id IN (SELECT coupon_id FROM loyalty_mlm_treatment_log"
            " WHERE treatment_id = %s AND coupon_id IS NOT NULL)",
            self.id,
        )

    def _mlm_result_cost(self, population):
        """The value of the points the rule credited."""
        self.ensure_one()
        company = self.company_id or self.env.company
        self.env["loyalty.mlm.ledger"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT COALESCE(SUM(l.points), 0)
                  FROM loyalty_mlm_ledger l
                  JOIN loyalty_mlm_treatment_log t ON t.id = l.res_id
                 WHERE l.res_model = 'loyalty.mlm.treatment.log'
                   AND l.kind = 'treatment' AND t.treatment_id = %s
                """,
                self.id,
            )
        )
        return float(self.env.cr.fetchone()[0]) * company.mlm_point_value

    # ------------------------------------------------------------
    # Crons
    # ------------------------------------------------------------

    @api.model
    def _mlm_trigger_run(self):
        """Ask the treatment job to run as soon as this transaction ends
        (once per transaction, however many bulk moves it makes)."""
        marked = self.env.cr.precommit.data
        if marked.get("loyalty_mlm.treatments_triggered"):
            return
        cron = self.env.ref("loyalty_mlm.ir_cron_treatments", raise_if_not_found=False)
        if cron:
            # sudo: triggering a system job; any user may ask for it.
            cron.sudo()._trigger()
            marked["loyalty_mlm.treatments_triggered"] = True

    @api.model
    def _cron_mlm_treatments(
        self, batch_size=TREATMENT_BATCH_SIZE, time_budget=TREATMENT_TIME_BUDGET
    ):
        """Nightly, after the stage refresh: every due treatment, resumably.

        Each call walks the companies' contacts on from where the last call
        stopped (_mlm_walk), planning and treating them in batches of
        `batch_size` until `time_budget` seconds have passed (at least one
        batch); ir.cron commits and calls again while some remain. Each
        customer's occasion is claimed in the log with his actions, so a
        rerun or a resumed run skips exactly the customers already treated
        (a killed call loses only its own uncommitted batches). A customer
        whose action fails is left for the next walk.
        """
        deadline = time.monotonic() + time_budget
        done = failed = 0
        finished = True
        companies = (
            self.env["res.company"].sudo().search([("mlm_program_id", "!=", False)])
        )
        for company in companies:
            if company.mlm_treatment_cursor < 0:
                continue  # walked already in this round
            if (done or failed) and time.monotonic() > deadline:
                finished = False
                break
            c_done, c_failed, finished = self.sudo()._mlm_walk(
                company, batch_size=batch_size, deadline=deadline
            )
            done, failed = done + c_done, failed + c_failed
            if not finished:
                break
        if finished:
            # Every company walked: the next run starts a new round.
            companies.filtered("mlm_treatment_cursor").mlm_treatment_cursor = 0
        self.env["ir.cron"]._notify_progress(
            done=done + failed, remaining=0 if finished else 1
        )
        return done

    @api.model
    def _mlm_on_stage_enter(self, partners):
        """The stage-entry treatments of `partners`, who just moved: at once for
        a few, from the treatment job for a bulk move."""
        if not partners:
            return
        if len(partners) > TREATMENT_INLINE_LIMIT or self.env.context.get(
            "mlm_defer_treatments"
        ):
            self._mlm_trigger_run()
            return
        # sudo: the treatments are the system's reaction to the move, whoever
        # caused it (a cashier's order, a manager's manual move).
        for batch in split_every(TREATMENT_INLINE_LIMIT, partners.ids):
            self.sudo()._mlm_apply(self.env.company, batch, triggers=("stage_entry",))
