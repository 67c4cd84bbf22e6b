/** Shared by the badge, the customer list and the receipt. */

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
];
