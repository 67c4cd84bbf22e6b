import { registry } from "@web/core/registry";
import { screenshot } from "@loyalty_mlm/../tests/tours/tour_utils";

// /my/loyalty as a member and as a portal user who is no member yet
// (tests/test_portal_loyalty.py), on a desktop and on a phone.

function openMyLoyalty() {
    return [
        {
            content: "The loyalty card on /my",
            trigger: ".o_mlm_home_category a[href='/my/loyalty']",
            run: "click",
        },
        {
            content: "The member's page",
            trigger: ".o_mlm_loyalty",
        },
    ];
}

function memberPage() {
    return [
        ...openMyLoyalty(),
        {
            content: "Balance and tier",
            trigger: ".o_mlm_balance:contains('250.00')",
        },
        {
            content: "The tier and what the next one needs",
            trigger: ".o_mlm_tier_progress:contains('Gold')",
        },
        {
            content: "The history lists her adjustment",
            trigger: ".o_mlm_history_reason:contains('Opening gift')",
        },
        {
            content: "The share link is ready to copy",
            trigger: ".o_mlm_share_url",
            run: () => {
                const url = document.querySelector(".o_mlm_share_url").value;
                if (!url.endsWith("/join/MILA2026")) {
                    throw new Error(`Unexpected share link ${url}`);
                }
            },
        },
    ];
}

registry.category("web_tour.tours").add("loyalty_mlm_portal_loyalty", {
    steps: () => [
        ...memberPage(),
        {
            content: "Filter the history: adjustments only",
            trigger: ".o_mlm_kind_filter .dropdown-toggle",
            run: "click",
        },
        {
            trigger: ".o_mlm_kind_filter a.dropdown-item[href='/my/loyalty?kind=adjustment']",
            run: "click",
        },
        {
            content: "Only adjustments are listed",
            trigger: ".o_mlm_kind_filter .dropdown-toggle:contains('Adjustment')",
        },
        ...screenshot("portal_loyalty", ".o_mlm_history_line"),
    ],
});

registry.category("web_tour.tours").add("loyalty_mlm_portal_loyalty_mobile", {
    steps: () => [
        ...memberPage(),
        {
            content: "Nothing wider than the phone's screen",
            trigger: ".o_mlm_loyalty",
            run: () => {
                const width = document.documentElement.clientWidth;
                if (width > 375) {
                    throw new Error(`The screen is ${width}px wide, not a phone's 375px`);
                }
                const page = document.querySelector(".o_mlm_loyalty");
                if (page.scrollWidth > width + 1) {
                    throw new Error(`The page is ${page.scrollWidth}px wide on a ${width}px screen`);
                }
            },
        },
        ...screenshot("portal_loyalty_mobile", ".o_mlm_balance"),
    ],
});

registry.category("web_tour.tours").add("loyalty_mlm_portal_loyalty_guest", {
    steps: () => [
        ...openMyLoyalty(),
        {
            content: "An invitation, no balance",
            trigger: ".o_mlm_invitation:not(:has(.o_mlm_balance))",
        },
        {
            content: "Join",
            trigger: "button.o_mlm_join",
            run: "click",
        },
        {
            content: "Welcome: now a member with a balance",
            trigger: ".o_mlm_notice:contains('Welcome')",
        },
        {
            trigger: ".o_mlm_balance",
        },
    ],
});
