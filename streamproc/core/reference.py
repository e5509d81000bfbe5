"""Plain per-account Python drift evaluation: the oracle the vectorized kernel is tested against and
the baseline the kernel benchmark compares with. Deliberately simple; never used on a hot path."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from streamproc.core.bands import BAND_TOLERANCE


@dataclass(frozen=True, slots=True)
class AccountDrift:
    """Drift of one account: weights by instrument, breached instruments, or why it was not evaluated."""

    value: float
    weights: dict[str, float]
    breached: frozenset[str]
    evaluable: bool
    group_weights: dict[str, float] = field(default_factory=dict)
    breached_groups: frozenset[str] = frozenset()
    cash_breached: bool = False


def evaluate_account(
    holdings: Mapping[str, float],
    cash: float,
    targets: Mapping[str, float],
    limits: Mapping[str, float],
    mids: Mapping[str, float | None],
    groups: Mapping[str, tuple[Collection[str], float]] | None = None,
    cash_limit: float = math.inf,
) -> AccountDrift:
    """Weights at mid and band breaches (|w - t| > limit, beyond float noise) of one account, one
    instrument at a time; of its groups (name -> (members, limit)): the sum of the members' weights
    against the sum of their targets; and of its cash weight against its target (1 - the sum of the
    targets) within ``cash_limit``."""
    names = set(holdings) | {i for i, t in targets.items() if t > 0}
    if any(mids.get(i) is None for i in names):
        return AccountDrift(math.nan, {}, frozenset(), False)
    values = {i: holdings.get(i, 0.0) * (mids[i] or 0.0) for i in names}
    total = sum(values.values()) + cash
    if total <= 0:
        return AccountDrift(total, {}, frozenset(), False)
    weights = {i: v / total for i, v in values.items()}
    breached = frozenset(
        i for i in names if abs(weights[i] - targets.get(i, 0.0)) > limits.get(i, math.inf) + BAND_TOLERANCE
    )
    group_weights: dict[str, float] = {}
    breached_groups: set[str] = set()
    for name, (members, limit) in (groups or {}).items():
        weight = sum(weights.get(m, 0.0) for m in members)
        target = sum(targets.get(m, 0.0) for m in members)
        group_weights[name] = weight
        if abs(weight - target) > limit + BAND_TOLERANCE:
            breached_groups.add(name)
    cash_target = max(0.0, 1.0 - sum(targets.values()))
    cash_breached = abs(cash / total - cash_target) > cash_limit + BAND_TOLERANCE
    return AccountDrift(
        total, weights, breached, True, group_weights, frozenset(breached_groups), cash_breached
    )
