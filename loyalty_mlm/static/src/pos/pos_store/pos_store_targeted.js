import { PosStore } from "@point_of_sale/app/store/pos_store";
import { _t } from "@web/core/l10n/translation";
import { patch } from "@web/core/utils/patch";

patch(PosStore.prototype, {
    /** A promo code of a targeted programme (loyalty_mlm) says why it does
     * nothing for a customer who may not use it, instead of activating a
     * programme that never applies. Coupon codes are checked by the server
     * (pos.config.use_coupon_code). */
    async activateCode(code) {
        const rule = this.models["loyalty.rule"].find(
            (rule) =>
                rule.mode === "with_code" && (rule.promo_barcode === code || rule.code === code)
        );
        const program = rule?.program_id;
        if (program?.mlm_restricted) {
            const partner = this.get_order().get_partner();
            if (!partner) {
                return _t(
                    "The programme %s is only for some customers: select an eligible customer first.",
                    program.name
                );
            }
            if ((partner.mlm_pos_control_program_ids || []).includes(program.id)) {
                return _t(
                    "%(customer)s is in the control group of the programme %(programme)s: held out to measure whether the programme works, so it does not apply to them.",
                    { customer: partner.name, programme: program.name }
                );
            }
            if (!(partner.mlm_pos_program_ids || []).includes(program.id)) {
                return _t(
                    "%(customer)s is not eligible for the programme %(programme)s.",
                    { customer: partner.name, programme: program.name }
                );
            }
        }
        return super.activateCode(...arguments);
    },
});
