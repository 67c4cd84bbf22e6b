from itertools import pairwise
from unittest.mock import patch

from odoo.tests import tagged

from .test_treatments import OwnRulesCase

MODULE = "odoo.addons.loyalty_mlm.models.loyalty_mlm_treatment"


@tagged("post_install", "-at_install")
class TestTreatmentWalk(OwnRulesCase):
    """The treatment job walks the contacts in the order of their ids, a
    range at a time, and each call goes on from where the last one stopped:
    a call plans the contacts it reaches, not the whole company again (at
    1,000,000 customers the whole plan took longer than a call's budget)."""

    def setUp(self):
        super().setUp()
        self.rule()
        self.partners = [self.customer(f"Walk {i}", "growth") for i in range(5)]
        self.ids = sorted(p.id for p in self.partners)
        # Other companies' walks are not looked at here.
        self.env["res.company"].search([]).sudo().mlm_treatment_cursor = 0
        Treatment = type(self.Treatment)
        plan = Treatment._mlm_plan
        self.ranges = []

        def planning(model, company, *args, id_range=None, **kwargs):
            if company == self.company and id_range is not None:
                self.ranges[-1].append(id_range)
            return plan(model, company, *args, id_range=id_range, **kwargs)

        # A range of 40 contacts: the test customers' ids are in the last
        # ranges, the demo contacts fill the first ones.
        for patcher in (
            patch.object(Treatment, "_mlm_plan", planning),
            patch(f"{MODULE}.TREATMENT_PLAN_RANGE", 40),
        ):
            patcher.start()
            self.addCleanup(patcher.stop)

    def call(self, **kwargs):
        self.ranges.append([])
        return self.run_job(batch_size=2, time_budget=0, **kwargs)

    def cursor(self):
        return self.company.sudo().mlm_treatment_cursor

    def test_each_call_goes_on_from_the_last(self):
        self.assertEqual(self.call(), 2)
        # Stopped at the first customer left: the next call starts there.
        self.assertEqual(self.cursor(), self.ids[2])
        first = self.ranges[0]
        self.assertEqual(first[0][0], 0)
        self.assertGreater(len(first), 1)  # ranges without anyone due go on
        for (_start, end), (start, _end) in pairwise(first):
            self.assertEqual(start, end)  # one after the other, no gap
        self.assertEqual(self.call(), 2)
        self.assertEqual(self.ranges[1][0][0], self.ids[2])
        self.assertEqual(self.cursor(), self.ids[4])
        # The last one, then the walk goes to the last contact: the round is
        # over, and the next call starts a new one from the first contact.
        self.assertEqual(self.call(), 1)
        self.assertIsNone(self.ranges[2][-1][1])
        self.assertEqual(self.cursor(), 0)
        self.assertEqual(self.call(), 0)
        self.assertEqual(self.ranges[3][0][0], 0)
        self.assertEqual([len(self.logs(p)) for p in self.partners], [1] * 5)
        self.assertLedgerInvariant()

    def test_ranges_grow_where_few_are_due(self):
        """A range's plan costs one search per rule whatever is due in it:
        after a range where fewer than a tenth of its contacts were due, the
        next one is four times bigger (a quiet night at 1,000,000 customers
        planned in fifty ranges took three times the plan of the whole
        company); where many are due, the ranges stay small."""
        Treatment = self.Treatment
        plan = [(None, dict.fromkeys(range(2))), (None, {2: "x"})]
        self.assertEqual(Treatment._mlm_next_range_size(40, plan), 160)
        self.assertEqual(Treatment._mlm_next_range_size(40, []), 160)
        plan.append((None, {3: "x"}))  # 4 of 40: a tenth
        self.assertEqual(Treatment._mlm_next_range_size(40, plan), 40)
        self.assertEqual(
            Treatment._mlm_next_range_size(300000, []), 320000
        )  # TREATMENT_PLAN_RANGE_MAX
        # In the walk: the first range (demo contacts, nobody due) is 40
        # contacts, the next one 160, and they still follow one another.
        self.call()
        first, second = self.ranges[0][:2]
        self.assertEqual(first[1], second[0])

        def size(start, end):
            domain = [("id", ">=", start)] + ([("id", "<", end)] if end else [])
            return (
                self.env["res.partner"]
                .with_context(active_test=False)
                .search_count(domain)
            )

        self.assertEqual(size(*first), 40)
        if second[1] is not None:
            self.assertEqual(size(*second), 160)
        else:
            self.assertLessEqual(size(*second), 160)

    def test_a_killed_call_is_done_again(self):
        """A call killed before its commit leaves the cursor where the last
        committed call put it: the next call does its work again, and the
        customers it treated (their claims undone too) once."""
        self.assertEqual(self.call(), 2)
        with self.assertRaises(InterruptedError), self.env.cr.savepoint():
            self.assertEqual(self.call(), 2)
            raise InterruptedError  # the worker dies before ir.cron commits
        self.env.invalidate_all()
        self.assertEqual(self.cursor(), self.ids[2])
        self.assertEqual(self.call(), 2)
        self.assertEqual(self.call(), 1)
        self.assertEqual([len(self.logs(p)) for p in self.partners], [1] * 5)
        self.assertLedgerInvariant()

    def test_a_failing_customer_is_passed(self):
        """A customer whose action fails is left for the next walk: the calls
        after go on without trying him again."""
        broken = self.partners[0]
        Treatment = type(self.Treatment)
        execute = Treatment._mlm_execute_batch

        def failing(rule, company, claimed):
            if any(partner == broken for partner, _log in claimed):
                raise ValueError("broken")
            return execute(rule, company, claimed)

        with patch.object(Treatment, "_mlm_execute_batch", failing):
            self.assertEqual(self.call(), 1)  # his batch neighbour
            self.assertEqual(self.call(), 2)
            self.assertEqual(self.call(), 1)
        self.assertFalse(self.logs(broken))
        self.assertEqual(self.cursor(), 0)
        # The next round treats him.
        self.assertEqual(self.call(), 1)
        self.assertEqual(len(self.logs(broken)), 1)
