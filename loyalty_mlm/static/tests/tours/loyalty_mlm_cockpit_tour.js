import { registry } from "@web/core/registry";

// A Loyalty Manager reads the cockpit (test_cockpit.TestCockpitUi builds 13
// month snapshots: 1,244 members this month, 1,222 the month before).
registry.category("web_tour.tours").add("loyalty_mlm_cockpit_tour", {
    steps: () => [
        {
            content: "The members card shows this month's figure",
            trigger: ".o_loyalty_mlm_kpi_members_total .o_loyalty_mlm_kpi_value:contains(1,244)",
        },
        {
            content: "The charts are drawn",
            trigger: ".o_loyalty_mlm_points_chart canvas",
        },
        {
            content: "Ask the test for a screenshot of the cockpit",
            trigger: ".o_loyalty_mlm_funnel_stage[data-stage=growth]",
            run: () => console.log("loyalty_mlm:screenshot"),
        },
        {
            content: "Wait until the screenshot is taken",
            trigger: "body.o_mlm_screenshot_done",
        },
        {
            content: "Go to the previous month",
            trigger: ".o_loyalty_mlm_period_previous",
            run: "click",
        },
        {
            content: "The members card shows last month's figure",
            trigger: ".o_loyalty_mlm_kpi_members_total .o_loyalty_mlm_kpi_value:contains(1,222)",
        },
        {
            content: "The next period can be reached again",
            trigger: ".o_loyalty_mlm_period_next:enabled",
        },
        {
            content: "Switch to quarters",
            trigger: ".o_loyalty_mlm_period_kinds button[data-kind=quarter]",
            run: "click",
        },
        {
            content: "A quarter is shown (no snapshot of it here)",
            trigger: ".o_loyalty_mlm_period_label:contains(Q)",
        },
        {
            content: "A manager may compute the missing KPIs",
            trigger: ".o_loyalty_mlm_no_data .o_loyalty_mlm_compute_now",
        },
        {
            content: "Back to months",
            trigger: ".o_loyalty_mlm_period_kinds button[data-kind=month]",
            run: "click",
        },
        {
            content: "Open the new members behind the card",
            trigger: ".o_loyalty_mlm_kpi_members_new",
            run: "click",
        },
        {
            content: "The list of members opens",
            trigger: ".o_list_view",
        },
    ],
});
