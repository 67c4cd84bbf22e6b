import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as Dialog from "@point_of_sale/../tests/tours/utils/dialog_util";
import * as ProductScreen from "@point_of_sale/../tests/tours/utils/product_screen_util";
import { registry } from "@web/core/registry";

// The cashier selects a member and sees stage, points and what is expiring,
// and enrols a walk-in customer in one click.
registry.category("web_tour.tours").add("LoyaltyMlmPosBadgeTour", {
    steps: () =>
        [
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Badge Member"),
            {
                content: "The badge shows the member's stage",
                trigger: ".o_mlm_badge .o_mlm_stage:contains('Growth')",
            },
            {
                content: "The badge shows the balance",
                trigger: ".o_mlm_badge .o_mlm_points:contains('120 pts')",
            },
            {
                content: "Nothing blocks redemption",
                trigger: ".o_mlm_badge:not(:has(.o_mlm_blocked))",
            },
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Blocked Member"),
            {
                content: "A member in debt is flagged",
                trigger: ".o_mlm_badge .o_mlm_blocked",
            },
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Walk-in Customer"),
            {
                content: "Enrol the walk-in customer in one click",
                trigger: ".o_mlm_enroll",
                run: "click",
            },
            {
                content: "The new member's badge appears",
                trigger: ".o_mlm_badge .o_mlm_points:contains('0 pts')",
            },
        ].flat(),
});
