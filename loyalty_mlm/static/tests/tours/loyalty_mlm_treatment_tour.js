import { registry } from "@web/core/registry";

// A salesperson sees a customer's next best action and the treatments done,
// on the contact and on the lead.
const nextBestAction = [
    {
        content: "The next best action shows the rule and what it does",
        trigger:
            ".o_form_view .alert-info:contains('Next best action'):contains('Tour rule'):contains('Tags: Tour tag')",
    },
];

registry.category("web_tour.tours").add("loyalty_mlm_treatment_contact", {
    steps: () => [
        ...nextBestAction,
        {
            content: "Open the Treatments tab",
            trigger: ".o_notebook .nav-link[name='loyalty_mlm_treatments']",
            run: "click",
        },
        {
            content: "The log shows what was done",
            trigger:
                ".o_field_widget[name='mlm_treatment_log_ids'] .o_data_row:contains('Tour rule'):contains('Tags added')",
        },
    ],
});

registry.category("web_tour.tours").add("loyalty_mlm_treatment_lead", {
    steps: () => [
        ...nextBestAction,
        {
            content: "Open the Treatments tab",
            trigger: ".o_notebook .nav-link[name='loyalty_mlm_treatments']",
            run: "click",
        },
        {
            content: "The customer's treatments are listed",
            trigger:
                ".o_field_widget[name='mlm_treatment_log_ids'] .o_data_row:contains('Tour rule')",
        },
    ],
});
