import { OrderSummary } from "@point_of_sale/app/screens/product_screen/order_summary/order_summary";
import { patch } from "@web/core/utils/patch";
import { mlmFormatPoints } from "../member/member";

patch(OrderSummary.prototype, {
    /** A figure of the points line ("balance + won - spent = total") as its
     * programme shows points ("812.50", "1,250"; the badge's format), not
     * the raw float ("812.5"). */
    mlmPointsText(stat, key) {
        return mlmFormatPoints(null, stat.points[key], stat.program?.mlm_points_digits ?? 2);
    },
});
