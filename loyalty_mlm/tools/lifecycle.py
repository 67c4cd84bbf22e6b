"""Member lifecycle stage rules (pure standard library, no Odoo).

The six stages of the Member Lifecycle, decided by an ordered list of rules:
the first rule that matches wins, so a customer is always in exactly one
stage and the reason code says which rule put him there.
"""

from dataclasses import dataclass
from datetime import date

STAGES = (
    "acquisition",
    "onboarding",
    "growth",
    "ambassadorship",
    "retention",
    "winback",
)

# English source strings; the Odoo side translates them.
REASON_LABELS = {
    "no_order": "No qualifying order yet.",
    "lapsed": "No order for longer than the lapse period.",
    "new_customer": "Recent first order, still few orders.",
    "churn_risk": "Churn risk at or above the at-risk level.",
    "order_drop": "Orders in the last 12 months dropped sharply.",
    "referrals": "Has referred new customers.",
    "heavy_true_friend": "Heavy user and true friend (loyal and profitable).",
    "active": "Active customer, no other rule applies.",
}


@dataclass(frozen=True, slots=True)
class StageParams:
    """Thresholds of the stage rules; the defaults are the add-on's own.

    lapse_days: more days than this since the last order means winback.
    onboarding_days: a first order at most this many days ago is recent.
    onboarding_max_orders: onboarding lasts while orders_total is below this.
    at_risk_churn: churn risk (0..100, the probability of no order within the
        churn horizon) from which a customer needs retention...
    at_risk_rise: ...provided it rose at least this many points above his
        own pattern, his churn risk right after his last order
        (clv_model.churn_rise); 0 (default) leaves the churn risk alone. The
        churn risk, a BG/NBD probability, already weighs the silence against
        his own rhythm; on simulated populations (bench/backtest.py) a
        required rise kept customers likely to leave in Growth and blurred
        Retention against Growth, hence off by default. Ignored for scores
        without a rise (from before the churn model).
    drop_pct: a fall of strictly more than this percentage of orders, last 12
        months vs the 12 months before, also means retention.
    ambassador_referrals: referrals needed to become an ambassador; 0 or less
        disables the referral route (it would otherwise match everyone).
    """

    lapse_days: int = 180
    onboarding_days: int = 90
    onboarding_max_orders: int = 3
    at_risk_churn: int = 70
    at_risk_rise: int = 0
    drop_pct: float = 50.0
    ambassador_referrals: int = 1


@dataclass(frozen=True, slots=True)
class StageInput:
    """What the rules look at for one customer (scores already computed)."""

    first_order: date | None
    last_order: date | None
    orders_total: int
    orders_12m: int
    orders_prev_12m: int
    churn_risk: int | None
    usage_segment: str | None
    quadrant: str | None
    referrals: int = 0
    # Points the churn risk rose above his own pattern (None: not scored by
    # the churn model; the absolute churn risk decides then).
    churn_rise: int | None = None


def _days(day: date, today: date) -> int:
    # A future-dated order counts as today's, never as a negative age.
    return max(0, (today - day).days)


def order_drop_exceeds(orders_12m: int, orders_prev_12m: int, drop_pct: float) -> bool:
    """True when orders fell by strictly more than drop_pct percent.

    Formula: (orders_prev_12m - orders_12m) / orders_prev_12m * 100 > drop_pct,
    compared without division so exactly drop_pct is not a drop. No previous
    orders means nothing to drop from: False.
    """
    if orders_prev_12m <= 0:
        return False
    return (orders_prev_12m - orders_12m) * 100 > drop_pct * orders_prev_12m


def decide_stage(
    inp: StageInput, today: date, params: StageParams | None = None
) -> tuple[str, str]:
    """Return (stage code, reason code) for one customer.

    Rules, in this order; the first that matches wins:

    1. acquisition / "no_order": orders_total == 0 or no first order date.
    2. winback / "lapsed": days since the last order > lapse_days.
    3. onboarding / "new_customer": days since the first order <=
       onboarding_days and orders_total < onboarding_max_orders.
    4. retention / "churn_risk": churn_risk >= at_risk_churn (the
       probability of no order within the churn horizon, which rises with
       the silence measured against his own rhythm) and, when known,
       churn_rise >= at_risk_rise;
       retention / "order_drop": orders_prev_12m > 0 and orders_12m fell by
       strictly more than drop_pct percent of orders_prev_12m.
    5. ambassadorship / "referrals": referrals >= ambassador_referrals (when
       that is at least 1); ambassadorship / "heavy_true_friend": usage
       segment "heavy" and quadrant "true_friend".
    6. growth / "active": everything else.

    A missing last order date falls back to the first order date.
    """
    params = params or StageParams()
    if inp.orders_total <= 0 or inp.first_order is None:
        return "acquisition", "no_order"
    last_order = inp.last_order or inp.first_order
    if _days(last_order, today) > params.lapse_days:
        return "winback", "lapsed"
    if (
        _days(inp.first_order, today) <= params.onboarding_days
        and inp.orders_total < params.onboarding_max_orders
    ):
        return "onboarding", "new_customer"
    if (
        inp.churn_risk is not None
        and inp.churn_risk >= params.at_risk_churn
        and (inp.churn_rise is None or inp.churn_rise >= params.at_risk_rise)
    ):
        return "retention", "churn_risk"
    if order_drop_exceeds(inp.orders_12m, inp.orders_prev_12m, params.drop_pct):
        return "retention", "order_drop"
    if params.ambassador_referrals > 0 and inp.referrals >= params.ambassador_referrals:
        return "ambassadorship", "referrals"
    if inp.usage_segment == "heavy" and inp.quadrant == "true_friend":
        return "ambassadorship", "heavy_true_friend"
    return "growth", "active"


def describe_rules(params: StageParams | None = None) -> dict[str, str]:
    """One English line per stage, with the thresholds filled in.

    Lines appear in the order the rules are evaluated.
    """
    p = params or StageParams()
    heavy_rule = "heavy user who is a true friend (loyal and profitable)."
    if p.ambassador_referrals > 0:
        ambassador = f"At least {p.ambassador_referrals} referral(s), or {heavy_rule}"
    else:
        ambassador = heavy_rule[0].upper() + heavy_rule[1:]
    risen = (
        f", risen {p.at_risk_rise} points or more since the last order"
        if p.at_risk_rise > 0
        else ""
    )
    return {
        "acquisition": "No qualifying order yet.",
        "winback": f"Last order more than {p.lapse_days} days ago.",
        "onboarding": (
            f"First order at most {p.onboarding_days} days ago and fewer than "
            f"{p.onboarding_max_orders} orders in total."
        ),
        "retention": (
            f"Churn risk of {p.at_risk_churn} or more{risen}, or orders in the "
            f"last 12 months down by more than {p.drop_pct:g}% on the 12 months "
            "before."
        ),
        "ambassadorship": ambassador,
        "growth": f"Any other customer who ordered in the last {p.lapse_days} days.",
    }
