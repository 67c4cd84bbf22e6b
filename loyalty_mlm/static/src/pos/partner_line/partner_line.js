import { PartnerLine } from "@point_of_sale/app/screens/partner_list/partner_line/partner_line";
import { patch } from "@web/core/utils/patch";
import { mlmPointsOf, mlmTierClass } from "../member/member";

patch(PartnerLine.prototype, {
    get mlmPoints() {
        return Math.round(mlmPointsOf(this.pos, this.props.partner) * 100) / 100;
    },
    get mlmTierClass() {
        return mlmTierClass(this.props.partner);
    },
});
