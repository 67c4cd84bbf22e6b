import { PosData } from "@point_of_sale/app/models/data_service";
import { patch } from "@web/core/utils/patch";

patch(PosData.prototype, {
    /** The server answers the confirmation of an order's points with the
     * receipt's member block (bonuses, new balance, tier, referral code):
     * keep it on the order for the receipt, no extra request. */
    async call(model, method, args = [], kwargs = {}, queue = false) {
        const result = await super.call(...arguments);
        if (model === "pos.order" && method === "confirm_coupon_programs" && result) {
            const order = this.models["pos.order"].get(args[0]);
            if (order) {
                order.uiState.mlmReceipt = result.mlm_receipt || false;
            }
        }
        return result;
    },
});
