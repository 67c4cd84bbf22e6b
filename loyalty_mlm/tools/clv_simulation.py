"""Transaction histories drawn from a known BG/NBD + Gamma-Gamma process.

Pure standard library, seeded (`random.Random`): for the model's tests
(parameter recovery, calibration) and the backtest, where the truth (who is
alive, each customer's rate) is known.

Generative process (FHL05, section 3; time in days):

* each customer draws lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b), and,
  for spend, nu ~ Gamma(q, rate v);
* his first purchase is at a uniform time in [0, acquisition_days);
* purchases follow a Poisson process of rate lambda; after each purchase
  but the first he drops out with probability p (nothing after that);
* each purchase's amount is Gamma(p_spend, rate nu), mean p_spend / nu.
"""

import random
from dataclasses import dataclass

from .clv_model import BgNbdParams, GammaGammaParams


@dataclass(frozen=True, slots=True)
class SimulatedCustomer:
    """One customer's latent parameters and purchases (times in days from
    the start of the simulation, amounts)."""

    customer: int
    rate: float
    dropout: float
    spend_rate: float
    death: float  # time of death (inf: alive to the end)
    times: list[float]
    amounts: list[float]


def simulate_customers(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    customers: int,
    acquisition_days: float,
    end_days: float,
    seed: int,
) -> list[SimulatedCustomer]:
    """`customers` histories up to `end_days` (acquisition within the first
    `acquisition_days`, which must not exceed end_days)."""
    if not 0 < acquisition_days <= end_days:
        raise ValueError("need 0 < acquisition_days <= end_days")
    rng = random.Random(seed)
    result = []
    for customer in range(customers):
        rate = rng.gammavariate(bgnbd.r, 1.0 / bgnbd.alpha)
        dropout = rng.betavariate(bgnbd.a, bgnbd.b)
        spend_rate = rng.gammavariate(gamma_gamma.q, 1.0 / gamma_gamma.v)
        now = rng.uniform(0.0, acquisition_days)
        times = [now]
        death = float("inf")
        while True:
            now += rng.expovariate(rate) if rate > 0 else float("inf")
            if now >= end_days:
                break
            times.append(now)
            if rng.random() < dropout:
                death = now
                break
        amounts = [rng.gammavariate(gamma_gamma.p, 1.0 / spend_rate) for _t in times]
        result.append(
            SimulatedCustomer(
                customer, rate, dropout, spend_rate, death, times, amounts
            )
        )
    return result


def summarize(
    customers: list[SimulatedCustomer], cut: float, whole_days: bool = False
) -> dict[str, list]:
    """Calibration summary as of `cut` of the customers acquired before it,
    and what each did after it.

    Columns: customer, frequency (x), recency (t_x), age (T), orders, mean
    (mean amount of the orders up to the cut), alive (truth at the cut),
    future_orders, future_spend (after the cut, up to the simulation's end).
    With whole_days, times are floored to days first and purchases on the
    same day are one purchase occasion for x (as the nightly job counts
    them), while orders and amounts still count each order.
    """
    columns = {
        key: []
        for key in (
            "customer",
            "frequency",
            "recency",
            "age",
            "orders",
            "mean",
            "alive",
            "future_orders",
            "future_spend",
        )
    }
    for c in customers:
        if c.times[0] >= cut:
            continue
        before = [(t, m) for t, m in zip(c.times, c.amounts, strict=True) if t < cut]
        after = [m for t, m in zip(c.times, c.amounts, strict=True) if t >= cut]
        if whole_days:
            days = sorted({int(t) for t, _m in before})
            first, last, age = days[0], days[-1], int(cut) - days[0]
            x = len(days) - 1
        else:
            first, last, age = before[0][0], before[-1][0], cut - before[0][0]
            x = len(before) - 1
        columns["customer"].append(c.customer)
        columns["frequency"].append(x)
        columns["recency"].append(last - first)
        columns["age"].append(age)
        columns["orders"].append(len(before))
        columns["mean"].append(sum(m for _t, m in before) / len(before))
        columns["alive"].append(c.death >= cut)
        columns["future_orders"].append(len(after))
        columns["future_spend"].append(sum(after))
    return columns
