import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as Dialog from "@point_of_sale/../tests/tours/utils/dialog_util";
import * as ProductScreen from "@point_of_sale/../tests/tours/utils/product_screen_util";
import * as NumberPopup from "@point_of_sale/../tests/tours/utils/number_popup_util";
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

// The cashier redeems exactly the points the member asks for.
registry.category("web_tour.tours").add("LoyaltyMlmPosRedeemTour", {
    steps: () =>
        [
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Badge Member"),
            ProductScreen.addOrderline("Letter Tray", "1"),
            ProductScreen.clickControlButtonMore(),
            {
                content: "Use points",
                trigger: ".o_mlm_use_points",
                run: "click",
            },
            NumberPopup.enterValue("120"),
            Dialog.confirm(),
            {
                content: "The discount line spends the typed points: 1.20 off",
                trigger: ".orderline .price:contains('1.20')",
            },
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Blocked Member"),
            ProductScreen.clickControlButtonMore(),
            {
                content: "Use points for a member in debt",
                trigger: ".o_mlm_use_points",
                run: "click",
            },
            {
                content: "Redemption is refused with the reason",
                trigger: ".modal:contains('Redemption blocked')",
            },
        ].flat(),
});
