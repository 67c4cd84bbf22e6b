import { registry } from "@web/core/registry";

// A Loyalty User opens the Members app, sees the cockpit, then the members.
registry.category("web_tour.tours").add("loyalty_mlm_open_members_app", {
    url: "/odoo",
    steps: () => [
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
            content: "The cockpit shows the members card",
            trigger: ".o_loyalty_mlm_dashboard .o_loyalty_mlm_kpi_members_total",
            run: "click",
        },
        {
            content: "The members list opens",
            trigger: ".o_list_view",
        },
    ],
});
