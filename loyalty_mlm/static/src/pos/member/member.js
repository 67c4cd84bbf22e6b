/** Shared by the badge, the customer list and the receipt. */
import { formatFloat } from "@web/core/utils/numbers";

/** The member programme's point decimals: none when it earns whole points. */
export function mlmPointsDigits(pos) {
    const program = pos.company.mlm_program_id;
    const id = program?.id ?? program;
    const record = id && pos.models["loyalty.program"].get(id);
    return record?.mlm_points_digits ?? 2;
}

/** Points as the member programme shows them, in the user's number format
 * ("1,250" or "812.50", never "812.5"). */
export function mlmFormatPoints(pos, points, digits = mlmPointsDigits(pos)) {
    return formatFloat(points || 0, { digits: [69, digits] });
}

/** The partner's balance: the member card the register keeps up to date
 * after each order, else the balance loaded with the customer. */
export function mlmPointsOf(pos, partner) {
    const program = pos.company.mlm_program_id;
    const programId = program?.id ?? program;
    const card = pos
        .getLoyaltyCards?.(partner)
        ?.find((c) => (c.program_id?.id ?? c.program_id) === programId);
    return card ? card.points : partner.mlm_points;
}

/** Classes of the tier badge: the tier's colour (Odoo's colour list). */
export function mlmTierClass(partner) {
    const color = partner.mlm_tier_color;
    return color ? `o_colorlist_item_color_${color}` : "text-bg-light";
}

/** Our partner fields, read again after an enrolment. */
export const MLM_PARTNER_FIELDS = [
    "mlm_member_since",
    "mlm_stage_name",
    "mlm_points",
    "mlm_points_expiring_soon",
    "mlm_redemption_blocked",
    "mlm_tier_name",
    "mlm_tier_color",
    "mlm_referral_code",
    "mlm_card_code",
    "mlm_pos_flags",
    "mlm_pos_next_action",
];
