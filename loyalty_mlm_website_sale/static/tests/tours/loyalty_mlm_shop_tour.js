import { registry } from "@web/core/registry";
import { screenshot } from "@loyalty_mlm/../tests/tours/tour_utils";

// The cart of a member and of a customer who is no member yet
// (tests/test_webshop.py), on a desktop and on a phone.

function memberCart() {
    return [
        {
            content: "The member's balance and tier on the cart",
            trigger: ".o_mlm_cart_member .o_mlm_cart_balance:contains('40.00')",
        },
        {
            trigger: ".o_mlm_cart_member .o_mlm_cart_tier:contains('Silver')",
        },
        {
            content: "The points the order earns, the campaign bonus included",
            trigger: ".o_mlm_cart_preview_campaign_bonus",
        },
        {
            trigger: ".o_mlm_cart_preview_total:contains('225.00')",
        },
        {
            content: "Odoo's reward box says its points include this order's",
            trigger: ".o_mlm_reward_points:contains('With this order: 140')",
        },
    ];
}

registry.category("web_tour.tours").add("loyalty_mlm_shop_cart", {
    steps: () => [...memberCart(), ...screenshot("shop_cart", ".o_mlm_cart_preview")],
});

registry.category("web_tour.tours").add("loyalty_mlm_shop_cart_mobile", {
    steps: () => [
        ...memberCart(),
        {
            content: "Nothing wider than the phone's screen",
            trigger: ".o_mlm_cart_member",
            run: () => {
                const width = document.documentElement.clientWidth;
                if (width > 375) {
                    throw new Error(`The screen is ${width}px wide, not a phone's 375px`);
                }
                const block = document.querySelector(".o_mlm_cart_member");
                if (block.getBoundingClientRect().right > width + 1) {
                    throw new Error("The member block is wider than the screen");
                }
            },
        },
    ],
});

registry.category("web_tour.tours").add("loyalty_mlm_shop_cart_guest", {
    steps: () => [
        {
            content: "No balance for a customer who is no member",
            trigger: ".o_mlm_cart_member:not(:has(.o_mlm_cart_balance))",
        },
        {
            content: "The order would make them a member",
            trigger: ".o_mlm_cart_preview:contains('makes you a member')",
        },
    ],
});
