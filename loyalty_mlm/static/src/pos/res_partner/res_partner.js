import { ResPartner } from "@point_of_sale/app/models/res_partner";
import { patch } from "@web/core/utils/patch";

patch(ResPartner.prototype, {
    /** The local search finds a member by referral or card code too. */
    get searchString() {
        return [super.searchString, this.mlm_referral_code, this.mlm_card_code]
            .filter(Boolean)
            .join(" ");
    },
    /** A code typed in full picks exactly its member. */
    exactMatch(searchWord) {
        const word = (searchWord || "").toUpperCase();
        return (
            super.exactMatch(...arguments) ||
            Boolean(
                word &&
                    [this.mlm_referral_code, this.mlm_card_code].some(
                        (code) => code && code.toUpperCase() === word
                    )
            )
        );
    },
});
