from unittest.mock import patch

from odoo import Command, fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tools import SQL

from .common import LoyaltyMlmCommon, LoyaltyMlmPosCommon, post_migrate
from .test_stages import StageCase

# Models whose write() refuses every change before any access check.
APPEND_ONLY = ("loyalty.mlm.ledger", "loyalty.mlm.ledger.allocation")


class MultiCompanyCase(StageCase, LoyaltyMlmCommon):
    """Two companies and customers shared between them.

    ==========  ==================================================
    company     company A (the test company, member programme)
    company_b   company B (own member programme "B Members")
    user_b      Loyalty Manager of company B only
    ==========  ==================================================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_b = cls.env["res.company"].create({"name": "Shop B"})
        cls.program_b = cls.env["loyalty.program"].create(
            {
                "name": "B Members",
                "program_type": "loyalty",
                "company_id": cls.company_b.id,
                "rule_ids": [
                    Command.clear(),
                    Command.create(
                        {"reward_point_mode": "money", "reward_point_amount": 1}
                    ),
                ],
                "reward_ids": [
                    Command.clear(),
                    Command.create(
                        {
                            "reward_type": "discount",
                            "discount_mode": "per_point",
                            "discount": 0.01,
                            "required_points": 10,
                        }
                    ),
                ],
            }
        )
        cls.company_b.mlm_program_id = cls.program_b
        cls.user_b = new_test_user(
            cls.env,
            login="mlm_manager_b",
            groups="loyalty_mlm.group_loyalty_mlm_manager,sales_team.group_sale_manager",
            company_id=cls.company_b.id,
            company_ids=[Command.set(cls.company_b.ids)],
        )
        cls.user_manager.company_ids |= cls.company_b
        cls.Stage = cls.env["loyalty.mlm.stage"]
        cls.companies = cls.company | cls.company_b

    def order_in(self, company, partner, days_ago):
        """A confirmed sale order of `partner` in `company`, `days_ago` old."""
        order = (
            self.env["sale.order"]
            .with_company(company)
            .create(
                {
                    "partner_id": partner.id,
                    "company_id": company.id,
                    "order_line": [
                        Command.create(
                            {"product_id": self.product.id, "price_unit": 50.0}
                        )
                    ],
                }
            )
        )
        order.action_confirm()
        order.date_order = self.days_ago(days_ago)
        return order

    def stage_in(self, company, partner):
        return partner.with_company(company).mlm_stage_id.code or False

    def moves(self, partners):
        return self.env["loyalty.mlm.stage.history"].search_count(
            [("partner_id", "in", partners.ids)]
        )


@tagged("post_install", "-at_install")
class TestMultiCompanyStages(MultiCompanyCase):
    def test_nightly_runs_give_stable_per_company_stages(self):
        """A customer of both companies has each company's stage; a customer
        of A only has no stage in B; a second night moves nobody."""
        shared = self.env["res.partner"].create({"name": "Shared", "customer_rank": 1})
        self.order_in(self.company, shared, 400)
        self.order_in(self.company, shared, 200)
        self.order_in(self.company_b, shared, 10)
        only_a = self.env["res.partner"].create({"name": "Only A", "customer_rank": 1})
        for days in (300, 200, 100, 30):
            self.order_in(self.company, only_a, days)
        partners = shared | only_a
        self.Stage._mlm_refresh_all_stages(self.companies)
        self.assertEqual(self.stage_in(self.company, shared), "winback")
        self.assertEqual(self.stage_in(self.company_b, shared), "onboarding")
        self.assertEqual(self.stage_in(self.company, only_a), "growth")
        self.assertFalse(self.stage_in(self.company_b, only_a))
        # Each move is logged in its company; the form shows the current one's.
        history = shared.with_company(self.company_b).mlm_stage_history_ids
        self.assertEqual(history.company_id, self.company_b)
        self.assertEqual(history.to_stage_id.mapped("code"), ["onboarding"])
        self.assertTrue(shared.with_company(self.company).mlm_stage_date)
        moves = self.moves(partners)
        self.assertEqual(self.Stage._mlm_refresh_all_stages(self.companies), 0)
        self.assertEqual(self.moves(partners), moves)
        # Either company's order order moves its stage only.
        self.order_in(self.company, shared, 0)
        self.assertEqual(self.stage_in(self.company, shared), "growth")
        self.assertEqual(self.stage_in(self.company_b, shared), "onboarding")

    def test_contacts_and_kanban_show_the_current_company(self):
        shared = self.env["res.partner"].create({"name": "Shared", "customer_rank": 1})
        self.order_in(self.company, shared, 400)
        self.order_in(self.company_b, shared, 10)
        self.Stage._mlm_refresh_all_stages(self.companies)
        winback = self.env.ref("loyalty_mlm.stage_winback")
        Partner = self.env["res.partner"]
        self.assertIn(shared, Partner.search([("mlm_stage_id", "=", winback.id)]))
        self.assertNotIn(
            shared,
            Partner.with_company(self.company_b).search(
                [("mlm_stage_id", "=", winback.id)]
            ),
        )
        groups = dict(
            Partner.with_company(self.company_b)._read_group(
                [("id", "=", shared.id)], ["mlm_stage_id"], ["__count"]
            )
        )
        self.assertEqual(list(groups), [self.env.ref("loyalty_mlm.stage_onboarding")])

    def test_prospect_is_every_companys_until_he_buys(self):
        """A shared contact who is nobody's customer yet is in Acquisition in
        every company; his first order makes him that company's customer
        only: the other company clears his stage."""
        prospect = self.env["res.partner"].create(
            {"name": "Prospect", "customer_rank": 1}
        )
        self.Stage._mlm_refresh_all_stages(self.companies)
        self.assertEqual(self.stage_in(self.company, prospect), "acquisition")
        self.assertEqual(self.stage_in(self.company_b, prospect), "acquisition")
        self.order_in(self.company, prospect, 1)
        self.Stage._mlm_refresh_all_stages(self.companies)
        self.assertEqual(self.stage_in(self.company, prospect), "onboarding")
        self.assertFalse(self.stage_in(self.company_b, prospect))
        self.assertFalse(prospect.with_company(self.company_b).mlm_stage_date)
        self.assertEqual(self.Stage._mlm_refresh_all_stages(self.companies), 0)

    def test_member_who_buys_elsewhere_keeps_his_stage(self):
        """A shared contact with company A's member card who buys in B only
        is both companies' customer. Membership and other companies' orders
        are looked up per contact, not tested with IN a list: under an OR,
        PostgreSQL reads such a list again for every contact once it expects
        it not to fit in memory (issue #22)."""
        member = self.env["res.partner"].create({"name": "Member", "customer_rank": 1})
        self.env["loyalty.card"].create(
            {"program_id": self.company.mlm_program_id.id, "partner_id": member.id}
        )
        self.order_in(self.company_b, member, 1)
        self.Stage._mlm_refresh_all_stages(self.companies)
        self.assertEqual(self.stage_in(self.company, member), "acquisition")
        self.assertEqual(self.stage_in(self.company_b, member), "onboarding")
        # EXISTS per contact: PostgreSQL hashes the answers when they fit in
        # memory, and looks each contact up by index when they do not;
        # never a list read again for every contact.
        query = self.Stage._mlm_lifecycle_query(self.company, fields.Date.today())
        self.env.cr.execute(SQL("EXPLAIN %s", query))
        plan = "\n".join(row[0] for row in self.env.cr.fetchall())
        self.assertNotIn("CTE Scan", plan)

    def test_manual_stage_and_lock_are_per_company(self):
        shared = self.env["res.partner"].create({"name": "Shared", "customer_rank": 1})
        self.order_in(self.company, shared, 400)
        self.order_in(self.company_b, shared, 10)
        self.Stage._mlm_refresh_all_stages(self.companies)
        growth = self.env.ref("loyalty_mlm.stage_growth")
        growth.with_user(self.user_b).with_company(self.company_b)._mlm_set_manually(
            shared,
            "By hand in B",
            locked_until=fields.Date.context_today(self.Stage),
        )
        self.assertEqual(self.stage_in(self.company_b, shared), "growth")
        self.assertEqual(self.stage_in(self.company, shared), "winback")
        self.assertFalse(shared.with_company(self.company).mlm_stage_locked_until)
        self.assertEqual(self.Stage._mlm_refresh_all_stages(self.companies), 0)
        self.assertEqual(self.stage_in(self.company_b, shared), "growth")


@tagged("post_install", "-at_install")
class TestMultiCompanyTreatments(MultiCompanyCase):
    def setUp(self):
        super().setUp()
        self.env.cr.precommit.data.pop("loyalty_mlm.treatments_triggered", None)
        Treatment = self.env["loyalty.mlm.treatment"]
        Treatment.with_context(active_test=False).search([]).write({"active": False})
        self.tag = self.env["res.partner.category"].create({"name": "Welcomed"})
        self.coupons_a = self.env["loyalty.program"].create(
            {
                "name": "A coupons",
                "program_type": "coupons",
                "company_id": self.company.id,
                "active": True,
            }
        )
        self.rule = Treatment.create(
            {
                "name": "Welcome",
                "stage_ids": [
                    Command.link(self.env.ref("loyalty_mlm.stage_onboarding").id)
                ],
                "trigger": "stage_entry",
                "tag_ids": [Command.link(self.tag.id)],
                "coupon_program_id": self.coupons_a.id,
                "mlm_control_share": 0,
                "date_start": fields.Datetime.now(),
            }
        )

    def logs(self, partner):
        return self.env["loyalty.mlm.treatment.log"].search(
            [("partner_id", "=", partner.id)]
        )

    def test_treatments_per_company(self):
        only_a = self.env["res.partner"].create({"name": "Only A", "customer_rank": 1})
        shared = self.env["res.partner"].create({"name": "Shared", "customer_rank": 1})
        self.order_in(self.company, only_a, 0)
        self.order_in(self.company, shared, 0)
        self.order_in(self.company_b, shared, 0)
        Treatment = self.env["loyalty.mlm.treatment"].sudo()
        ids = (only_a | shared).ids
        for company in self.companies:
            Treatment._mlm_apply(company, ids)
        self.assertEqual(self.logs(only_a).company_id, self.company)
        self.assertEqual(len(self.logs(only_a)), 1)
        logs = self.logs(shared)
        self.assertEqual(logs.company_id, self.companies)
        self.assertEqual(len(logs), 2)
        # Company A's coupon programme is not used by company B's run.
        log_b = logs.filtered(lambda log: log.company_id == self.company_b)
        self.assertFalse(log_b.coupon_id)
        self.assertIn("another company", log_b.summary)
        log_a = logs - log_b
        self.assertEqual(log_a.coupon_id.program_id, self.coupons_a)
        # A second night treats nobody again.
        for company in self.companies:
            self.assertEqual(Treatment._mlm_apply(company, ids), (0, 0, 0))
        self.assertEqual(len(self.logs(shared)), 2)
        # The contact shows the current company's next action and log.
        self.assertEqual(
            shared.with_company(self.company_b).mlm_treatment_log_ids, log_b
        )

    def test_the_job_walks_each_company_once_a_round(self):
        """Calls of the treatment job go on with the company they stopped in,
        and a company walked to its end is not walked again until every
        company is (a round); then every cursor starts over."""
        customers = self.env["res.partner"].create(
            [{"name": f"Walked {i}", "customer_rank": 1} for i in range(3)]
        )
        self.rule.active = False  # no stage-entry treatment at the orders
        for partner in customers:
            self.order_in(self.company, partner, 0)
            self.order_in(self.company_b, partner, 0)
        Treatment = self.env["loyalty.mlm.treatment"]
        Treatment.create(
            {
                "name": "Daily tag",
                "trigger": "periodic",
                "cooldown_days": 1,
                "tag_ids": [Command.link(self.tag.id)],
                "mlm_control_share": 0,
            }
        )
        companies = (
            self.env["res.company"].sudo().search([("mlm_program_id", "!=", False)])
        )
        self.assertLessEqual(self.companies, companies)
        companies.mlm_treatment_cursor = 0
        walk = type(Treatment)._mlm_walk
        walks = []

        def walking(model, company, **kwargs):
            result = walk(model, company, **kwargs)
            walks.append((len(calls), company, result[2]))
            return result

        calls = []
        with patch.object(type(Treatment), "_mlm_walk", walking):
            while True:
                calls.append(
                    Treatment._cron_mlm_treatments(batch_size=1, time_budget=0)
                )
                if not any(companies.mapped("mlm_treatment_cursor")):
                    break
                self.assertLess(len(calls), 50)
        for company in companies:
            mine = [(call, over) for call, walked, over in walks if walked == company]
            # Walked in consecutive calls, the last of them to its end.
            self.assertEqual([over for _call, over in mine][-1:], [True])
            self.assertFalse(any(over for _call, over in mine[:-1]))
        # (the demo customers with a stage are treated too)
        self.assertGreaterEqual(sum(calls), 6)
        for partner in customers:
            logs = self.logs(partner)
            self.assertEqual(len(logs), 2)
            self.assertEqual(logs.company_id, self.companies)


@tagged("post_install", "-at_install")
class TestMultiCompanyAccess(MultiCompanyCase):
    """A Loyalty Manager of company B only is refused company A's rows of
    every add-on model that holds company data."""

    # model: how its company-A rows are found (sudo)
    COMPANY_MODELS = {
        "loyalty.mlm.ledger": "company_id",
        "loyalty.mlm.ledger.allocation": "entry_id.company_id",
        "loyalty.mlm.partner.score": "company_id",
        "loyalty.mlm.score.run": "company_id",
        "loyalty.mlm.stage.history": "company_id",
        "loyalty.mlm.tier": "company_id",
        "loyalty.mlm.tier.history": "company_id",
        "loyalty.mlm.treatment": "company_id",
        "loyalty.mlm.treatment.log": "company_id",
        "loyalty.mlm.campaign": "company_id",
        "loyalty.mlm.kpi.snapshot": "company_id",
        "loyalty.mlm.score.quality": "company_id",
        "loyalty.mlm.goal": "company_id",
        "loyalty.mlm.action.result": "company_id",
        "loyalty.mlm.expiry.reminder": "company_id",
        "loyalty.mlm.donation.report": "company_id",
    }

    def test_every_model_is_covered(self):
        """Every stored model of the add-on with a company is in the list (a
        new model must get its rule and be added here)."""
        models = self.env["ir.model"].search(
            [("modules", "ilike", "loyalty_mlm"), ("transient", "=", False)]
        )
        with_company = {
            model.model
            for model in models
            if model.model.startswith("loyalty.mlm.")
            and "company_id" in self.env[model.model]._fields
            and not self.env[model.model]._abstract
        }
        self.assertEqual(
            with_company - set(self.COMPANY_MODELS) - {"loyalty.mlm.ledger.allocation"},
            set(),
        )

    def test_company_b_user_is_refused_company_a_rows(self):
        # Company A's data, made by its own flows.
        partner = self.env["res.partner"].create({"name": "A member"})
        partner._mlm_enroll(self.company)
        card = self.card_of(partner)
        card._mlm_post_points(100, "adjustment", reason="Gift")
        card._mlm_post_points(-30, "adjustment", reason="Spent")
        self.order_in(self.company, partner, 0)
        Score = self.env["loyalty.mlm.partner.score"]
        while Score._cron_refresh_scores(companies=self.company, time_budget=3600):
            pass
        self.Stage._mlm_refresh_all_stages(self.company)
        tier = self.env["loyalty.mlm.tier"].create(
            {"name": "A Gold", "company_id": self.company.id, "threshold": 1}
        )
        self.env["loyalty.mlm.tier"]._mlm_tier_upgrade(partner, self.company)
        rule = self.env["loyalty.mlm.treatment"].create(
            {
                "name": "A rule",
                "company_id": self.company.id,
                "trigger": "periodic",
                "tag_ids": [Command.create({"name": "A tag"})],
                "mlm_control_share": 0,
            }
        )
        self.env["loyalty.mlm.treatment"].sudo()._mlm_apply(self.company, partner.ids)
        self.env["loyalty.mlm.campaign"].create(
            {
                "name": "A campaign",
                "company_id": self.company.id,
                "date_start": fields.Datetime.now(),
                "date_end": fields.Datetime.now(),
            }
        )
        self.env["loyalty.mlm.kpi.snapshot"]._mlm_backfill(self.company, months=1)
        self.env["loyalty.mlm.score.quality"]._cron_compute_score_quality(self.company)
        self.env["loyalty.mlm.action.result"].sudo()._mlm_refresh(rule)
        self.env.flush_all()
        checked = []
        for model, path in self.COMPANY_MODELS.items():
            rows = self.env[model].sudo().search([(path, "=", self.company.id)])
            if not rows:
                continue
            checked.append(model)
            as_b = self.env[model].with_user(self.user_b)
            with self.subTest(model=model):
                self.assertFalse(as_b.search([("id", "in", rows.ids)]))
                with self.assertRaises(AccessError):
                    as_b.browse(rows[0].id).read(["display_name"])
                # The append-only models refuse every write, rules or not.
                refused = UserError if model in APPEND_ONLY else AccessError
                with self.assertRaises(refused):
                    as_b.browse(rows[0].id).write(
                        {"create_date": fields.Datetime.now()}
                    )
                if model == "loyalty.mlm.donation.report":
                    continue  # an SQL view: nobody creates rows
                vals = rows[0].copy_data()[0]
                with self.assertRaises(AccessError):
                    as_b.create(vals)
        # Every model with company data was really checked.
        self.assertEqual(
            set(self.COMPANY_MODELS)
            - set(checked)
            - {
                "loyalty.mlm.goal",
                "loyalty.mlm.expiry.reminder",
                "loyalty.mlm.donation.report",
            },
            set(),
        )
        self.assertIn(tier, self.env["loyalty.mlm.tier"].search([]))

    def test_shared_configuration_needs_every_company(self):
        stage = self.env.ref("loyalty_mlm.stage_growth")
        with self.assertRaises(AccessError):
            stage.with_user(self.user_b).name = "Growing"
        stage.with_user(self.user_manager).name = "Growing"
        self.assertEqual(stage.name, "Growing")
        shared_tier = self.env["loyalty.mlm.tier"].create(
            {"name": "Shared Silver", "threshold": 12345}
        )
        with self.assertRaises(AccessError):
            shared_tier.with_user(self.user_b).threshold = 5
        with self.assertRaises(AccessError):
            self.env["loyalty.mlm.tier"].with_user(self.user_b).create(
                {"name": "No company", "threshold": 12346}
            )
        own = (
            self.env["loyalty.mlm.tier"]
            .with_user(self.user_b)
            .create(
                {
                    "name": "B Silver",
                    "company_id": self.company_b.id,
                    "threshold": 12347,
                }
            )
        )
        own.threshold = 12348
        self.assertEqual(own.threshold, 12348)
        rule = self.env["loyalty.mlm.treatment"].create({"name": "Shared rule"})
        with self.assertRaises(AccessError):
            rule.with_user(self.user_b).name = "Mine now"
        with self.assertRaises(AccessError):
            rule.with_user(self.user_b).company_id = self.company_b


@tagged("post_install", "-at_install")
class TestMultiCompanyPos(LoyaltyMlmPosCommon):
    def test_card_and_reward_of_another_company_refused(self):
        other = self.env["res.company"].create({"name": "Other Shop"})
        program = self.env["loyalty.program"].create(
            {
                "name": "Other Members",
                "program_type": "loyalty",
                "company_id": other.id,
                "reward_ids": [
                    Command.create(
                        {
                            "reward_type": "discount",
                            "discount_mode": "per_point",
                            "discount": 0.01,
                            "required_points": 10,
                        }
                    )
                ],
            }
        )
        card = self.env["loyalty.card"].create(
            {"program_id": program.id, "partner_id": self.member.id, "points": 500}
        )
        line = self.reward_line(
            10, 0.10, reward_id=program.reward_ids.id, coupon_id=card.id
        )
        orders = self.env["pos.order"].search_count([])
        with self.assertRaisesRegex(UserError, "another company"):
            self.sync([{"product": self.product, "quantity": 1}, line])
        self.assertEqual(self.env["pos.order"].search_count([]), orders)
        self.assertEqual(card.points, 500)


@tagged("post_install", "-at_install")
class TestMultiCompanySale(MultiCompanyCase):
    def test_sale_refuses_another_companys_card(self):
        partner = self.env["res.partner"].create({"name": "B member"})
        partner._mlm_enroll(self.company_b)
        card_b = self.env["loyalty.card"].search(
            [("partner_id", "=", partner.id), ("program_id", "=", self.program_b.id)]
        )
        card_b._mlm_post_points(500, "adjustment", reason="Gift")
        order = self.make_order(partner=partner)
        result = order._apply_program_reward(self.program_b.reward_ids, card_b)
        self.assertIn("another company", result["error"])
        order.order_line = [
            Command.create(
                {
                    "name": "B reward",
                    "product_id": self.program_b.reward_ids.discount_line_product_id.id,
                    "reward_id": self.program_b.reward_ids.id,
                    "coupon_id": card_b.id,
                    "points_cost": 10,
                    "price_unit": -0.1,
                    "is_reward_line": True,
                }
            )
        ]
        with self.assertRaisesRegex(UserError, "another company"):
            order.action_confirm()
        self.assertEqual(order.state, "draft")


@tagged("post_install", "-at_install")
class TestStageMigration(LoyaltyMlmCommon):
    """18.0.1.3.0: the plain stage columns of a single-company database go to
    that company, as they were."""

    def test_post_migrate_keeps_stages(self):
        cr = self.env.cr
        growth = self.env.ref("loyalty_mlm.stage_growth")
        self.env.flush_all()
        # The old plain columns, as pre-migrate keeps them aside.
        cr.execute(
            SQL(
                """
                ALTER TABLE res_partner ADD COLUMN t_stage int4,
                                        ADD COLUMN t_date timestamp,
                                        ADD COLUMN t_locked date;
                UPDATE res_partner SET t_stage = %s,
                       t_date = '2024-03-01 10:20:30', t_locked = '2030-01-02'
                 WHERE id = %s
                """,
                growth.id,
                self.partner.id,
            )
        )
        kept = {
            "mlm_stage_id": "t_stage",
            "mlm_stage_date": "t_date",
            "mlm_stage_locked_until": "t_locked",
        }
        moved = post_migrate("18.0.1.3.0").move_stages(cr, kept)
        self.assertEqual(moved, 1)
        self.env.invalidate_all()
        self.assertEqual(self.partner.mlm_stage_id, growth)
        self.assertEqual(
            self.partner.mlm_stage_date,
            fields.Datetime.to_datetime("2024-03-01 10:20:30"),
        )
        self.assertEqual(
            self.partner.mlm_stage_locked_until, fields.Date.to_date("2030-01-02")
        )
        cr.execute(
            "SELECT mlm_stage_id FROM res_partner WHERE id = %s", [self.partner.id]
        )
        self.assertEqual(cr.fetchone()[0], {str(self.env.company.id): growth.id})
        cr.execute(
            "SELECT COUNT(*) FROM information_schema.columns"
            " WHERE table_name = 'res_partner' AND column_name = 't_stage'"
        )
        self.assertEqual(cr.fetchone()[0], 0)
