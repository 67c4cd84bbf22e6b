import { ControlButtons } from "@point_of_sale/app/screens/product_screen/control_buttons/control_buttons";
import { makeAwaitable } from "@point_of_sale/app/store/make_awaitable_dialog";
import { NumberPopup } from "@point_of_sale/app/utils/input_popups/number_popup";
import { AlertDialog } from "@web/core/confirmation_dialog/confirmation_dialog";
import { _t } from "@web/core/l10n/translation";
import { patch } from "@web/core/utils/patch";
import { mlmFormatPoints } from "../member/member";

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
        // The real balance: points this order will earn are not there yet
        // (the badge's figure), minus what the order already spends.
        const alreadySpent = order
            ._get_reward_lines()
            .filter((line) => (line.coupon_id?.id ?? line.coupon_id) === card.id)
            .reduce((sum, line) => sum + (line.points_cost || 0), 0);
        const balance = card.points - alreadySpent;
        const byTotal = Math.floor(order.get_total_with_tax() / reward.discount);
        const most = Math.floor(Math.min(balance, byTotal) / step) * step;
        if (!(most > 0)) {
            let body;
            if (!(order.get_total_with_tax() > 0)) {
                body = _t("Add products first: points pay for at most the order total.");
            } else if (balance < step) {
                body = _t(
                    "The member has %(balance)s points; this reward uses points in steps of %(step)s.",
                    { balance: mlmFormatPoints(this.pos, balance), step }
                );
            } else {
                body = _t(
                    "The order total is below the value of %(step)s points, the smallest step.",
                    { step }
                );
            }
            this.dialog.add(AlertDialog, { title: _t("No points to use"), body });
            return;
        }
        const typed = await makeAwaitable(this.dialog, NumberPopup, {
            title: _t("Points to use (at most %s)", mlmFormatPoints(this.pos, most)),
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
