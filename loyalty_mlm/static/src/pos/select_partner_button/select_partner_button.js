import { SelectPartnerButton } from "@point_of_sale/app/screens/product_screen/control_buttons/select_partner_button/select_partner_button";
import { patch } from "@web/core/utils/patch";
import {
    MLM_PARTNER_FIELDS,
    mlmFormatPoints,
    mlmPointsOf,
    mlmTierClass,
} from "../member/member";

patch(SelectPartnerButton.prototype, {
    get mlmPoints() {
        return mlmPointsOf(this.pos, this.props.partner);
    },
    get mlmPointsText() {
        return mlmFormatPoints(this.pos, this.mlmPoints);
    },
    get mlmFlags() {
        return (this.props.partner.mlm_pos_flags || "").split(" ");
    },
    get mlmBlocked() {
        return this.mlmPoints < 0 || this.props.partner.mlm_redemption_blocked;
    },
    get mlmTierClass() {
        return mlmTierClass(this.props.partner);
    },
    /** Make the selected customer a member, then reload its badge fields. */
    async mlmEnroll() {
        const partner = this.props.partner;
        await this.pos.data.call("res.partner", "mlm_pos_enroll", [[partner.id]]);
        // Only our fields: the register updates them in place (a full reload
        // is skipped while the partner's write_date looks unchanged).
        await this.pos.data.read("res.partner", [partner.id], MLM_PARTNER_FIELDS);
    },
});
