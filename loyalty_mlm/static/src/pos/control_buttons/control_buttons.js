import { ControlButtons } from "@point_of_sale/app/screens/product_screen/control_buttons/control_buttons";
import { makeAwaitable } from "@point_of_sale/app/store/make_awaitable_dialog";
import { NumberPopup } from "@point_of_sale/app/utils/input_popups/number_popup";
import { AlertDialog } from "@web/core/confirmation_dialog/confirmation_dialog";
import { _t } from "@web/core/l10n/translation";
import { patch } from "@web/core/utils/patch";

patch(ControlButtons.prototype, {
    /** The selected customer's card in the member programme, if any. */
    get mlmMemberCard() {
        const partner = this.pos.get_order()?.get_partner();
        const program = this.pos.company.mlm_program_id;
        if (!partner || !program) {
            return null;
        }
        const programId = program.id ?? program;
        return (
            this.pos
                .getLoyaltyCards(partner)
                .find((card) => (card.program_id?.id ?? card.program_id) === programId) || null
        );
    },
    /** Redeem exactly what the member asks: capped by the balance, the order
     * total and the reward's step (its minimum points). */
    async clickMlmUsePoints() {
        const order = this.pos.get_order();
        const card = this.mlmMemberCard;
        const reward = card?.program_id.reward_ids.find(
            (r) => r.reward_type === "discount" && r.discount_mode === "per_point"
        );
        if (!card || !reward) {
            return;
        }
        if (card.points < 0 || order.get_partner().mlm_redemption_blocked) {
            this.dialog.add(AlertDialog, {
                title: _t("Redemption blocked"),
                body: _t(
                    "The points balance is negative: points were taken back after they were spent. No redemption until it is positive again."
                ),
            });
            return;
        }
        const step = reward.required_points || 1;
        const byTotal = Math.floor(order.get_total_with_tax() / reward.discount);
        const most = Math.floor(Math.min(order._getRealCouponPoints(card.id), byTotal) / step) * step;
        const typed = await makeAwaitable(this.dialog, NumberPopup, {
            title: _t("Points to use (at most %s)", most),
            startingValue: "",
        });
        if (!typed) {
            return;
        }
        const points = Math.floor(Math.min(parseFloat(typed), most) / step) * step;
        if (!(points > 0)) {
            this.dialog.add(AlertDialog, {
                title: _t("Not enough points"),
                body: _t("This reward uses points in steps of %s.", step),
            });
            return;
        }
        const result = order._applyReward(reward, card.id, { cost: points });
        if (result !== true) {
            this.dialog.add(AlertDialog, { title: _t("Points not used"), body: result });
        }
        this.pos.updateRewards();
    },
});
