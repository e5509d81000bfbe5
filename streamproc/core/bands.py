"""Tolerance bands: absolute and relative limits, their precedence, and the per-slot limit they give.

A weight breaches when ``|w - t|`` exceeds the absolute band *or* the relative band ``rel * t``
(the "5/25" rule is ``Band(abs=0.05, rel=0.25)``), so the effective limit is the smaller of the two.
A relative band only applies to a positive target: a holding whose target is 0 is judged by the
absolute band alone (the default's, when its band has none).

Precedence, first match wins (documented in docs/drift-engine.md, "Bands"):
1. the account's per-instrument band (targets ``bands``),
2. the policy's per-instrument override,
3. the policy's default for the instrument's tier (e.g. ``micro`` at 0.02),
4. the account-wide band (targets ``band``),
5. the policy default (abs 0.03).
Tier defaults sit above the account-wide band on purpose: a risk rule for a tier is not loosened
by an account's blanket setting; a per-instrument band is the explicit way to do that.

A relative band is never narrower than the policy's ``rel_floor`` (half a point by default), so a
tiny target stays tradable; and a weight exactly on its edge is inside: the comparison allows
``BAND_TOLERANCE`` of float noise (63 % against 60 +- 3 computes as 0.030000000000000027 over).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

DEFAULT_ABS_BAND = 0.03
DEFAULT_REARM_FRACTION = 0.5
DEFAULT_REL_FLOOR = 0.005
DEFAULT_EDGE_MARGIN = 0.1
BAND_TOLERANCE = 1e-9  # weight points: far below any real breach, far above float noise


@dataclass(frozen=True, slots=True)
class Band:
    """A tolerance band: ``abs`` in weight points (0.03 = 3 points), ``rel`` as a fraction of the target."""

    abs: float | None = DEFAULT_ABS_BAND
    rel: float | None = None

    def __post_init__(self) -> None:
        if self.abs is None and self.rel is None:
            raise ValueError("a band needs an absolute or a relative limit (or both)")
        for name, value in (("abs", self.abs), ("rel", self.rel)):
            if value is not None and not (0.0 < value < 1.0 or (name == "rel" and value > 0.0)):
                raise ValueError(f"band {name} must be a positive fraction, got {value!r}")

    @property
    def abs_or_inf(self) -> float:
        """The absolute limit, +inf when there is none."""
        return math.inf if self.abs is None else self.abs

    @property
    def rel_or_inf(self) -> float:
        """The relative limit, +inf when there is none."""
        return math.inf if self.rel is None else self.rel


@dataclass(frozen=True, slots=True)
class BandPolicy:
    """Deployment-wide band rules: the default, per-tier defaults, per-instrument overrides, re-arming."""

    default: Band = field(default_factory=Band)
    tiers: Mapping[str, Band] = field(default_factory=lambda: {"micro": Band(abs=0.02)})
    instruments: Mapping[str, Band] = field(default_factory=dict)
    # After a breach is answered, the slot re-arms once |deviation| <= rearm_fraction * limit.
    rearm_fraction: float = DEFAULT_REARM_FRACTION
    # The narrowest a relative band gets, in weight points (0.005: a 5/25 band on 1 % is +-0.5 points).
    rel_floor: float = DEFAULT_REL_FLOOR
    # Edge mode aims this fraction of the band inside the edge (0.1: 37.3 % for 40 +- 3), so a fill
    # at the ask or a small price move does not leave the account just outside, ordering dust.
    edge_margin: float = DEFAULT_EDGE_MARGIN

    def __post_init__(self) -> None:
        if not 0.0 <= self.rearm_fraction <= 1.0:
            raise ValueError(f"rearm_fraction must be within [0, 1], got {self.rearm_fraction!r}")
        if not 0.0 <= self.rel_floor < 1.0:
            raise ValueError(f"rel_floor must be within [0, 1), got {self.rel_floor!r}")
        if not 0.0 <= self.edge_margin < 1.0:
            raise ValueError(f"edge_margin must be within [0, 1), got {self.edge_margin!r}")

    def instrument_band(self, instrument: str, tier: str | None) -> Band | None:
        """The policy's band for one instrument (override, else tier default), or None."""
        band = self.instruments.get(instrument)
        if band is None and tier is not None:
            band = self.tiers.get(tier)
        return band


UNSET = (math.nan, math.nan)


def band_pair(band: Band | None) -> tuple[float, float]:
    """(abs, rel) with +inf for a missing limit, or (nan, nan) for no band at this level."""
    return UNSET if band is None else (band.abs_or_inf, band.rel_or_inf)


def effective_limits(
    targets: F64,
    levels: list[tuple[F64, F64]],
    default: Band,
    rel_floor: float = 0.0,
) -> F64:
    """Per-slot limit ``min(abs, max(rel * target, rel_floor))``: the first level whose abs is not NaN
    wins, else ``default``.

    ``levels`` are (abs, rel) arrays broadcastable to ``targets``, highest precedence first.
    """
    abs_ = np.full(targets.shape, default.abs_or_inf)
    rel = np.full(targets.shape, default.rel_or_inf)
    # Walk from lowest to highest precedence so that a higher level overwrites a lower one.
    for lvl_abs, lvl_rel in reversed(levels):
        a = np.broadcast_to(lvl_abs, targets.shape)
        r = np.broadcast_to(lvl_rel, targets.shape)
        have = ~np.isnan(a)
        abs_ = np.where(have, a, abs_)
        rel = np.where(have, r, rel)
    with np.errstate(invalid="ignore"):
        rel_limit = np.where(targets > 0.0, np.maximum(rel * targets, rel_floor), np.inf)
    # a relative-only band says nothing about an unwanted holding (target 0): the default abs judges it
    abs_ = np.where((targets > 0.0) | np.isfinite(abs_), abs_, default.abs_or_inf)
    out: F64 = np.minimum(abs_, rel_limit)
    return out
