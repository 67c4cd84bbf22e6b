import { PartnerList } from "@point_of_sale/app/screens/partner_list/partner_list";
import { patch } from "@web/core/utils/patch";

patch(PartnerList.prototype, {
    /** The server search (Enter, "Search more") also finds a member by
     * referral code or member card code: the same single request, its domain
     * widened with both codes (exact, case-insensitive). */
    async getNewPartners() {
        const query = (this.state.query || "").trim();
        if (!query) {
            return super.getNewPartners(...arguments);
        }
        const data = this.pos.data;
        const searchRead = data.searchRead;
        data.searchRead = (model, domain, ...rest) =>
            searchRead.call(
                data,
                model,
                model === "res.partner"
                    ? [
                          "|",
                          "|",
                          ["mlm_referral_code", "=ilike", query],
                          ["mlm_card_code", "=ilike", query],
                          ...domain,
                      ]
                    : domain,
                ...rest
            );
        let result;
        try {
            // The request leaves synchronously: the native method is only
            // widened for this one call.
            result = super.getNewPartners(...arguments);
        } finally {
            data.searchRead = searchRead;
        }
        return await result;
    },
});
