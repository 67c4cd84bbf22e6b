import { registry } from "@web/core/registry";

// A loyalty manager opens a measured treatment: its verdict, and the Results
// tab with treated vs control per figure.
registry.category("web_tour.tours").add("loyalty_mlm_results_tour", {
    steps: () => [
        {
            content: "The smart button shows the verdict",
            trigger: ".o_form_view .oe_stat_button:contains('Results'):contains('Working')",
        },
        {
            content: "Open the Results tab",
            trigger: ".o_notebook .nav-link[name='mlm_results']",
            run: "click",
        },
        {
            content: "The repeat purchase rate: treated vs control, its interval and verdict",
            trigger:
                ".o_field_widget[name='mlm_result_ids'] .o_data_row:contains('Repeat purchase rate'):contains('Working')",
        },
        {
            content: "Ask the test for a screenshot of the results",
            trigger: ".o_field_widget[name='mlm_result_ids'] .o_data_row:contains('Revenue per customer')",
            run: () => console.log("loyalty_mlm:screenshot"),
        },
        {
            content: "Wait until the screenshot is taken",
            trigger: "body.o_mlm_screenshot_done",
        },
        {
            content: "Open the Results report",
            trigger: ".o_form_view .oe_stat_button:contains('Results')",
            run: "click",
        },
        {
            content: "The report lists the treatment's figures",
            trigger: ".o_list_view .o_data_row:contains('Winback: a call from the shop')",
        },
    ],
});
