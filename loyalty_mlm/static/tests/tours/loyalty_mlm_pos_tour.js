import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as Dialog from "@point_of_sale/../tests/tours/utils/dialog_util";
import * as ProductScreen from "@point_of_sale/../tests/tours/utils/product_screen_util";
import * as NumberPopup from "@point_of_sale/../tests/tours/utils/number_popup_util";
import * as PaymentScreen from "@point_of_sale/../tests/tours/utils/payment_screen_util";
import * as ReceiptScreen from "@point_of_sale/../tests/tours/utils/receipt_screen_util";
import { registry } from "@web/core/registry";

// The cashier selects a member and sees stage, tier, points and what is
// expiring, and enrols a walk-in customer in one click.
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
                content: "The badge shows the tier in the tier's colour",
                trigger: ".o_mlm_badge .o_mlm_tier.o_colorlist_item_color_3:contains('Gold')",
            },
            {
                content: "The badge shows the balance",
                trigger: ".o_mlm_badge .o_mlm_points:contains('120.00 pts')",
            },
            {
                content: "Nothing blocks redemption",
                trigger: ".o_mlm_badge:not(:has(.o_mlm_blocked))",
            },
            {
                content: "Ask the test for a screenshot of the badge",
                trigger: ".o_mlm_badge .o_mlm_tier",
                run: () => console.log("loyalty_mlm:screenshot"),
            },
            {
                content: "Wait until the screenshot is taken",
                trigger: "body.o_mlm_screenshot_done",
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
                trigger: ".o_mlm_badge .o_mlm_points:contains('0.00 pts')",
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

function search(value) {
    return {
        content: `Search customers for "${value}"`,
        trigger: ".modal-dialog .input-group input",
        run: `edit ${value}`,
    };
}

// The customer list shows stage, tier and member points; a referral code or a
// card code finds the member, loaded or not; the editor takes a birthday and
// the referrer's code, and says why a wrong code is refused.
registry.category("web_tour.tours").add("LoyaltyMlmPosCustomerListTour", {
    steps: () =>
        [
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            ProductScreen.clickPartnerButton(),
            {
                content: "The list has stage, tier and member points columns",
                trigger: ".partner-list thead th.o_mlm_col_stage + th.o_mlm_col_tier + th.o_mlm_col_points",
            },
            {
                content: "The member's row shows them",
                trigger: ".partner-list .partner-info:contains('Badge Member'):has(.o_mlm_col_stage:contains('Growth')):has(.o_mlm_col_tier:contains('Gold')):has(.o_mlm_col_points:contains('120'))",
            },
            search("badge234"),
            {
                content: "The referral code finds exactly the member",
                trigger: ".partner-list tbody:has(.partner-info:contains('Badge Member')):not(:has(.partner-info:contains('Blocked Member')))",
            },
            search("MLMCARD77"),
            {
                content: "The card code finds exactly the member",
                trigger: ".partner-list tbody:has(.partner-info:contains('Badge Member')):not(:has(.partner-info:contains('Blocked Member')))",
            },
            search("FARAWAY7"),
            {
                content: "A member the register did not load: search the server",
                trigger: ".search-more-button > button",
                run: "click",
            },
            {
                content: "The server search finds them by referral code",
                trigger: ".partner-list .partner-info:contains('Zzz Faraway Member')",
            },
            search(""),
            {
                content: "Create a customer",
                trigger: ".modal-header button:contains('Create')",
                run: "click",
            },
            {
                content: "Name",
                trigger: ".modal .o_form_view div[name=name] input",
                run: "edit Ivy Newcomer",
            },
            {
                content: "Birthday",
                trigger: ".modal .o_form_view div[name=mlm_birthdate] input",
                run: "edit 05/14/1990",
            },
            {
                content: "A referral code nobody has",
                trigger: ".modal .o_form_view div[name=mlm_referrer_code] input",
                run: "edit NOPE2345",
            },
            {
                content: "Leave the field",
                trigger: ".modal .o_form_view div[name=mlm_referrer_code] input",
                run: function () {
                    this.anchor.dispatchEvent(new Event("change", { bubbles: true }));
                },
            },
            {
                content: "The cashier is told why at once, the code is cleared",
                trigger: ".modal:contains('No member has the referral code NOPE2345') .modal-footer .btn-primary",
                run: "click",
            },
            {
                content: "Nothing to save with the refused code",
                trigger: ".modal .o_form_view div[name=mlm_referrer_code] input",
                run: function () {
                    if (this.anchor.value) {
                        throw new Error(`The refused code is still there: ${this.anchor.value}`);
                    }
                },
            },
            {
                content: "The member's real code",
                trigger: ".modal .o_form_view div[name=mlm_referrer_code] input",
                run: "edit BADGE234",
            },
            {
                content: "Leave the field",
                trigger: ".modal .o_form_view div[name=mlm_referrer_code] input",
                run: function () {
                    this.anchor.dispatchEvent(new Event("change", { bubbles: true }));
                },
            },
            {
                content: "Save again",
                trigger: ".modal .o_form_button_save",
                run: "click",
            },
            ProductScreen.customerIsSelected("Ivy Newcomer"),
        ].flat(),
});

// The receipt shows what the member earned (tier and campaign bonuses apart),
// the new balance, the tier and the referral code.
registry.category("web_tour.tours").add("LoyaltyMlmPosReceiptTour", {
    steps: () =>
        [
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            ProductScreen.clickPartnerButton(),
            ProductScreen.clickCustomer("Badge Member"),
            ProductScreen.addOrderline("Letter Tray", "10"),
            ProductScreen.clickPayButton(),
            PaymentScreen.clickPaymentMethod("Bank"),
            PaymentScreen.clickValidate(),
            ReceiptScreen.isShown(),
            {
                content: "Points earned",
                trigger: ".pos-receipt .o_mlm_receipt_earn:contains('Points earned'):contains('52.8')",
            },
            {
                content: "Tier bonus",
                trigger: ".pos-receipt .o_mlm_receipt_tier_bonus:contains('26.4')",
            },
            {
                content: "Campaign bonus",
                trigger: ".pos-receipt .o_mlm_receipt_campaign_bonus:contains('52.8')",
            },
            {
                content: "New balance, bonuses included",
                trigger: ".pos-receipt .o_mlm_receipt_balance:contains('252')",
            },
            {
                content: "Tier",
                trigger: ".pos-receipt .o_mlm_receipt_tier:contains('Gold')",
            },
            {
                content: "Referral code",
                trigger: ".pos-receipt .o_mlm_receipt_referral:contains('BADGE234')",
            },
        ].flat(),
});
