import { PosOrder } from "@point_of_sale/app/models/pos_order";
import { patch } from "@web/core/utils/patch";

patch(PosOrder.prototype, {
    /** Targeted programmes (loyalty_mlm): offered only to a customer the
     * server found eligible when the customers loaded
     * (res.partner.mlm_pos_program_ids); the order sync checks again. */
    _programIsApplicable(program) {
        if (!super._programIsApplicable(...arguments)) {
            return false;
        }
        if (!program.mlm_restricted) {
            return true;
        }
        const partner = this.get_partner();
        return Boolean(partner && (partner.mlm_pos_program_ids || []).includes(program.id));
    },
});
