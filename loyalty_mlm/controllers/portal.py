from datetime import date, timedelta

from odoo import _, fields
from odoo.exceptions import UserError, ValidationError
from odoo.http import request, route

from odoo.addons.auth_signup.controllers.main import AuthSignupHome
from odoo.addons.portal.controllers.portal import CustomerPortal
from odoo.addons.portal.controllers.portal import pager as portal_pager

# Ledger entries per page of the member's history.
HISTORY_STEP = 20
# Windows of "points expiring soon" on the member's page (days).
EXPIRY_WINDOWS = (30, 90)
# The back office's colour indexes (tier colour) as CSS colours: the portal
# does not load the backend's colour classes.
TIER_COLORS = (
    "#6c757d",
    "#f06050",
    "#f4a460",
    "#f7cd1f",
    "#6cc1ed",
    "#814968",
    "#eb7e7f",
    "#2c8397",
    "#475577",
    "#d6145f",
    "#30c381",
    "#9365b8",
)
# Key of the referral code a visitor brought with a share link (/join/<code>).
SESSION_REFERRAL = "mlm_referral_code"


def mlm_portal_company():
    """The company whose programme the logged-in portal user sees: the
    request's, if it is one of the user's companies, else the user's own."""
    user = request.env.user
    company = request.env.company
    company = company if company in user.company_ids else user.company_id
    # sudo: its member programme, rewards and tiers are the company's
    # settings, which portal users cannot read.
    return company.sudo()


def mlm_portal_member(company=None):
    """(partner, card) of the logged-in user in `company`'s member
    programme, sudo (the member reads their own card, no one else's); the
    card is empty when the user is no member."""
    company = company or mlm_portal_company()
    partner = request.env.user.partner_id.sudo().with_company(company)
    card = request.env["loyalty.card"].sudo().browse()
    if company.mlm_program_id and partner.mlm_member_since:
        card = partner.mlm_card_id
    return partner, card


def mlm_stage_messages():
    """What the member's page says in each lifecycle stage (by stage code)."""
    return {
        "acquisition": _(
            "Welcome! Every order earns points: spend them on the rewards below."
        ),
        "onboarding": _(
            "You just joined: every order earns points, and once you have "
            "enough you choose a reward at checkout or at the register."
        ),
        "growth": _(
            "You are getting the most out of your membership: keep earning to "
            "reach the next tier."
        ),
        "ambassadorship": _(
            "Thank you for bringing your friends along! Share your link: you "
            "both get a bonus on their first order."
        ),
        "retention": _(
            "Good to see you again: your points are waiting for you, spend "
            "them before they expire."
        ),
        "winback": _(
            "We miss you! Your points are still here: come back and spend them "
            "on a reward."
        ),
    }


class MlmCustomerPortal(CustomerPortal):
    # ------------------------------------------------------------
    # /my home: the loyalty card, and the sidebar's loyalty cards
    # ------------------------------------------------------------

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if counters:
            return values
        company = mlm_portal_company()
        program = company.mlm_program_id
        if not program:
            return values
        partner, card = mlm_portal_member(company)
        values["mlm_home"] = {
            "member": bool(card),
            "points": card.points,
            "digits": program.mlm_points_digits,
            "tier": partner.mlm_tier_id.name if card else "",
        }
        # Odoo's loyalty lists every card in the sidebar, each with "a reward
        # is waiting": our block shows the member programme; other
        # programmes' cards are summed up in one line. The template splits
        # them (loyalty's values may be set after ours).
        values["mlm_other_cards"] = lambda cards: [
            (program_, card_)
            for program_, cards_ in (cards or {}).items()
            if program_ != program
            for card_ in cards_
        ]
        return values

    # ------------------------------------------------------------
    # /my/loyalty
    # ------------------------------------------------------------

    def _mlm_history_kinds(self):
        Ledger = request.env["loyalty.mlm.ledger"]
        return dict(Ledger._fields["kind"]._description_selection(request.env))

    def _mlm_expiring(self, card):
        """[(date, points)] of the lots expiring within the longest window,
        and {days: total} per window."""
        today = fields.Date.context_today(card)
        groups = (
            request.env["loyalty.mlm.ledger"]
            .sudo()
            ._read_group(
                [
                    ("card_id", "=", card.id),
                    ("remaining", ">", 0),
                    ("expiry_date", ">=", today),
                    ("expiry_date", "<=", today + timedelta(days=max(EXPIRY_WINDOWS))),
                ],
                ["expiry_date:day"],
                ["remaining:sum"],
                order="expiry_date:day",
            )
        )
        totals = {
            days: sum(
                points for day, points in groups if day <= today + timedelta(days=days)
            )
            for days in EXPIRY_WINDOWS
        }
        return groups, totals

    def _mlm_tier_progress(self, partner, company):
        """The member's tier, the next one and what is missing to reach it."""
        tier = partner.mlm_tier_id
        ladder = request.env["loyalty.mlm.tier"]._mlm_ladder(company)
        value = partner.mlm_tier_value
        rank = ladder._mlm_rank(tier)
        higher = [
            next_tier
            for position, next_tier in enumerate(ladder)
            if position > rank and next_tier.threshold > value
        ]
        following = higher[0] if higher else ladder.browse()
        progress = {
            "tier": tier,
            "color": TIER_COLORS[(tier.color or 0) % len(TIER_COLORS)],
            "next": following,
            "metric": company.mlm_tier_metric,
            "value": value,
            "missing": following.threshold - value if following else 0.0,
            "percent": (
                min(100, int(100 * value / following.threshold))
                if following and following.threshold
                else 100
            ),
            "currency": company.currency_id,
        }
        if following and not following.benefits and following.multiplier > 1:
            progress["next_benefits"] = _(
                "%(percent)s%% more points on every order",
                percent=round((following.multiplier - 1) * 100),
            )
        else:
            progress["next_benefits"] = following.benefits or ""
        return progress

    def _mlm_loyalty_values(self, page=1, kind=None, **kwargs):
        company = mlm_portal_company()
        program = company.mlm_program_id
        partner, card = mlm_portal_member(company)
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "mlm_loyalty",
                "mlm_company": company,
                "mlm_program": program,
                "mlm_partner": partner,
                "mlm_card": card,
                "mlm_can_join": bool(program and company.mlm_portal_self_enroll),
                "mlm_error": kwargs.get("error"),
                "mlm_notice": kwargs.get("notice"),
            }
        )
        if not card:
            return values
        lang = request.env.user.lang or request.env.lang
        Ledger = request.env["loyalty.mlm.ledger"].sudo().with_context(lang=lang)
        kinds = self._mlm_history_kinds()
        kind = kind if kind in kinds else None
        domain = [("partner_id", "=", partner.id), ("program_id", "=", program.id)]
        if kind:
            domain.append(("kind", "=", kind))
        total = Ledger.search_count(domain)
        pager = portal_pager(
            url="/my/loyalty",
            url_args={"kind": kind} if kind else {},
            total=total,
            page=page,
            step=HISTORY_STEP,
        )
        entries = Ledger.search(
            domain,
            limit=HISTORY_STEP,
            offset=pager["offset"],
            order="date desc, id desc",
        )
        expiring, expiring_totals = self._mlm_expiring(card)
        stage = partner.commercial_partner_id.with_company(company).mlm_stage_id
        rewards = program.reward_ids.sorted("required_points")
        values.update(
            {
                "mlm_digits": program.mlm_points_digits,
                "mlm_entries": entries,
                "mlm_kinds": kinds,
                "mlm_kind": kind,
                "pager": pager,
                "mlm_expiring": expiring,
                "mlm_expiring_totals": expiring_totals,
                "mlm_tier": self._mlm_tier_progress(partner, company),
                "mlm_stage": stage,
                "mlm_stage_message": mlm_stage_messages().get(stage.code, ""),
                "mlm_rewards": rewards,
                "mlm_charities": request.env["res.partner"]
                .sudo()
                .search(
                    [
                        ("mlm_is_charity", "=", True),
                        ("company_id", "in", [company.id, False]),
                    ],
                    order="name",
                ),
                "mlm_share_url": f"{partner.get_base_url()}/join/"
                f"{partner.mlm_referral_code or ''}",
            }
        )
        return values

    @route(
        ["/my/loyalty", "/my/loyalty/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_mlm_loyalty(self, page=1, kind=None, **kwargs):
        values = self._mlm_loyalty_values(page=page, kind=kind, **kwargs)
        return request.render("loyalty_mlm.portal_my_loyalty", values)

    def _mlm_render_error(self, error):
        values = self._mlm_loyalty_values(error=error)
        return request.render("loyalty_mlm.portal_my_loyalty", values)

    @route("/my/loyalty/statement", type="http", auth="user", website=True)
    def portal_mlm_statement(self, **kwargs):
        """The member's own Points Statement (no id: nobody else's)."""
        company = mlm_portal_company()
        partner, card = mlm_portal_member(company)
        if not card:
            return request.redirect("/my/loyalty")
        # sudo: the report is for loyalty staff; the member prints their own.
        report = request.env["ir.actions.report"].sudo().with_company(company)
        pdf, report_type = report._render_qweb_pdf(
            "loyalty_mlm.loyalty_mlm_statement_report", [partner.id]
        )
        mimetype = "application/pdf" if report_type == "pdf" else "text/html"
        return request.make_response(
            pdf,
            headers=[
                ("Content-Type", mimetype),
                ("Content-Length", len(pdf)),
                (
                    "Content-Disposition",
                    f'inline; filename="points-statement.{report_type}"',
                ),
            ],
        )

    @route(
        "/my/loyalty/donate", type="http", auth="user", methods=["POST"], website=True
    )
    def portal_mlm_donate(self, charity_id=None, points=None, **kwargs):
        """The member gives points to a charity: the back office's rules
        (loyalty.mlm.donation.wizard._mlm_donate), on their own card only."""
        company = mlm_portal_company()
        partner, card = mlm_portal_member(company)
        if not card:
            return request.redirect("/my/loyalty")
        try:
            charity_id = int(charity_id or 0)
        except ValueError:
            charity_id = 0
        charity = request.env["res.partner"].sudo().browse(charity_id).exists()
        if not charity or (charity.company_id and charity.company_id != company):
            return self._mlm_render_error(_("Choose a charity from the list."))
        try:
            with request.env.cr.savepoint():
                request.env["loyalty.mlm.donation.wizard"].sudo().with_company(
                    company
                )._mlm_donate(partner, charity, points)
        except (UserError, ValidationError) as error:
            return self._mlm_render_error(error.args[0])
        return request.redirect("/my/loyalty?notice=donated")

    @route(
        "/my/loyalty/birthday", type="http", auth="user", methods=["POST"], website=True
    )
    def portal_mlm_birthday(self, birthdate=None, **kwargs):
        company = mlm_portal_company()
        partner, card = mlm_portal_member(company)
        if not card:
            return request.redirect("/my/loyalty")
        try:
            day = fields.Date.to_date(birthdate) if birthdate else False
        except ValueError:
            day = None
        today = fields.Date.context_today(partner)
        if day is None or (day and not (date(1900, 1, 1) <= day <= today)):
            return self._mlm_render_error(_("Enter your birthday as a past date."))
        partner.mlm_birthdate = day
        return request.redirect("/my/loyalty?notice=birthday")

    @route("/my/loyalty/join", type="http", auth="user", methods=["POST"], website=True)
    def portal_mlm_join(self, **kwargs):
        """Self-enrolment, when the company allows it (Settings)."""
        company = mlm_portal_company()
        partner, card = mlm_portal_member(company)
        if card or not (company.mlm_program_id and company.mlm_portal_self_enroll):
            return request.redirect("/my/loyalty")
        request.env["loyalty.card"].sudo()._mlm_enroll(partner, company)
        return request.redirect("/my/loyalty?notice=joined")

    # ------------------------------------------------------------
    # Share link: /join/<code> (Odoo's link tracker owns /r/<code>, its
    # short links: a member's code must never open a marketing link)
    # ------------------------------------------------------------

    @route(
        "/join/<string:code>", type="http", auth="public", website=True, sitemap=False
    )
    def portal_mlm_referral_link(self, code, **kwargs):
        """A member's public share link: it shows their first name only and
        keeps the code for the visitor's signup or first order."""
        code = (code or "").strip().upper()[:64]
        referrer = (
            request.env["res.partner"]
            .sudo()
            .search([("mlm_referral_code", "=", code)], limit=1)
            if code
            else request.env["res.partner"]
        )
        if referrer:
            request.session[SESSION_REFERRAL] = code
        values = {
            "mlm_code": code if referrer else "",
            "mlm_first_name": (referrer.name or "").split()[0] if referrer else "",
            "mlm_signup": request.env["res.users"].sudo()._get_signup_invitation_scope()
            == "b2c"
            and request.env.user._is_public(),
            "mlm_shop": "website_sale" in request.env.registry._init_modules,
        }
        return request.render("loyalty_mlm.portal_referral_link", values)


class MlmAuthSignupHome(AuthSignupHome):
    def do_signup(self, qcontext):
        """A visitor who came through a member's share link is referred by
        that member when they sign up (the code of /join/<code>)."""
        super().do_signup(qcontext)
        code = request.session.get(SESSION_REFERRAL)
        login = qcontext.get("login")
        if not code or not login:
            return
        user = request.env["res.users"].sudo().search([("login", "=", login)], limit=1)
        apply_session_referral(user.partner_id, code)


def apply_session_referral(partner, code):
    """Link `partner` to the member whose referral code is `code`, if they
    have no referrer yet and are no member: a stale or own code is ignored
    (the visitor did not type it)."""
    partner = partner.sudo()
    if not partner or partner.mlm_referrer_id or partner.mlm_member_since:
        return False
    try:
        with request.env.cr.savepoint():
            partner.mlm_referrer_code = code
            partner.flush_recordset()
    except (UserError, ValidationError):
        return False
    request.session.pop(SESSION_REFERRAL, None)
    return True
