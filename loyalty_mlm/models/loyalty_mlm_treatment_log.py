import re
from datetime import datetime

from odoo import _lt, api, fields, models
from odoo.tools import format_date, formatLang

# What an execution did, one line per action: stored as a code and its values
# (Done Lines), rendered in the reader's language (Done), never frozen in the
# language of whoever triggered the treatment. Values: `points` (a number,
# shown with the programme's decimals), `date` (ISO date), `template`,
# `survey` and `tags` (ids: their names in the reader's language; `name`
# keeps the name at posting for records deleted since); others as given.
OUTCOMES = {
    "control": _lt("Control group: held out, nothing sent"),
    "points": _lt("%(points)s bonus points credited"),
    "no_points": _lt("No points: not a member"),
    "coupon": _lt("Coupon %(code)s issued"),
    "no_coupon_company": _lt(
        "No coupon: the programme %(program)s belongs to another company"
    ),
    "tags": _lt("Tags added: %(tags)s"),
    "activity": _lt("Activity for %(user)s due %(date)s"),
    "no_activity": _lt("No activity: no salesperson"),
    "survey": _lt("Survey sent: %(survey)s"),
    "no_survey": _lt("No survey: no email address"),
    "mail": _lt("Mail sent: %(template)s"),
    "no_mail": _lt("No mail: no email address"),
}
# Records whose name an outcome shows in the reader's language.
OUTCOME_RECORDS = {
    "template": "mail.template",
    "survey": "survey.survey",
    "tags": "res.partner.category",
    "program": "loyalty.program",
}


class LoyaltyMlmTreatmentLog(models.Model):
    """One row per treatment executed for a customer: what was done, when.

    The row is also the claim of its occasion: UNIQUE (treatment, customer,
    occasion) means a rerun, a resumed job or a concurrent run can never
    treat a customer twice for the same stage entry or day. Written by the
    system only (see LoyaltyMlmTreatment._mlm_claim_batch).
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
    summary = fields.Text(
        string="Stored Summary",
        help="What was done, in English (the add-on's own lines); shown "
        "through Actions Taken, in the reader's language.",
    )
    summary_lines = fields.Json(
        string="Done Lines",
        readonly=True,
        help="What was done: one [code, values] pair per action (OUTCOMES).",
    )
    summary_display = fields.Text(
        string="Actions Taken",
        compute="_compute_summary_display",
        help="What was done, in your language.",
    )
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

    @api.depends("summary", "summary_lines")
    @api.depends_context("lang")
    def _compute_summary_display(self):
        # The records the lines name, read once for the whole list (one
        # query per model), not once per line.
        ids = {model: set() for model in OUTCOME_RECORDS.values()}
        for log in self:
            for _code, values in log.summary_lines or ():
                for key, model in OUTCOME_RECORDS.items():
                    value = (values or {}).get(key)
                    ids[model].update(value if isinstance(value, list) else [value])
        existing = {
            model: set(self.env[model].sudo().browse(record_ids - {None}).exists().ids)
            for model, record_ids in ids.items()
        }
        for log in self:
            log.summary_display = log._mlm_render_summary(existing=existing)

    @api.depends("treatment_id", "partner_id")
    def _compute_display_name(self):
        for log in self:
            log.display_name = (
                f"{log.treatment_id.name or ''} ({log.partner_id.display_name or ''})"
            )

    # ------------------------------------------------------------
    # Outcome lines
    # ------------------------------------------------------------

    def _mlm_render_summary(self, lang=None, existing=None):
        """This execution's lines in `lang` (default: the environment's);
        logs written before the lines had codes show their stored text.
        `existing`: {model: ids known to exist} (see _mlm_render_line)."""
        self.ensure_one()
        if not self.summary_lines:
            return self.summary or ""
        env = self.with_context(lang=lang or self.env.lang or "en_US").env
        return "\n".join(
            self._mlm_render_line(env, code, values, existing)
            for code, values in self.summary_lines
        )

    @api.model
    def _mlm_render_line(self, env, code, values, existing=None):
        """One line in env's language; records it names that no longer
        exist show the name they had. `existing`: {model: ids known to
        exist}, read for a whole list at once; else one query here."""
        template = OUTCOMES.get(code)
        if not template:
            return ""
        lang = env.lang or "en_US"
        values = dict(values or {})
        for key, model in OUTCOME_RECORDS.items():
            if key not in values:
                continue
            ids = values[key] if isinstance(values[key], list) else [values[key]]
            records = env[model].sudo().browse(ids)
            if existing is None:
                records = records.exists()
            else:
                records = records.filtered(lambda r, m=model: r.id in existing[m])
            names = records.mapped("title" if model == "survey.survey" else "name")
            values[key] = ", ".join(names) if names else values.get("name", "")
        if "points" in values:
            values["points"] = formatLang(
                env, float(values["points"]), digits=values.get("digits", 2)
            )
        if values.get("date"):
            values["date"] = format_date(env, values["date"], lang_code=lang)
        try:
            return template._translate(lang) % values
        except (KeyError, TypeError, ValueError):
            return ""

    @api.model
    def _mlm_summary_vals(self, lines, existing=None):
        """{summary_lines, summary} to store for `lines` ([(code, values)]):
        the codes and values, and the English text. `existing`: see
        _mlm_render_line (a batch knows the records its lines name)."""
        lines = [[code, values] for code, values in lines]
        env = self.with_context(lang="en_US").env
        return {
            "summary_lines": lines,
            "summary": "\n".join(
                self._mlm_render_line(env, code, values, existing)
                for code, values in lines
            ),
        }

    @api.model
    def _mlm_backfill_summary_lines(self):
        """Logs written before their lines had codes stored them as text in
        the poster's language: give each line its code and values back
        (matched in every installed language), so that they render in the
        reader's. A log with a line that matches nothing keeps its text.
        Returns the number of logs changed."""
        langs = {
            "en_US",
            *(code for code, _name in self.env["res.lang"].get_installed()),
        }
        patterns = []
        for code, template in OUTCOMES.items():
            for text in {template._translate(lang) for lang in langs}:
                regex = re.sub(r"%\\\((\w+)\\\)s", r"(?P<\1>.+?)", re.escape(str(text)))
                patterns.append((code, re.compile(f"^{regex}$")))
        # The texts before named placeholders ("Mail sent: %s").
        patterns += [
            (code, re.compile(regex))
            for code, regex in (
                ("points", r"^(?P<points>[\d.,]+) bonus points credited$"),
                ("coupon", r"^Coupon (?P<code>\S+) issued$"),
            )
        ]
        changed = 0
        logs = self.search([("summary_lines", "=", False), ("summary", "!=", False)])
        for log in logs:
            lines = []
            for text in log.summary.splitlines():
                line = next(
                    (
                        (code, match.groupdict())
                        for code, pattern in patterns
                        for match in [pattern.match(text)]
                        if match
                    ),
                    None,
                )
                line = line and self._mlm_backfill_values(*line)
                if line is None:
                    break
                lines.append(line)
            else:
                log.write(self._mlm_summary_vals(lines))
                changed += 1
        return changed

    @api.model
    def _mlm_backfill_values(self, code, values):
        """(code, values) as _mlm_execute_batch stores them, from values read back
        out of a text (names as names: no id to find them by again), or None
        when a number or date cannot be read back."""
        values = dict(values)
        for key in OUTCOME_RECORDS:
            if key in values:
                values["name"] = values.pop(key)
                values[key] = []
        if "points" in values:
            try:
                values["points"] = float(values["points"].replace(",", "."))
            except ValueError:
                return None
            values["digits"] = 0 if values["points"].is_integer() else 2
        if "date" in values:
            formats = {
                lang.date_format
                for lang in self.env["res.lang"].search([("active", "=", True)])
            }
            for date_format in formats:
                try:
                    day = datetime.strptime(values["date"], date_format).date()
                except ValueError:
                    continue
                values["date"] = day.isoformat()
                break
            else:
                return None
        return (code, values)
