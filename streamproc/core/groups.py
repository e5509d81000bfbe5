"""Groups of an account's instruments (asset classes, sleeves) banded as one weight, vectorized.

A group's weight is the sum of its members' weights and its target the sum of their targets (the
members' weights stay in the account's ``weights``), so a 60/40 built from 4 equity and 4 bond ETFs is
judged at class level: 66.5 % equity against 60 +- 3 breaches although no single ETF is out of its
band. Each instrument is in at most one group of an account.

Layout: per account up to ``G`` groups (``G`` grows to the account with the most), as accounts x G
arrays beside the book's accounts x K slot arrays, and per slot the index of its group (-1: none). A
group's deviation is the sum of its members' deviations: one masked matrix-vector product per group
column, no per-account Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np

from streamproc.core.bands import BAND_TOLERANCE, UNSET, Band, band_pair, effective_limits
from streamproc.core.sleeves import NO_KILL, Kill
from streamproc.core.types import F64, I8, I64, Bool, Mode

_Arr = TypeVar("_Arr", bound=np.ndarray)

MAX_GROUPS = 32  # per account: a model with more classes than this is a configuration error


@dataclass(frozen=True, slots=True)
class Group:
    """One group of an account: its members (instrument ids), its band (None: the policy default) and
    its rebalance mode (None: the account's); a sleeve also has kill criteria, when it opened (ms),
    and whether it was closed (its members are then sold)."""

    name: str
    members: tuple[str, ...]
    band: Band | None = None
    mode: Mode | None = None
    kill: Kill | None = None
    opened_at: int | None = None
    closed: bool = False

    @property
    def sleeve(self) -> bool:
        """A group with a lifecycle."""
        return self.kill is not None or self.opened_at is not None

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError(f"group {self.name!r} has no members")


def check_groups(groups: Sequence[Group], cash: str) -> None:
    """Raise ValueError unless every instrument is in at most one group and the groups are few."""
    if len(groups) > MAX_GROUPS:
        raise ValueError(f"{len(groups)} groups; at most {MAX_GROUPS} per account")
    seen: dict[str, str] = {}
    for group in groups:
        for member in group.members:
            if member == cash:
                raise ValueError(f"group {group.name!r}: {cash} is not an instrument (it has its own target)")
            if member in seen:
                raise ValueError(f"instrument {member} is in groups {seen[member]!r} and {group.name!r}")
            seen[member] = group.name


@dataclass(frozen=True, slots=True)
class GroupRow:
    """An account's groups as the book stores them: member instrument index -> group index, and per
    group its name, (abs, rel) band pair and mode (-1: the account's)."""

    names: tuple[str, ...]
    member_of: Mapping[int, int]
    bands: tuple[tuple[float, float], ...]
    modes: tuple[int, ...]
    sleeves: tuple[bool, ...] = ()  # per group: a sleeve (the rest only matter for sleeves)
    kills: tuple[tuple[float, float, float, float], ...] = ()
    opened: tuple[int, ...] = ()
    closed: tuple[bool, ...] = ()


class GroupTable:
    """The book's groups: per account x group the target, band, limit, mode and disarmed flag; per
    account which layout (tuple of group names, shared by the accounts of one model) it has.

    Nothing here is a Python object per account, so a million grouped accounts cost only their arrays;
    the members of a group that have no slot in the book yet (not held, weight 0) wait in ``orphans``.
    """

    def __init__(self) -> None:
        self.width = 0  # G
        self.layouts: list[tuple[str, ...]] = []
        self._layout_ids: dict[tuple[str, ...], int] = {}
        self.layout: I64 = np.full(0, -1, dtype=np.int64)  # per account, -1: no groups
        self.count: I64 = np.zeros(0, dtype=np.int64)  # groups per account
        self.orphans: dict[int, dict[int, int]] = {}  # row -> {instrument index: group} without a slot
        self.target: F64 = np.zeros((0, 0))
        self.abs: F64 = np.zeros((0, 0))
        self.rel: F64 = np.zeros((0, 0))
        self.limit: F64 = np.zeros((0, 0))  # +inf on unused columns
        self.mode: I8 = np.zeros((0, 0), dtype=np.int8)  # -1: the account's
        self.disarmed: Bool = np.zeros((0, 0), dtype=bool)
        self.scratch = Scratch()

    def ensure(self, accounts: int, width: int) -> None:
        """Capacity for ``accounts`` rows and ``width`` groups per row."""
        n, g = self.target.shape
        if accounts <= n and width <= g:
            return
        n2, g2 = max(accounts, n), max(width, g)

        def grown(arr: np.ndarray, fill: object) -> np.ndarray:
            out = np.full((n2, g2), fill, dtype=arr.dtype)
            out[:n, :g] = arr
            return out

        self.target = grown(self.target, 0.0)
        self.abs = grown(self.abs, np.nan)
        self.rel = grown(self.rel, np.nan)
        self.limit = grown(self.limit, np.inf)
        self.mode = grown(self.mode, np.int8(-1))
        self.disarmed = grown(self.disarmed, False)
        for name, fill in (("layout", -1), ("count", 0)):
            old = getattr(self, name)
            arr = np.full(n2, fill, dtype=np.int64)
            arr[:n] = old
            setattr(self, name, arr)
        self.width = max(self.width, width)

    def clear(self, rows: I64) -> None:
        """Forget the groups of ``rows``."""
        self.layout[rows] = -1
        self.count[rows] = 0
        self.target[rows] = 0.0
        self.limit[rows] = np.inf
        self.abs[rows] = self.rel[rows] = np.nan
        self.mode[rows] = -1
        self.disarmed[rows] = False
        if self.orphans:
            for row in set(self.orphans).intersection(rows.tolist()):
                del self.orphans[row]

    def assign(self, rows: I64, names: tuple[str, ...], abs_: F64, rel: F64, mode: I8) -> None:
        """Give ``rows`` (cleared before) the groups ``names``, with per row x group band and mode."""
        g = len(names)
        layout = self._layout_ids.get(names)
        if layout is None:
            layout = self._layout_ids[names] = len(self.layouts)
            self.layouts.append(names)
        self.ensure(int(rows.max()) + 1, g)
        self.layout[rows] = layout
        self.count[rows] = g
        self.abs[rows, :g], self.rel[rows, :g], self.mode[rows, :g] = abs_, rel, mode

    def recompute(self, rows: I64, slot_group: I8, slot_target: F64, default: Band, rel_floor: float) -> None:
        """Targets (sums of the members') and limits of the groups of ``rows``."""
        if self.width == 0 or rows.size == 0:
            return
        mask = self.count[rows] > 0
        if not mask.any():
            return
        grouped, sg, st = rows[mask], slot_group[mask], slot_target[mask]
        target = np.stack([np.where(sg == g, st, 0.0).sum(axis=1) for g in range(self.width)], axis=1)
        self.target[grouped, : self.width] = target
        a, r = self.abs[grouped, : self.width], self.rel[grouped, : self.width]
        limits = effective_limits(target, [(a, r)], default, rel_floor)
        used = np.arange(self.width) < self.count[grouped][:, None]
        self.limit[grouped, : self.width] = np.where(used, limits, np.inf)

    def names(self, row: int) -> tuple[str, ...]:
        """The names of a row's groups, in column order (empty: none)."""
        layout = int(self.layout[row]) if row < self.layout.size else -1
        return () if layout < 0 else self.layouts[layout]

    def name(self, row: int, group: int) -> str:
        """The wire name of one of a row's groups."""
        return self.names(row)[group]


def group_row(groups: Sequence[Group], index: Callable[[str], int]) -> GroupRow:
    """A ``GroupRow`` from an account's groups; ``index`` gives (registering) an instrument's index."""
    return GroupRow(
        names=tuple(g.name for g in groups),
        member_of={index(m): j for j, g in enumerate(groups) for m in g.members},
        bands=tuple(band_pair(g.band) if g.band is not None else UNSET for g in groups),
        modes=tuple(-1 if g.mode is None else int(g.mode) for g in groups),
        sleeves=tuple(g.sleeve for g in groups),
        kills=tuple(NO_KILL if g.kill is None else g.kill.columns() for g in groups),
        opened=tuple(g.opened_at or 0 for g in groups),
        closed=tuple(g.closed for g in groups),
    )


class Scratch:
    """Reusable rows x K buffers for ``group_drift``, grown to the largest evaluation seen."""

    def __init__(self) -> None:
        self._buf: F64 = np.empty(0)
        self._member: Bool = np.empty(0, dtype=bool)

    def buffers(self, shape: tuple[int, ...]) -> tuple[F64, Bool]:
        """A float and a bool array of ``shape`` (views of the kept buffers; contents undefined)."""
        size = int(np.prod(shape))
        if self._buf.size < size:
            self._buf = np.empty(size)
            self._member = np.empty(size, dtype=bool)
        return self._buf[:size].reshape(shape), self._member[:size].reshape(shape)


@dataclass(frozen=True, slots=True)
class GroupDrift:
    """Per evaluated account x group: deviation (sum of the members'), target, limit and excess; and
    per slot its group (-1: none)."""

    slot_group: I8
    deviations: F64
    targets: F64
    limits: F64
    excess: F64  # |deviation| - limit - BAND_TOLERANCE where an armed group breaches, else 0
    marks: F64 | None = None  # sleeves: value at mid over value at entry mids (NaN: not a sleeve)

    @property
    def breaching(self) -> Bool:
        """Accounts with a group outside its band."""
        out: Bool = (self.excess @ np.ones(self.excess.shape[1])) > 0.0  # excess >= 0: a sum, not any()
        return out

    def take(self, which: Bool | I64) -> GroupDrift:
        """The same drift restricted to some of its accounts."""
        marks = None if self.marks is None else self.marks[which]
        return GroupDrift(
            self.slot_group[which],
            self.deviations[which],
            self.targets[which],
            self.limits[which],
            self.excess[which],
            marks,
        )

    def member_values(self, per_group: _Arr, fill: float) -> _Arr:
        """A per-group array (rows x G) spread onto the slots (rows x K), ``fill`` outside groups."""
        return spread(self.slot_group, per_group, fill)


def spread(slot_group: I8, per_group: _Arr, fill: float | bool) -> _Arr:
    """A per-group array (rows x G) spread onto the slots (rows x K) of ``slot_group`` (-1: in no
    group, which gets ``fill``)."""
    inside = slot_group >= 0
    if per_group.shape[1] == 0:
        return cast(_Arr, np.full(inside.shape, fill, dtype=per_group.dtype))
    idx = np.where(inside, slot_group, 0).astype(np.int64)
    values = np.take_along_axis(per_group, idx, axis=1)
    return cast(_Arr, np.where(inside, values, np.asarray(fill, dtype=per_group.dtype)))


def group_drift(
    slot_group: I8,
    deviations: F64,
    targets: F64,
    limits: F64,
    disarmed: Bool,
    bad: Bool,
    scratch: Scratch | None = None,
) -> GroupDrift:
    """Group deviations and breaches of evaluated rows: ``slot_group`` and ``deviations`` are rows x K,
    the rest rows x G; ``bad`` marks rows that are not evaluable (NaN deviations; their excess is 0).

    Per group one masked product into a buffer and one matrix-vector sum; ``scratch`` keeps the
    buffers between passes (a fresh 80 MB temporary costs its page faults every pass)."""
    m, width = targets.shape
    ones = np.ones(slot_group.shape[1])
    buf, member = (scratch or Scratch()).buffers(deviations.shape)
    dev = np.empty((m, width))
    for g in range(width):
        np.equal(slot_group, g, out=member)
        np.multiply(deviations, member, out=buf)  # NaN only on bad rows, cleared below
        dev[:, g] = buf @ ones
    excess = np.abs(dev)
    np.subtract(excess, limits, out=excess)
    np.subtract(excess, BAND_TOLERANCE, out=excess)
    np.maximum(excess, 0.0, out=excess)
    if bad.any():
        excess[bad] = 0.0
    if disarmed.any():
        excess[disarmed] = 0.0
    return GroupDrift(slot_group, dev, targets, limits, excess)


def desired_members(drift: GroupDrift, mode: I8, targets: F64, edge_margin: float) -> F64:
    """Per slot of the planned rows: the weight a member of a breached group trades to (NaN: its group
    did not breach). The group goes back to its target (``target``), to just inside its edge (``edge``)
    or to half its band (``half``), its members in their target proportions."""
    gt, lim = drift.targets, drift.limits
    direction = np.sign(drift.deviations)
    with np.errstate(invalid="ignore"):
        goal = np.where(mode == Mode.EDGE, gt + direction * lim * (1.0 - edge_margin), gt)
        goal = np.where(mode == Mode.HALF, gt + direction * lim * 0.5, goal)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(gt > 0.0, np.clip(goal, 0.0, 1.0) / gt, 0.0)
    breached = drift.excess > 0.0
    member_scale = drift.member_values(np.where(breached, scale, np.nan), np.nan)
    out: F64 = targets * member_scale
    return out
