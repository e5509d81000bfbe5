"""Platform trading limits: per default, tier and instrument (the first level that states one wins),
resolved per instrument into the columns the leg planner reads (max notional per leg, spread budget,
slippage budget for limit prices, eligibility for buys, max participation of the displayed size,
max position weight after a buy).

Tier names are a declared list matched case-insensitively: reference data naming a tier outside it is
rejected by the caller, never given a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from streamproc.core.bands import Band
from streamproc.core.types import F64, Bool

BUILTIN_TIERS = ("large", "bond", "dividend", "micro")


@dataclass(frozen=True, slots=True)
class LevelLimits:
    """The limits one level (default, a tier, an instrument) states; None: the next level's."""

    band: Band | None = None
    max_leg_notional: float | None = None  # per leg, in account currency
    spread_budget_bps: float | None = None  # a wider quoted spread is not traded
    slippage_bps: float | None = None  # a leg's limit price: buy <= ask x (1 + s), sell >= bid x (1 - s)
    eligible: bool | None = None  # False: restricted, no buys (sells still reduce it)
    max_participation: float | None = None  # a leg at most this share of the displayed size (0, 1]
    max_weight: float | None = None  # a buy never takes the position above this weight (0, 1]

    def __post_init__(self) -> None:
        for name in ("max_participation", "max_weight"):
            p = getattr(self, name)
            if p is not None and not 0.0 < p <= 1.0:
                raise ValueError(f"{name} must be within (0, 1], got {p!r}")
        if self.max_leg_notional is not None and not self.max_leg_notional > 0:
            raise ValueError(f"max_leg_notional must be positive, got {self.max_leg_notional!r}")
        for name in ("spread_budget_bps", "slippage_bps"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


_BUILTIN_TIER_LIMITS = {"micro": LevelLimits(band=Band(abs=0.02))}  # the seed's ±2 points for microcaps


class Resolved(NamedTuple):
    """One instrument's effective limits (inf: none)."""

    max_leg_notional: float
    spread_budget_bps: float
    slippage_bps: float
    eligible: bool
    max_participation: float = math.inf  # inf: no depth cap
    max_weight: float = math.inf  # inf: no cap on the weight a buy leads to


@dataclass(frozen=True)
class Limits:
    """The deployment's limits: a version to log and expose, the declared tiers, and the levels."""

    version: str = "builtin"
    tiers: tuple[str, ...] = BUILTIN_TIERS
    default: LevelLimits = field(default_factory=LevelLimits)
    tier: Mapping[str, LevelLimits] = field(default_factory=lambda: dict(_BUILTIN_TIER_LIMITS))
    instrument: Mapping[str, LevelLimits] = field(default_factory=dict)
    source: str = "built-in defaults"  # where they came from (a file path), for logs and errors

    def __post_init__(self) -> None:
        lowered = [t.lower() for t in self.tiers]
        if len(set(lowered)) != len(lowered):
            raise ValueError(f"tiers {list(self.tiers)} name a tier twice (names are case-insensitive)")
        undeclared = sorted(set(self.tier) - set(lowered))
        if undeclared:
            raise ValueError(f"limits for tiers {undeclared} that are not declared in tiers {lowered}")

    def tier_of(self, raw: str) -> str | None:
        """The declared tier ``raw`` names (case-insensitive), or None when it names none."""
        name = raw.lower()
        return name if name in self.tiers else None

    def resolve(self, instrument: str, tier: str | None) -> Resolved:
        """Instrument, then tier, then default, for each field."""
        levels = [self.instrument.get(instrument), self.tier.get(tier) if tier else None, self.default]

        def first(name: str, fallback: float | bool) -> float | bool:
            for level in levels:
                v = None if level is None else getattr(level, name)
                if v is not None:
                    return v  # type: ignore[no-any-return]
            return fallback

        return Resolved(
            float(first("max_leg_notional", math.inf)),
            float(first("spread_budget_bps", math.inf)),
            float(first("slippage_bps", 0.0)),
            bool(first("eligible", True)),
            float(first("max_participation", math.inf)),
            float(first("max_weight", math.inf)),
        )

    @property
    def default_band(self) -> Band:
        """The band of an instrument no level bands (the default's, else ±3 points)."""
        return self.default.band or Band()

    def tier_bands(self) -> dict[str, Band]:
        return {t: lv.band for t, lv in self.tier.items() if lv.band is not None}

    def instrument_bands(self) -> dict[str, Band]:
        return {i: lv.band for i, lv in self.instrument.items() if lv.band is not None}


class LimitTable:
    """The resolved limits as per-instrument columns (with a sentinel last entry for empty slots)."""

    def __init__(self) -> None:
        self.max_notional: F64 = np.full(1, math.inf)
        self.spread_bps: F64 = np.full(1, math.inf)
        self.slippage_bps: F64 = np.zeros(1)
        self.eligible: Bool = np.ones(1, dtype=bool)
        self.participation: F64 = np.full(1, math.inf)
        self.max_weight: F64 = np.full(1, math.inf)

    def ensure(self, cap: int) -> None:
        """Room for ``cap`` instruments plus the sentinel (as the book's other instrument columns)."""
        have = self.max_notional.size - 1
        if cap <= have:
            return

        def grown(arr: np.ndarray, fill: object) -> np.ndarray:
            out = np.full(cap + 1, fill, dtype=arr.dtype)
            out[:have] = arr[:have]
            out[-1] = arr[-1]
            return out

        self.max_notional = grown(self.max_notional, math.inf)
        self.spread_bps = grown(self.spread_bps, math.inf)
        self.slippage_bps = grown(self.slippage_bps, 0.0)
        self.eligible = grown(self.eligible, True)
        self.participation = grown(self.participation, math.inf)
        self.max_weight = grown(self.max_weight, math.inf)

    def set(self, i: int, r: Resolved) -> None:
        self.max_notional[i] = r.max_leg_notional
        self.spread_bps[i] = r.spread_budget_bps
        self.slippage_bps[i] = r.slippage_bps
        self.eligible[i] = r.eligible
        self.participation[i] = r.max_participation
        self.max_weight[i] = r.max_weight
