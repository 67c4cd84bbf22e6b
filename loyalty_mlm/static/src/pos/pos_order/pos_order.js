import { PosOrder } from "@point_of_sale/app/models/pos_order";
import { patch } from "@web/core/utils/patch";
import { mlmFormatPoints } from "../member/member";

patch(PosOrder.prototype, {
    /** A per-point discount uses every point it can, in whole reward steps;
     * when the cashier typed how many to use (`args.cost`), it uses at most
     * those. pos_loyalty replays rewards with their line's points cost, so
     * the typed amount survives every recomputation. */
    _getRewardLineValuesDiscount(args) {
        if (!args.cost || args.reward.discount_mode !== "per_point") {
            return super._getRewardLineValuesDiscount(args);
        }
        this._mlmPointsCap = args.cost;
        try {
            return super._getRewardLineValuesDiscount(args);
        } finally {
            this._mlmPointsCap = undefined;
        }
    },
    /** The member block of the receipt (see PosData.call). */
    export_for_printing() {
        const result = super.export_for_printing(...arguments);
        const mlm = this.uiState.mlmReceipt;
        if (!mlm) {
            result.mlmReceipt = false;
            return result;
        }
        // Signed points in the programme's decimals ("+272", "-500").
        // (the programme's decimals, loaded with it: no server work).
        const card = this.models["loyalty.card"].get(mlm.card_id);
        const digits = card?.program_id?.mlm_points_digits ?? 2;
        const signed = (points) =>
            `${points > 0 ? "+" : ""}${mlmFormatPoints(null, points, digits)}`;
        result.mlmReceipt = {
            ...mlm,
            previous_text: mlmFormatPoints(null, mlm.previous, digits),
            balance_text: mlmFormatPoints(null, mlm.balance, digits),
            lines: (mlm.lines || []).map((line) => ({ ...line, text: signed(line.points) })),
        };
        return result;
    },
    _getRealCouponPoints(couponId) {
        const points = super._getRealCouponPoints(couponId);
        return this._mlmPointsCap ? Math.min(points, this._mlmPointsCap) : points;
    },
});
