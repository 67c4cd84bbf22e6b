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
    /** Make the selected customer a member, then reload its badge fields. */
    async mlmEnroll() {
        const partner = this.props.partner;
        await this.pos.data.call("res.partner", "mlm_pos_enroll", [[partner.id]]);
        // Only our fields: the register updates them in place (a full reload
        // is skipped while the partner's write_date looks unchanged).
        await this.pos.data.read("res.partner", [partner.id], [
            "mlm_member_since",
            "mlm_stage_name",
            "mlm_points",
            "mlm_points_expiring_soon",
            "mlm_redemption_blocked",
        ]);
    },
});
