import { Component, onWillStart, useState } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";

/**
 * Members dashboard. Starts with the member count; the KPIs (retention, repeat
 * rate, AOV, CLV, redemption, participation) land here with their features.
 */
export class LoyaltyMlmDashboard extends Component {
    static template = "loyalty_mlm.Dashboard";
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.state = useState({ customers: 0 });
        onWillStart(async () => {
            this.state.customers = await this.orm.searchCount("res.partner", [
                ["customer_rank", ">", 0],
            ]);
        });
    }

    openMembers() {
        return this.action.doAction("loyalty_mlm.res_partner_action_member");
    }
}

registry.category("actions").add("loyalty_mlm.dashboard", LoyaltyMlmDashboard);
