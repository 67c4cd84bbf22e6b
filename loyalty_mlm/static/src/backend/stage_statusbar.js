import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import {
    StatusBarField,
    statusBarField,
} from "@web/views/fields/statusbar/statusbar_field";

/** A manager's lifecycle statusbar: a click opens *Set Stage* on the clicked
 * stage (reason, keep-until) instead of writing the stage with no reason.
 * Loyalty Users get Odoo's plain statusbar, not clickable (see the views). */
export class MlmStageStatusBarField extends StatusBarField {
    setup() {
        super.setup();
        this.mlmAction = useService("action");
    }

    async selectItem(item) {
        const record = this.props.record;
        if (!(await record.save())) {
            return;
        }
        await this.mlmAction.doAction("loyalty_mlm.loyalty_mlm_stage_wizard_action", {
            additionalContext: {
                active_ids: [record.resId],
                default_partner_ids: [record.resId],
                default_stage_id: item.value,
            },
            onClose: () => record.load(),
        });
    }
}

export const mlmStageStatusBarField = {
    ...statusBarField,
    component: MlmStageStatusBarField,
};

registry.category("fields").add("loyalty_mlm_stage_statusbar", mlmStageStatusBarField);
