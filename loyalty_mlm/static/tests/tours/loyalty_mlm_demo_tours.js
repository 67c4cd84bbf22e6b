import * as Chrome from "@point_of_sale/../tests/tours/utils/chrome_util";
import * as Dialog from "@point_of_sale/../tests/tours/utils/dialog_util";
import * as ProductScreen from "@point_of_sale/../tests/tours/utils/product_screen_util";
import * as PaymentScreen from "@point_of_sale/../tests/tours/utils/payment_screen_util";
import * as ReceiptScreen from "@point_of_sale/../tests/tours/utils/receipt_screen_util";
import { registry } from "@web/core/registry";
import { screenshot } from "@loyalty_mlm/../tests/tours/tour_utils";

// The first screens of each demo login (tests/test_demo_tours.py runs them
// on the demo database and keeps their screenshots for the README).

function openMembersApp() {
    return [
        {
            content: "Open the app switcher",
            trigger: ".o_navbar_apps_menu button",
            run: "click",
        },
        {
            content: "Open the Members app",
            trigger: '.o_app[data-menu-xmlid="loyalty_mlm.menu_root"]',
            run: "click",
        },
        {
            content: "The cockpit is the first screen",
            trigger: ".o_loyalty_mlm_dashboard",
        },
        {
            content: "Open the members",
            trigger: '.o_menu_sections [data-menu-xmlid="loyalty_mlm.menu_members"]',
            run: "click",
        },
    ];
}

// Sanne, salesperson, reads Dutch: the members are there, grouped by their
// Dutch stages (Winback unfolded), and the stage bar is not hers to click.
registry.category("web_tour.tours").add("loyalty_mlm_demo_sales", {
    steps: () => [
        ...openMembersApp(),
        {
            content: "The demo members are shown, not Odoo's companies",
            trigger: ".o_kanban_record:contains('Anna de Vries')",
        },
        {
            content: "The members' own filter is on, in Dutch",
            trigger: ".o_searchview_facet:contains('Leden')",
        },
        {
            content: "Stages in Dutch, one term per concept: Acquisitie",
            trigger: ".o_kanban_group .o_column_title:contains('Acquisitie')",
        },
        {
            content: "Winback (Terugwinnen) is unfolded",
            trigger:
                ".o_kanban_group:not(.o_column_folded) .o_column_title:contains('Terugwinnen')",
        },
        {
            content: "Every member in a stage: no column of contacts without one",
            trigger: ".o_kanban_group .o_column_title:contains('Acquisitie')",
            run() {
                const titles = [...document.querySelectorAll(".o_kanban_group")].map(
                    (group) => group.textContent
                );
                if (titles.some((title) => /^\s*(Geen|None)\b/.test(title))) {
                    throw new Error(`A column without a stage: ${titles.join(" | ")}`);
                }
            },
        },
        ...screenshot("sales_members", ".o_kanban_record:contains('Anna de Vries')"),
        {
            content: "Open Anna",
            trigger: ".o_kanban_record:contains('Anna de Vries')",
            run: "click",
        },
        {
            content: "The stage bar is shown, every stage disabled for a Loyalty User",
            trigger:
                ".o_form_view .o_statusbar_status:not(:has(button.o_arrow_button:not([disabled])))",
        },
        {
            content: "No Set Stage button for a Loyalty User",
            trigger: ".o_form_view .o_form_statusbar:not(:has(button[name='action_mlm_set_stage']))",
        },
        {
            content: "One balance: the Points button",
            trigger: "button[name='action_mlm_open_ledger'] .o_stat_text:contains('Punten')",
        },
    ],
});

// The admin (Loyalty Manager): a click on a stage opens Set Stage with the
// clicked stage, a reason and a keep-until date; nothing moves without them.
registry.category("web_tour.tours").add("loyalty_mlm_demo_admin", {
    steps: () => [
        ...openMembersApp(),
        {
            content: "Open Anna",
            trigger: ".o_kanban_record:contains('Anna de Vries')",
            run: "click",
        },
        {
            content: "Click the Winback stage",
            trigger: ".o_statusbar_status button.o_arrow_button:contains('Winback'):not([disabled])",
            run: "click",
        },
        {
            content: "Set Stage opens on Winback",
            trigger: ".modal .o_field_widget[name='stage_id'] input:value('Winback')",
        },
        {
            content: "It asks for a reason",
            trigger: ".modal .o_field_widget[name='reason']",
        },
        ...screenshot("admin_set_stage", ".modal .o_field_widget[name='locked_until']"),
        {
            content: "Discard",
            trigger: ".modal button[special='cancel']",
            run: "click",
        },
        {
            content: "The form is clean: the stage did not move",
            trigger: ".o_form_view:not(:has(.o_form_status_indicator_buttons:not(.invisible)))",
        },
    ],
});

// Anna, portal member: one balance (the member programme's), her tier and
// her member code on /my.
registry.category("web_tour.tours").add("loyalty_mlm_demo_portal", {
    steps: () => [
        {
            content: "The member block is on /my, with the points",
            trigger: ".o_mlm_portal_member .o_mlm_portal_points",
        },
        {
            content: "One balance: no second programme's card next to ours",
            trigger: ".o_mlm_portal_member",
            run: () => {
                // The portal's side content is rendered twice (small and
                // large screens): count cards, not their copies.
                const cards = new Set(
                    [...document.querySelectorAll(".o_loyalty_card")].map(
                        (card) => card.dataset.card_id
                    )
                );
                if (cards.size > 1) {
                    throw new Error(`${cards.size} loyalty cards on /my`);
                }
            },
        },
        ...screenshot("portal_member", ".o_mlm_portal_member"),
    ],
});

/** Previous balance + every line = new balance, on the printed receipt. */
function receiptAddsUp() {
    const number = (el) => parseFloat(el.textContent.replace(/[^0-9.-]/g, ""));
    return {
        content: "The receipt's member lines add up to the new balance",
        trigger: ".pos-receipt .o_mlm_receipt .o_mlm_receipt_balance",
        run: () => {
            const block = document.querySelector(".pos-receipt .o_mlm_receipt");
            const previous = number(block.querySelector(".o_mlm_receipt_previous span"));
            const lines = [...block.querySelectorAll(".o_mlm_receipt_line span")].map(number);
            const balance = number(block.querySelector(".o_mlm_receipt_balance span"));
            const total = lines.reduce((sum, points) => sum + points, previous);
            if (!lines.length || Math.abs(total - balance) > 0.005) {
                throw new Error(
                    `Receipt does not add up: ${previous} + ${lines.join(" + ")} != ${balance}`
                );
            }
        },
    };
}

// Karim, cashier: Anna's badge, one balance in the customer list, an order
// whose receipt lists every posting and adds up.
registry.category("web_tour.tours").add("loyalty_mlm_demo_cashier", {
    steps: () =>
        [
            Chrome.startPoS(),
            Dialog.confirm("Open Register"),
            ProductScreen.clickPartnerButton(),
            {
                content: "Balances take one line per customer (no stacked cards)",
                trigger: ".partner-list tr.partner-line:contains('Anna de Vries')",
                run: () => {
                    const cells = document.querySelectorAll(
                        ".partner-list tr.partner-line td.partner-line-balance"
                    );
                    for (const cell of cells) {
                        if (cell.children.length > 1) {
                            throw new Error(`Stacked balances: ${cell.textContent}`);
                        }
                    }
                },
            },
            ProductScreen.clickCustomer("Anna de Vries"),
            {
                content: "The badge shows Anna's one balance",
                trigger: ".o_mlm_badge .o_mlm_points",
            },
            // Use Points on an empty cart says why nothing can be spent.
            ProductScreen.clickControlButtonMore(),
            {
                content: "Use Points on an empty order",
                trigger: ".o_mlm_use_points",
                run: "click",
            },
            {
                content: "It says why nothing can be spent",
                trigger: ".modal-body:contains('Add products first')",
            },
            Dialog.confirm(),
            ProductScreen.addOrderline("Organic Green Tea", "2"),
            // Capped by the real balance (700), not balance + points to earn.
            ProductScreen.clickControlButtonMore(),
            {
                content: "Use Points on the order",
                trigger: ".o_mlm_use_points",
                run: "click",
            },
            Dialog.is({ title: "at most 700" }),
            Dialog.cancel(),
            {
                content: "The screen says which bonuses come at payment",
                trigger: ".o_mlm_bonus_note",
            },
            {
                content: "Its points line uses the badge's format (700.00, not 700)",
                trigger: ".loyalty-points-balance:contains('700.00')",
            },
            ...screenshot("cashier_order", ".o_mlm_bonus_note"),
            ProductScreen.clickPayButton(),
            PaymentScreen.clickPaymentMethod("Cash"),
            PaymentScreen.clickValidate(),
            ReceiptScreen.isShown(),
            {
                content: "The receipt lists the points earned",
                trigger: ".pos-receipt .o_mlm_receipt_earn",
            },
            receiptAddsUp(),
            {
                content: "One member balance on the receipt: no native Balance Points line",
                trigger: ".pos-receipt:not(:has(.loyalty))",
            },
            {
                content: "Scroll the member block into view",
                trigger: ".pos-receipt .o_mlm_receipt",
                run: () => document.querySelector(".pos-receipt .o_mlm_receipt_referral, .pos-receipt .o_mlm_receipt_balance").scrollIntoView(),
            },
            ...screenshot("cashier_receipt", ".pos-receipt .o_mlm_receipt_balance"),
        ].flat(),
});

/** No cell of the list's date columns is cut off (text wider than its cell). */
function datesNotCutOff(columns) {
    return {
        content: `Date columns shown in full: ${columns.join(", ")}`,
        trigger: ".o_list_view .o_data_row",
        run: () => {
            for (const name of columns) {
                const cells = document.querySelectorAll(`.o_data_row td[name='${name}']`);
                if (!cells.length) {
                    throw new Error(`No column ${name}`);
                }
                // The cell, its value's (truncating) elements and its header.
                const boxes = [...cells, document.querySelector(`thead th[data-name='${name}']`)]
                    .filter(Boolean)
                    .flatMap((el) => [el, ...el.querySelectorAll("*")]);
                for (const cell of boxes) {
                    if (cell.scrollWidth > cell.clientWidth + 1) {
                        throw new Error(
                            `${name} cut off: "${cell.textContent.trim()}" (${cell.scrollWidth}>${cell.clientWidth})`
                        );
                    }
                }
            }
        },
    };
}

// The admin's configuration screens: a treatment rule reads as a sentence
// (the whole rationale, "no upper limit" rather than "0 to 0"), lists show
// their dates in full, and the programme form shows OCA's partner fields once.
registry.category("web_tour.tours").add("loyalty_mlm_demo_admin_treatment", {
    steps: () => [
        {
            content: "The whole rationale is shown",
            trigger: ".o_form_view .o_field_widget[name='rationale']",
            run: () => {
                const field = document.querySelector(".o_form_view .o_field_widget[name='rationale']");
                const input = field.querySelector("input, textarea");
                const box = input || field;
                if (box.scrollWidth > box.clientWidth + 1) {
                    throw new Error(`Rationale cut off: ${(input && input.value) || field.textContent}`);
                }
            },
        },
        {
            content: "Days in stage without an upper limit say so",
            trigger: ".o_form_view [name='mlm_stage_days']:contains('no upper limit')",
        },
        ...screenshot("admin_treatment", ".o_form_view .o_field_widget[name='rationale']"),
    ],
});

registry.category("web_tour.tours").add("loyalty_mlm_demo_admin_ledger", {
    steps: () => [
        datesNotCutOff(["date", "expiry_date"]),
        ...screenshot("admin_ledger", ".o_list_view .o_data_row"),
    ],
});

registry.category("web_tour.tours").add("loyalty_mlm_demo_admin_treatment_log", {
    steps: () => [
        datesNotCutOff(["date"]),
        {
            content: "What was done, in the reader's language",
            trigger: ".o_data_row td[name='summary_display']:contains('Mail sent')",
        },
    ],
});

registry.category("web_tour.tours").add("loyalty_mlm_demo_admin_programme", {
    steps: () => [
        {
            content: "Open the Eligibility page",
            trigger: ".o_notebook a[name='mlm_eligibility']",
            run: "click",
        },
        {
            content: "OCA's allowed partners appear once",
            trigger: ".o_form_view .o_field_widget[name='partner_ids']",
            run: () => {
                for (const name of ["partner_ids", "partner_domain"]) {
                    const n = document.querySelectorAll(
                        `.o_form_view .o_field_widget[name='${name}']`
                    ).length;
                    if (n !== 1) {
                        throw new Error(`${name} shown ${n} times`);
                    }
                }
            },
        },
    ],
});

// Sanne's filters, in Dutch: no label cut off in the search panel.
registry.category("web_tour.tours").add("loyalty_mlm_demo_sales_filters", {
    steps: () => [
        {
            content: "Open the filters",
            trigger: ".o_searchview_dropdown_toggler",
            run: "click",
        },
        {
            content: "Dutch filter labels, none cut off",
            trigger: ".o_filter_menu .o-dropdown-item:contains('Grootgebruikers')",
            run: () => {
                // Our filters and groupings (Odoo's own "Add Custom Filter"
                // is Odoo's translation).
                const items = document.querySelectorAll(
                    ".o_filter_menu .o-dropdown-item:not(.o_add_custom_filter), .o_group_by_menu .o-dropdown-item:not(.o_add_custom_group_menu)"
                );
                const cut = [...items].filter(
                    (item) => item.scrollWidth > item.clientWidth + 1
                );
                if (cut.length) {
                    throw new Error(
                        `Filter labels cut off: ${cut
                            .map((item) => `${item.textContent.trim()} (${item.scrollWidth}>${item.clientWidth})`)
                            .join("; ")}`
                    );
                }
            },
        },
        ...screenshot("sales_filters", ".o_filter_menu"),
    ],
});
