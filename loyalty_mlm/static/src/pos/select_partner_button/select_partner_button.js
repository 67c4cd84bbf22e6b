import { SelectPartnerButton } from "@point_of_sale/app/screens/product_screen/control_buttons/select_partner_button/select_partner_button";
import { patch } from "@web/core/utils/patch";

patch(SelectPartnerButton.prototype, {
    /** The member card the register keeps up to date after each order, else
     * the balance loaded with the customer. */
    get mlmPoints() {
        const partner = this.props.partner;
        const program = this.pos.company.mlm_program_id;
        const programId = program?.id ?? program;
        const card = this.pos
            .getLoyaltyCards?.(partner)
            ?.find((c) => (c.program_id?.id ?? c.program_id) === programId);
        return card ? card.points : partner.mlm_points;
    },
    get mlmBlocked() {
        return this.mlmPoints < 0 || this.props.partner.mlm_redemption_blocked;
    },
});
