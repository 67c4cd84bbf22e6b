"""Metrics of score quality: how well yesterday's scores predicted what followed.

Pure standard-library functions (no `odoo` import), for the product's own
*Score quality* check and the backtest: scores as of a past day against what
the customers did since. All are O(n log n) and deterministic; ties are
averaged, never broken by input order.
"""

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of `values` (ascending), tied values sharing the mean of
    the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    n = len(order)
    while i < n:
        j = i
        value = values[order[i]]
        while j + 1 < n and values[order[j + 1]] == value:
            j += 1
        rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        i = j + 1
    return ranks


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for the positive `labels`.

    The probability that a random positive scores higher than a random
    negative, ties counting one half (Mann-Whitney U / (n1 n0), with average
    ranks). None when either class is empty: there is nothing to rank.
    """
    if len(scores) != len(labels):
        raise ValueError("scores and labels must have the same length")
    positives = sum(1 for label in labels if label)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    ranks = average_ranks(scores)
    rank_sum = sum(rank for rank, label in zip(ranks, labels, strict=True) if label)
    u = rank_sum - positives * (positives + 1) / 2.0
    return u / (positives * negatives)


def top_share_capture(
    scores: Sequence[float], outcomes: Sequence[float], share: float = 0.2
) -> float | None:
    """Share of the total outcome (e.g. next period's spend) brought by the
    top `share` of customers by score.

    The top k = share * n customers (fractional k allowed). Customers tied
    at the cut value count in proportion, as their average over every order
    of the ties would: the result never depends on input order. None when
    the outcomes sum to 0 or there is no customer.
    """
    if len(scores) != len(outcomes):
        raise ValueError("scores and outcomes must have the same length")
    if not 0.0 <= share <= 1.0:
        raise ValueError("share must be within 0..1")
    total = math.fsum(outcomes)
    if not scores or total == 0:
        return None
    groups = {}
    for score, outcome in zip(scores, outcomes, strict=True):
        entry = groups.get(score)
        if entry is None:
            groups[score] = [1, outcome]
        else:
            entry[0] += 1
            entry[1] += outcome
    remaining = share * len(scores)
    captured = 0.0
    for score in sorted(groups, reverse=True):
        count, outcome = groups[score]
        if remaining <= 0:
            break
        taken = min(count, remaining)
        captured += outcome * taken / count
        remaining -= taken
    return captured / total


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman rank correlation (Pearson on average ranks); None when
    either side has no spread or fewer than two values."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    n = len(xs)
    if n < 2:
        return None
    rx, ry = average_ranks(xs), average_ranks(ys)
    mean = (n + 1) / 2.0
    sxy = sxx = syy = 0.0
    for a, b in zip(rx, ry, strict=True):
        da, db = a - mean, b - mean
        sxy += da * db
        sxx += da * da
        syy += db * db
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


@dataclass(frozen=True, slots=True)
class BandRow:
    """One band: its label, lower and upper bound of the band's values,
    customers, mean prediction (None when not given) and observed rate."""

    label: str
    low: float
    high: float
    count: int
    predicted: float | None
    observed: float


def calibration_table(
    predicted: Sequence[float], outcomes: Sequence[bool], bands: int = 10
) -> list[BandRow]:
    """Predicted probability against the observed rate, per band of equal
    size by prediction (deciles by default).

    Customers are sorted by prediction and cut into `bands` groups of
    near-equal size; tied predictions never straddle two bands (a tie block
    goes to the band where it starts), so the table depends only on the
    values. Empty bands are left out. A well calibrated score has predicted
    close to observed in every row.
    """
    if len(predicted) != len(outcomes):
        raise ValueError("predicted and outcomes must have the same length")
    if bands < 1:
        raise ValueError("bands must be at least 1")
    order = sorted(range(len(predicted)), key=predicted.__getitem__)
    n = len(order)
    rows = []
    start = 0
    for band in range(bands):
        if start >= n:
            break
        end = max(start + 1, round((band + 1) * n / bands))
        end = min(end, n)
        # Extend to the end of a tie block.
        while end < n and predicted[order[end]] == predicted[order[end - 1]]:
            end += 1
        members = order[start:end]
        rows.append(_band_row(f"{band + 1}", members, predicted, outcomes))
        start = end
    return rows


def _band_row(label, members, values, outcomes, predicted=True):
    count = len(members)
    low = min(values[i] for i in members)
    high = max(values[i] for i in members)
    mean = math.fsum(values[i] for i in members) / count if predicted else None
    observed = sum(1 for i in members if outcomes[i]) / count
    return BandRow(label, low, high, count, mean, observed)


def rate_per_band(
    values: Sequence[float],
    outcomes: Sequence[bool],
    edges: Sequence[float],
    predicted: Sequence[float] | None = None,
) -> list[BandRow]:
    """Observed rate of `outcomes` (e.g. "bought again") per fixed band of
    `values` (e.g. churn risk 0..100 with edges [20, 40, 70, 90]).

    Band k holds edges[k-1] <= value < edges[k] (the first from -inf, the
    last up to +inf); labels read "<20", "20-40", ..., ">=90". With
    `predicted`, each row also gives the band's mean prediction. Empty bands
    are left out.
    """
    if len(values) != len(outcomes):
        raise ValueError("values and outcomes must have the same length")
    if list(edges) != sorted(edges):
        raise ValueError("edges must be increasing")
    members = [[] for _ in range(len(edges) + 1)]
    for i, value in enumerate(values):
        members[bisect_right(edges, value)].append(i)
    rows = []
    for k, group in enumerate(members):
        if not group:
            continue
        if k == 0:
            label = f"<{edges[0]:g}" if edges else "all"
        elif k == len(edges):
            label = f">={edges[-1]:g}"
        else:
            label = f"{edges[k - 1]:g}-{edges[k]:g}"
        row = _band_row(label, group, values, outcomes, predicted=False)
        if predicted is not None:
            mean = math.fsum(predicted[i] for i in group) / len(group)
            row = BandRow(row.label, row.low, row.high, row.count, mean, row.observed)
        rows.append(row)
    return rows


def rate_per_group(
    groups: Sequence[str], outcomes: Sequence[bool]
) -> dict[str, tuple[int, float]]:
    """Per group label (e.g. lifecycle stage): (customers, observed rate)."""
    if len(groups) != len(outcomes):
        raise ValueError("groups and outcomes must have the same length")
    counts = {}
    for group, outcome in zip(groups, outcomes, strict=True):
        entry = counts.setdefault(group, [0, 0])
        entry[0] += 1
        entry[1] += 1 if outcome else 0
    return {g: (c, hits / c) for g, (c, hits) in sorted(counts.items())}
