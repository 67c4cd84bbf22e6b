import { PartnerLine } from "@point_of_sale/app/screens/partner_list/partner_line/partner_line";
import { patch } from "@web/core/utils/patch";
import { mlmFormatPoints, mlmPointsOf, mlmTierClass } from "../member/member";

patch(PartnerLine.prototype, {
    get mlmPoints() {
        return mlmPointsOf(this.pos, this.props.partner);
    },
    get mlmPointsText() {
        return mlmFormatPoints(this.pos, this.mlmPoints);
    },
    get mlmTierClass() {
        return mlmTierClass(this.props.partner);
    },
    /** The customer's cards of other programmes than the member programme
     * (whose points have their own column). */
    mlmOtherCards(cards) {
        const program = this.pos.company.mlm_program_id;
        const programId = program?.id ?? program;
        return (cards || []).filter(
            (card) => (card.program_id?.id ?? card.program_id) !== programId
        );
    },
    mlmOtherCardsTitle(cards) {
        return cards.map((card) => this._getLoyaltyPointsRepr(card)).join("\n");
    },
});
