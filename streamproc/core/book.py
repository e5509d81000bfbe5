"""The book: many accounts x instruments as numpy arrays, with incremental updates.

Layout: row-padded sparse (ELLPACK, a CSR with a fixed row width). Account ``r`` owns ``K`` slots;
a slot holds one instrument the account holds or targets (``-1`` = free). ``K`` grows to the widest
account. Compared with plain CSR this keeps per-account sums as contiguous ``axis=1`` reductions and
lets one holding change in place; the cost is padding when widths vary a lot.

Instrument vectors (bid, ask, mid, flags, lot) carry one extra sentinel entry at the end, which the
free slots' index ``-1`` gathers: mid 0, flags 0, so a free slot adds nothing and blocks nothing.

An inverted index (instrument -> accounts holding or targeting it) answers "which accounts does this
price batch affect" without a scan: CSR arrays rebuilt lazily, plus a list of slots added since.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast

import numpy as np

from streamproc.core.bands import UNSET, Band, BandPolicy, band_pair, effective_limits
from streamproc.core.cash import DEFAULT_CASH_BUFFER, CashPlan, CashRules, cash_drift
from streamproc.core.evaluate import Evaluation, Shift, evaluate_arrays
from streamproc.core.groups import (
    Group,
    GroupDrift,
    GroupRow,
    GroupTable,
    check_groups,
    desired_members,
    group_drift,
    group_row,
    spread,
)
from streamproc.core.ids import IdMap
from streamproc.core.legs import LegLimits, LegPlan, plan_legs
from streamproc.core.limits import Limits, LimitTable
from streamproc.core.sleeves import SleeveTable, Trigger, sleeve_marks, triggers
from streamproc.core.trading import NO_STATES, TradingState, TradingStates
from streamproc.core.types import F64, I8, I32, I64, Bool, Mode, PriceFlag

DEFAULT_LOT = 0.0001
CASH = "CASH"
_WEIGHT_SUM_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class RowSpec:
    """An account's band settings for ``Book.load_rows`` (what ``set_targets`` takes besides weights)."""

    band: tuple[float, float] = UNSET  # (abs, rel) from ``band_pair``
    slot_bands: Mapping[int, tuple[float, float]] = field(default_factory=dict)  # instrument index -> pair
    mode: Mode = Mode.TARGET
    min_trade: float = 0.0
    liquidate: bool = False
    groups: GroupRow | None = None  # from ``Book.group_row``
    cash: CashRules | None = None
    min_trade_fraction: float = 0.0


def _grow(arr: np.ndarray, n: int, fill: object, axis: int = 0) -> np.ndarray:
    """``arr`` extended to length ``n`` along ``axis`` with ``fill``."""
    shape = list(arr.shape)
    extra = n - shape[axis]
    if extra <= 0:
        return arr
    shape[axis] = extra
    return np.concatenate([arr, np.full(shape, fill, dtype=arr.dtype)], axis=axis)


_Arr = TypeVar("_Arr", bound=np.ndarray)


def _take_rows(arr: _Arr, rows: I64, full: bool) -> _Arr:
    """Rows of ``arr``: a view when ``rows`` is every row in order, else a copy via np.take
    (several times faster than ``arr[rows]`` for many short rows)."""
    if full:
        return cast(_Arr, arr[: rows.size])
    return cast(_Arr, np.take(arr, rows, axis=0))


class Book:
    """Accounts, their holdings, cash and targets, and the latest prices, ready for vectorized evaluation."""

    def __init__(
        self,
        policy: BandPolicy | None = None,
        *,
        slots: int = 4,
        default_mode: Mode = Mode.TARGET,
        default_min_trade: float = 0.0,
        default_cash_buffer: float = DEFAULT_CASH_BUFFER,
        limits: Limits | None = None,
    ) -> None:
        self.policy = policy or BandPolicy()
        self.limits = limits or Limits()  # max notional, spread and slippage budgets, eligibility
        self.default_mode = default_mode
        self.default_min_trade = default_min_trade
        self.default_cash_buffer = default_cash_buffer
        self.accounts = IdMap()
        self.instruments = IdMap()
        # per instrument, + 1 sentinel at the end
        self._bid: F64 = np.zeros(1)
        self._bid_size: F64 = np.full(1, np.nan)  # displayed sizes of the last quote (NaN: not given)
        self._ask_size: F64 = np.full(1, np.nan)
        self._ask: F64 = np.zeros(1)
        self._mid: F64 = np.zeros(1)
        self._flags = np.zeros(1, dtype=np.uint8)
        self._lot: F64 = np.ones(1)
        self._inst_abs: F64 = np.full(1, math.nan)
        self._inst_rel: F64 = np.full(1, math.nan)
        self._tier: list[str | None] = []
        self.limit_table = LimitTable()  # the resolved limits per instrument
        self.trading = NO_STATES  # operators' halts and reductions
        self._inst_state = np.zeros(1, dtype=np.int8)  # TradingState per instrument (+ sentinel)
        # per account
        self._cash: F64 = np.zeros(0)
        self._cash_target: F64 = np.ones(0)
        self._row_abs: F64 = np.zeros(0)
        self._row_rel: F64 = np.zeros(0)
        self._mode = np.zeros(0, dtype=np.int8)
        self._min_trade: F64 = np.zeros(0)
        self._liquidate: Bool = np.zeros(0, dtype=bool)  # exit untargeted holdings without a breach
        self._min_frac: F64 = np.zeros(0)  # minimum leg as a fraction of the account's value
        self._cash_abs: F64 = np.zeros(0)  # the cash band (NaN: the account's band, else the default)
        self._cash_rel: F64 = np.zeros(0)
        self._cash_limit: F64 = np.zeros(0)
        self._cash_buffer: F64 = np.zeros(0)
        self._reserve: F64 = np.zeros(0)  # cash set aside for a withdrawal: not the portfolio's
        self._reserving: set[int] = set()
        self._acct_state = np.zeros(0, dtype=np.int8)  # the account's own TradingState
        self._slot_bands: dict[int, dict[int, tuple[float, float]]] = {}
        # per slot
        self._k = max(1, slots)
        self._inst: I64 = np.full((0, self._k), -1, dtype=np.int64)  # intp: gathers need no index conversion
        self._qty: F64 = np.zeros((0, self._k))
        self._target: F64 = np.zeros((0, self._k))
        self._limit: F64 = np.full((0, self._k), np.inf)
        self._disarmed: Bool = np.zeros((0, self._k), dtype=bool)
        self._group: I8 = np.full((0, self._k), -1, dtype=np.int8)  # the slot's group, -1: none
        self.groups = GroupTable()
        self._entry: F64 = np.full((0, self._k), np.nan)  # sleeve members: the mid when first held
        self.sleeves = SleeveTable()
        self._sleeved: Bool = np.zeros(0, dtype=bool)  # accounts with a sleeve
        self._sleeve_changed: set[int] = set()  # entries recorded or peaks risen, not yet stored
        self._limits_due: set[int] = set()  # rows with slots whose limit is not computed yet
        # inverted index
        self._index_ptr: I64 | None = None
        self._index_rows: I64 = np.zeros(0, dtype=np.int64)
        self._pending_inst: list[int] = []
        self._pending_rows: list[int] = []

    # ---- sizes and capacity ------------------------------------------------------------------

    @property
    def n_accounts(self) -> int:
        """Number of accounts in the book."""
        return len(self.accounts)

    @property
    def n_instruments(self) -> int:
        """Number of instruments known to the book."""
        return len(self.instruments)

    @property
    def slots(self) -> int:
        """Current row width K (slots per account)."""
        return self._k

    def nbytes(self) -> int:
        """Bytes held by the book's numpy arrays (ids and dicts not included)."""
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)]
        return int(sum(a.nbytes for a in arrays))

    def _ensure_instruments(self, n: int) -> None:
        cap = len(self._mid) - 1
        if n <= cap:
            return
        new_cap = max(n, 2 * cap, 16)

        def grown(arr: np.ndarray, fill: object) -> np.ndarray:
            out = np.full(new_cap + 1, fill, dtype=arr.dtype)
            out[:cap] = arr[:cap]
            out[-1] = arr[-1]  # the sentinel stays last
            return out

        self._bid = grown(self._bid, np.nan)
        self._ask = grown(self._ask, np.nan)
        self._bid_size = grown(self._bid_size, np.nan)
        self._ask_size = grown(self._ask_size, np.nan)
        self._mid = grown(self._mid, np.nan)
        self._flags = grown(self._flags, np.uint8(0))  # set to MISSING on registration
        self._lot = grown(self._lot, DEFAULT_LOT)
        self._inst_abs = grown(self._inst_abs, np.nan)
        self._inst_rel = grown(self._inst_rel, np.nan)
        self.limit_table.ensure(new_cap)
        self._inst_state = grown(self._inst_state, np.int8(0))

    def _ensure_accounts(self, n: int) -> None:
        cap = len(self._cash)
        if n <= cap:
            return
        new_cap = max(n, 2 * cap, 64)
        self._cash = _grow(self._cash, new_cap, 0.0)
        self._cash_target = _grow(self._cash_target, new_cap, 1.0)
        self._row_abs = _grow(self._row_abs, new_cap, np.nan)
        self._row_rel = _grow(self._row_rel, new_cap, np.nan)
        self._mode = _grow(self._mode, new_cap, np.int8(self.default_mode))
        self._min_trade = _grow(self._min_trade, new_cap, self.default_min_trade)
        self._liquidate = _grow(self._liquidate, new_cap, False)
        self._min_frac = _grow(self._min_frac, new_cap, 0.0)
        self._cash_abs = _grow(self._cash_abs, new_cap, np.nan)
        self._cash_rel = _grow(self._cash_rel, new_cap, np.nan)
        self._cash_limit = _grow(self._cash_limit, new_cap, self.policy.default.abs_or_inf)
        self._cash_buffer = _grow(self._cash_buffer, new_cap, self.default_cash_buffer)
        self._reserve = _grow(self._reserve, new_cap, 0.0)
        self._acct_state = _grow(self._acct_state, new_cap, np.int8(0))
        self._inst = _grow(self._inst, new_cap, -1)
        self._qty = _grow(self._qty, new_cap, 0.0)
        self._target = _grow(self._target, new_cap, 0.0)
        self._limit = _grow(self._limit, new_cap, np.inf)
        self._disarmed = _grow(self._disarmed, new_cap, False)
        self._group = _grow(self._group, new_cap, -1)
        self.groups.ensure(new_cap, self.groups.width)
        self._entry = _grow(self._entry, new_cap, np.nan)
        self._sleeved = _grow(self._sleeved, new_cap, False)
        self.sleeves.ensure(new_cap, self.groups.width)

    def _ensure_slots(self, k: int) -> None:
        if k <= self._k:
            return
        k = max(k, 2 * self._k)
        self._inst = _grow(self._inst, k, -1, axis=1)
        self._qty = _grow(self._qty, k, 0.0, axis=1)
        self._target = _grow(self._target, k, 0.0, axis=1)
        self._limit = _grow(self._limit, k, np.inf, axis=1)
        self._disarmed = _grow(self._disarmed, k, False, axis=1)
        self._group = _grow(self._group, k, -1, axis=1)
        self._entry = _grow(self._entry, k, np.nan, axis=1)
        self._k = k

    # ---- ids ---------------------------------------------------------------------------------

    def instrument(self, instrument: str) -> int:
        """Dense index of an instrument, registering it (unpriced) when new."""
        idx = self.instruments.add(instrument)
        if idx == len(self._tier):
            self._ensure_instruments(idx + 1)
            self._tier.append(None)
            self._flags[idx] = PriceFlag.MISSING
            self._mid[idx] = self._bid[idx] = self._ask[idx] = np.nan
            self._refresh_instrument_band(idx)
        return idx

    def instrument_indices(self, instruments: Iterable[str]) -> I64:
        """Dense indices of many instruments, registering new ones."""
        names = list(instruments)
        found = self.instruments.get_many(names)
        if None in found:
            found = [self.instrument(n) if i is None else i for n, i in zip(names, found, strict=True)]
        return np.asarray(found, dtype=np.int64)

    def account(self, account: str) -> int:
        """Dense row of an account, adding an empty one when new."""
        row = self.accounts.add(account)
        self._ensure_accounts(row + 1)
        own = self.trading.accounts()
        if own:
            self._acct_state[row] = own.get(account, TradingState.ACTIVE)
        return row

    # ---- reference data and prices -----------------------------------------------------------

    def set_instrument(self, instrument: str, *, lot: float | None = None, tier: str | None = None) -> None:
        """Reference data for an instrument: tradable lot and tier (which selects its default band).

        ``None`` leaves a field as it was.
        """
        idx = self.instrument(instrument)
        if lot is not None:
            if not lot > 0:
                raise ValueError(f"lot for {instrument} must be positive, got {lot!r}")
            self._lot[idx] = lot
        if tier is not None and tier != self._tier[idx]:
            self._tier[idx] = tier
            self._refresh_instrument_band(idx)
            self._recompute_limits(self.accounts_affected_by(np.array([idx])))

    def tier_of(self, instrument: str) -> str | None:
        """The instrument's tier, if reference data gave one."""
        idx = self.instruments.get(instrument)
        return None if idx is None else self._tier[idx]

    def lot_of(self, instrument: str) -> float:
        """The instrument's tradable increment."""
        return float(self._lot[self.instrument(instrument)])

    def _refresh_instrument_band(self, idx: int) -> None:
        name, tier = self.instruments.id_of(idx), self._tier[idx]
        band = self.policy.instrument_band(name, tier)
        self._inst_abs[idx], self._inst_rel[idx] = band_pair(band)
        self.limit_table.set(idx, self.limits.resolve(name, tier))
        self._inst_state[idx] = self.trading.instrument(name, tier)

    def apply_prices(self, instruments: I64 | I32, bid: F64, ask: F64) -> None:
        """Set the latest bid/ask (mid derived) of a batch of instruments and clear their MISSING flag."""
        self._bid[instruments] = bid
        self._ask[instruments] = ask
        self._mid[instruments] = (np.asarray(bid) + np.asarray(ask)) * 0.5
        self._flags[instruments] &= np.uint8(~PriceFlag.MISSING & 0xFF)

    def set_trading(self, states: TradingStates) -> None:
        """The trading states in force (from the operators' ``halt``/``reduce``/``resume``)."""
        self.trading = states
        for idx in range(self.n_instruments):
            self._inst_state[idx] = states.instrument(self.instruments.id_of(idx), self._tier[idx])
        self._acct_state[:] = TradingState.ACTIVE
        for account, state in states.accounts().items():
            row = self.accounts.get(account)
            if row is not None:
                self._acct_state[row] = state

    def trading_state(self, instrument: str) -> TradingState:
        """An instrument's effective state (its own, its tier's, the global one: the strictest)."""
        return TradingState(int(self._inst_state[self.instrument(instrument)]))

    def apply_sizes(self, instruments: I64 | I32, bid_size: F64, ask_size: F64) -> None:
        """Set the displayed sizes of the quotes just applied (NaN: the quote gave none)."""
        self._bid_size[instruments] = bid_size
        self._ask_size[instruments] = ask_size

    def sizes(self, instrument: str) -> tuple[float, float]:
        """The displayed (bid, ask) sizes of the instrument's last quote (NaN: not given)."""
        idx = self.instrument(instrument)
        return float(self._bid_size[idx]), float(self._ask_size[idx])

    def set_price(self, instrument: str, bid: float, ask: float) -> None:
        """Set one instrument's bid/ask (convenience over ``apply_prices``)."""
        idx = np.array([self.instrument(instrument)])
        self.apply_prices(idx, np.array([bid]), np.array([ask]))

    def set_flag(self, instruments: I64 | I32, flag: PriceFlag, on: bool) -> None:
        """Raise or clear a price flag (stale, crossed, ...) on instruments; flagged ones block evaluation."""
        if on:
            self._flags[instruments] |= np.uint8(flag)
        else:
            self._flags[instruments] &= np.uint8(~flag & 0xFF)

    def price(self, instrument: str) -> tuple[float, float, int]:
        """(bid, ask, flags) of an instrument."""
        idx = self.instrument(instrument)
        return float(self._bid[idx]), float(self._ask[idx]), int(self._flags[idx])

    # ---- account state -----------------------------------------------------------------------

    def _slot(self, row: int, inst: int, create: bool) -> int | None:
        hits = np.flatnonzero(self._inst[row] == inst)
        if hits.size:
            return int(hits[0])
        if not create:
            return None
        free = np.flatnonzero(self._inst[row] < 0)
        if free.size == 0:
            slot = self._k
            self._ensure_slots(self._k + 1)
        else:
            slot = int(free[0])
        self._inst[row, slot] = inst
        waiting = self.groups.orphans.get(row)
        self._group[row, slot] = -1 if waiting is None else waiting.pop(inst, -1)
        self._pending_inst.append(inst)
        self._pending_rows.append(row)
        return slot

    def _release_if_empty(self, row: int, slot: int) -> None:
        if self._qty[row, slot] == 0.0 and self._target[row, slot] == 0.0:
            self._limit[row, slot] = np.inf
            self._disarmed[row, slot] = False
            self._entry[row, slot] = np.nan
            group = int(self._group[row, slot])
            if group >= 0:  # still a member: it waits for its next slot
                self.groups.orphans.setdefault(row, {})[int(self._inst[row, slot])] = group
                self._group[row, slot] = -1
            self._inst[row, slot] = -1

    def set_holding(self, account: str, instrument: str, qty: float) -> None:
        """Absolute holding after a position change (``CASH`` sets cash); re-arms the account's bands."""
        if not qty >= 0:
            raise ValueError(f"holding of {instrument} in {account} must be >= 0, got {qty!r}")
        if instrument == CASH:
            self.set_cash(account, qty)
            return
        row = self.account(account)
        inst = self.instrument(instrument)
        self._disarmed[row] = False
        self.groups.disarmed[row] = False
        slot = self._slot(row, inst, create=qty > 0)
        if slot is None:
            return
        self._qty[row, slot] = qty
        if self._target[row, slot] == 0.0:
            self._limits_due.add(row)  # a held, untargeted slot: its limit is computed before it is read
        self._release_if_empty(row, slot)

    def set_cash(self, account: str, amount: float) -> None:
        """Cash balance (price 1); re-arms the account's bands."""
        if not amount >= 0:
            raise ValueError(f"cash of {account} must be >= 0, got {amount!r}")
        row = self.account(account)
        self._cash[row] = amount
        self._disarmed[row] = False
        self.groups.disarmed[row] = False

    def set_reserve(self, account: str, amount: float) -> None:
        """Cash set aside for a withdrawal (0: none): the account is evaluated and traded as if it
        were already paid out, so the reserve is raised when short and never invested."""
        if not amount >= 0:
            raise ValueError(f"reserve of {account} must be >= 0, got {amount!r}")
        row = self.account(account)
        self._reserve[row] = amount
        if amount > 0:
            self._reserving.add(row)
        else:
            self._reserving.discard(row)

    def reserve(self, account: str) -> float:
        """Cash set aside for a withdrawal."""
        row = self.accounts.get(account)
        return 0.0 if row is None else float(self._reserve[row])

    def set_targets(
        self,
        account: str,
        weights: Mapping[str, float],
        *,
        band: Band | None = None,
        bands: Mapping[str, Band] | None = None,
        mode: Mode | None = None,
        min_trade: float | None = None,
        liquidate: bool = False,
        groups: list[Group] | None = None,
        cash: CashRules | None = None,
        min_trade_fraction: float = 0.0,
    ) -> None:
        """Replace an account's target weights (the rest is its cash target) and its band settings;
        ``liquidate`` sells every untargeted holding in full at the next evaluation, breach or not."""
        bad = {k: v for k, v in weights.items() if not v >= 0}
        if bad:
            raise ValueError(f"target weights must be >= 0; {account} has {bad}")
        total = math.fsum(weights.values())
        if total > 1.0 + _WEIGHT_SUM_TOLERANCE:
            raise ValueError(f"target weights of {account} sum to {total:.6f} > 1")
        if CASH in weights:
            raise ValueError(f"{CASH} is not a target instrument: the cash target is 1 - sum(weights)")
        if min_trade is not None and not min_trade >= 0:
            raise ValueError(f"min_trade of {account} must be >= 0, got {min_trade!r}")
        if groups:
            check_groups(groups, CASH)
        row = self.account(account)
        wanted = {self.instrument(i): float(w) for i, w in weights.items() if w > 0}
        for old in np.flatnonzero(self._inst[row] >= 0).tolist():
            if int(self._inst[row, old]) not in wanted:
                self._target[row, old] = 0.0
                self._release_if_empty(row, old)
        for inst, w in wanted.items():
            slot = self._slot(row, inst, create=True)
            assert slot is not None
            self._target[row, slot] = w
        self._cash_target[row] = max(0.0, 1.0 - total)
        self._row_abs[row], self._row_rel[row] = band_pair(band)
        if bands:
            self._slot_bands[row] = {self.instrument(i): band_pair(b) for i, b in bands.items()}
        else:
            self._slot_bands.pop(row, None)
        if mode is not None:
            self._mode[row] = mode
        if min_trade is not None:
            self._min_trade[row] = min_trade
        self._liquidate[row] = liquidate
        self._set_cash(row, cash, min_trade_fraction)
        self._set_groups(row, self.group_row(groups) if groups else None)
        self._recompute_limits(np.array([row]))
        self._disarmed[row] = False

    def _set_cash(self, row: int, cash: CashRules | None, min_trade_fraction: float) -> None:
        if not 0.0 <= min_trade_fraction < 1.0:
            raise ValueError(f"min_trade_fraction must be within [0, 1), got {min_trade_fraction!r}")
        self._min_frac[row] = min_trade_fraction
        band = None if cash is None else cash.band
        self._cash_abs[row], self._cash_rel[row] = band_pair(band)
        buffer = None if cash is None else cash.buffer
        self._cash_buffer[row] = self.default_cash_buffer if buffer is None else buffer

    def group_row(self, groups: list[Group]) -> GroupRow:
        """An account's groups as ``RowSpec.groups`` takes them (registers their members)."""
        check_groups(groups, CASH)
        return group_row(groups, self.instrument)

    def _set_groups(self, row: int, groups: GroupRow | None) -> None:
        rows = np.array([row], dtype=np.int64)
        self.groups.clear(rows)
        self.sleeves.clear(rows)
        self._sleeved[row] = False
        self._entry[row] = np.nan
        self._group[row] = -1
        if groups is None:
            return
        g = len(groups.names)
        pairs = np.asarray(groups.bands, dtype=np.float64).reshape(g, 2)
        modes = np.asarray(groups.modes, dtype=np.int8)[None, :]
        self.groups.assign(rows, groups.names, pairs[None, :, 0], pairs[None, :, 1], modes)
        self.sleeves.ensure(len(self._cash), self.groups.width)
        if any(groups.sleeves):
            sl = self.sleeves
            sl.is_sleeve[row, :g] = groups.sleeves
            sl.kill[row, :g] = np.asarray(groups.kills, dtype=np.float64).reshape(g, 4)
            sl.opened_ms[row, :g] = groups.opened
            sl.closed[row, :g] = groups.closed
            sl.rows.add(row)
            self._sleeved[row] = True
        slotted = self._inst[row].tolist()
        for s, inst in enumerate(slotted):
            if inst >= 0:
                self._group[row, s] = groups.member_of.get(inst, -1)
        waiting = {i: j for i, j in groups.member_of.items() if i not in set(slotted)}
        if waiting:
            self.groups.orphans[row] = waiting

    def load_groups(self, rows: I64, slot_group: I8, names: tuple[str, ...], abs_: F64, rel: F64) -> None:
        """Bulk groups for loaded ``rows`` that share the group names ``names``: per row x slot the
        group (-1: none; every member must have a slot), per row x group the band's abs and rel (NaN
        rel: none; NaN abs: the default band). The fast path for benchmarks and loads of one model;
        the groups take their accounts' modes."""
        rows = np.asarray(rows, dtype=np.int64)
        if slot_group.shape[0] != rows.size or slot_group.shape[1] > self._k:
            raise ValueError("load_groups: one row of slot groups per account, at most the book's width")
        if slot_group.size and int(slot_group.max()) >= len(names):
            raise ValueError("load_groups: a slot names a group beyond `names`")
        self.groups.clear(rows)
        self._group[rows] = -1
        self._group[rows, : slot_group.shape[1]] = np.where(
            self._inst[rows, : slot_group.shape[1]] >= 0, slot_group, -1
        )
        mode = np.full((rows.size, len(names)), -1, dtype=np.int8)
        rel = np.where(np.isnan(rel) & ~np.isnan(abs_), np.inf, rel)  # a band without a relative limit
        self.groups.assign(rows, names, abs_, rel, mode)
        self._recompute_limits(rows)

    def _settle_limits(self) -> None:
        """Compute the limits of slots added since the last read, in one pass (not ~60 us per slot)."""
        if self._limits_due:
            rows = np.fromiter(self._limits_due, dtype=np.int64, count=len(self._limits_due))
            self._limits_due.clear()
            self._recompute_limits(rows)

    def _recompute_limits(self, rows: I64) -> None:
        if rows.size == 0:
            return
        inst = self._inst[rows]
        slot_abs = np.full(inst.shape, np.nan)
        slot_rel = np.full(inst.shape, np.nan)
        if self._slot_bands:  # only accounts with per-instrument bands need a Python pass
            for j in np.flatnonzero(np.isin(rows, list(self._slot_bands))).tolist():
                explicit = self._slot_bands[int(rows[j])]
                for s, i in enumerate(inst[j].tolist()):
                    if i in explicit:
                        slot_abs[j, s], slot_rel[j, s] = explicit[i]
        levels = [
            (slot_abs, slot_rel),
            (self._inst_abs[inst], self._inst_rel[inst]),
            (self._row_abs[rows][:, None], self._row_rel[rows][:, None]),
        ]
        targets = self._target[rows]
        limits = effective_limits(targets, levels, self.policy.default, self.policy.rel_floor)
        if self.groups.width:  # a member is judged by its group's band unless it has its own
            explicit = ~np.isnan(slot_abs) | ~np.isnan(levels[1][0])
            limits = np.where((self._group[rows] >= 0) & ~explicit, np.inf, limits)
            self.groups.recompute(
                rows, self._group[rows], targets, self.policy.default, self.policy.rel_floor
            )
            if self.sleeves.rows:  # a closed sleeve: its members are sold, the group no longer judged
                width = self.groups.width
                closed = self.sleeves.closed[rows, :width]
                if closed.any():
                    limits = np.where(spread(self._group[rows], closed, False), 0.0, limits)
                    self.groups.limit[rows, :width] = np.where(
                        closed, np.inf, self.groups.limit[rows, :width]
                    )
        cash_target = self._cash_target[rows][:, None]
        cash_levels = [
            (self._cash_abs[rows][:, None], self._cash_rel[rows][:, None]),
            (self._row_abs[rows][:, None], self._row_rel[rows][:, None]),
        ]
        cash_limit = effective_limits(cash_target, cash_levels, self.policy.default, self.policy.rel_floor)
        self._cash_limit[rows] = cash_limit[:, 0]
        liquidating = self._liquidate[rows]
        if liquidating.any():  # an untargeted holding of a liquidating account breaches at any weight
            limits = np.where(liquidating[:, None] & (targets == 0.0), 0.0, limits)
        self._limit[rows] = np.where(inst >= 0, limits, np.inf)

    def load_rows(
        self,
        accounts: Iterable[str],
        instruments: I32 | I64,
        qty: F64,
        targets: F64,
        cash: F64,
        specs: Mapping[int, RowSpec] | None = None,
    ) -> I64:
        """Bulk-load whole accounts (replacing them): slot arrays of instrument indices (-1 = none), and
        band settings for the accounts (by position in ``accounts``) that have their own.

        The fast path for start-up loads and benchmarks; returns the rows written.
        """
        qty, targets, cash = (np.asarray(a, dtype=np.float64) for a in (qty, targets, cash))
        if instruments.size and not (instruments.min() >= -1 and instruments.max() < self.n_instruments):
            raise ValueError("load_rows: instrument indices must come from Book.instrument() (or be -1)")
        if not ((qty >= 0).all() and (targets >= 0).all() and (cash >= 0).all()):
            raise ValueError("load_rows: quantities, targets and cash must be >= 0")
        if (targets.sum(axis=1) > 1.0 + _WEIGHT_SUM_TOLERANCE).any():
            raise ValueError("load_rows: target weights of an account sum to more than 1")
        rows = np.asarray(self.accounts.add_many(accounts), dtype=np.int64)
        if rows.size == 0:
            return rows
        self._ensure_accounts(int(rows.max()) + 1)
        self._ensure_instruments(self.n_instruments)
        k = instruments.shape[1]
        self._ensure_slots(k)
        inst = np.full((rows.size, self._k), -1, dtype=np.int64)
        inst[:, :k] = instruments
        self._inst[rows] = inst
        self._qty[rows] = _grow(qty, self._k, 0.0, axis=1)
        self._target[rows] = _grow(targets, self._k, 0.0, axis=1)
        self._cash[rows] = cash
        self._cash_target[rows] = np.maximum(0.0, 1.0 - self._target[rows].sum(axis=1))
        self._disarmed[rows] = False
        self._row_abs[rows] = self._row_rel[rows] = np.nan
        self._mode[rows] = self.default_mode
        self._min_trade[rows] = self.default_min_trade
        self._liquidate[rows] = False
        self._min_frac[rows] = 0.0
        self._cash_abs[rows] = self._cash_rel[rows] = np.nan
        self._cash_buffer[rows] = self.default_cash_buffer
        self._reserve[rows] = 0.0
        self._reserving.difference_update(rows.tolist())
        self._group[rows] = -1
        self.groups.clear(rows)
        self.sleeves.clear(rows)
        self._sleeved[rows] = False
        self._entry[rows] = np.nan
        for row in rows.tolist():
            self._slot_bands.pop(row, None)
        for j, spec in (specs or {}).items():
            row = int(rows[j])
            self._row_abs[row], self._row_rel[row] = spec.band
            if spec.slot_bands:
                self._slot_bands[row] = dict(spec.slot_bands)
            self._mode[row] = spec.mode
            self._min_trade[row] = spec.min_trade
            self._liquidate[row] = spec.liquidate
            self._set_cash(row, spec.cash, spec.min_trade_fraction)
            if spec.groups is not None:
                self._set_groups(row, spec.groups)
        self._recompute_limits(rows)
        self._index_ptr = None  # structural change of many rows: rebuild the index on next use
        return rows

    # ---- inverted index ----------------------------------------------------------------------

    def _rebuild_index(self) -> None:
        n = self.n_accounts
        flat = self._inst[:n].ravel()
        used = flat >= 0
        insts = flat[used]
        rows = np.repeat(np.arange(n, dtype=np.int64), self._k)[used]
        order = np.argsort(insts, kind="stable")
        self._index_rows = rows[order]
        counts = np.bincount(insts, minlength=self.n_instruments)
        ptr = np.zeros(self.n_instruments + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        self._index_ptr = ptr
        self._pending_inst.clear()
        self._pending_rows.clear()

    def accounts_affected_by(self, instruments: I64 | I32) -> I64:
        """Rows of accounts holding or targeting any of ``instruments`` (sorted, unique; may include a
        few that no longer do, which costs one needless evaluation, never a missed one)."""
        ptr = self._index_ptr
        if ptr is None or len(self._pending_inst) > max(4096, len(self._index_rows) // 16):
            self._rebuild_index()
            ptr = self._index_ptr
            assert ptr is not None
        hit = np.zeros(self.n_accounts, dtype=bool)
        for i in np.unique(instruments).tolist():
            if i + 1 < len(ptr):
                hit[self._index_rows[ptr[i] : ptr[i + 1]]] = True
        if self._pending_inst:
            pend_rows = np.asarray(self._pending_rows, dtype=np.int64)
            hit[pend_rows[np.isin(np.asarray(self._pending_inst), instruments)]] = True
        out: I64 = np.flatnonzero(hit)
        return out

    def referenced(self) -> Bool:
        """Per instrument: held or targeted by some account in the book (from the inverted index, so
        O(instruments); may include a few no longer held, like ``accounts_affected_by``)."""
        if self._index_ptr is None:
            self._rebuild_index()
        ptr = self._index_ptr
        assert ptr is not None
        out = np.zeros(self.n_instruments, dtype=bool)
        out[: len(ptr) - 1] = np.diff(ptr) > 0
        out[np.asarray(self._pending_inst, dtype=np.int64)] = True
        return out

    def flagged(self) -> I64:
        """Instruments with any price flag (missing, stale, crossed, ...)."""
        out: I64 = np.flatnonzero(self._flags[: self.n_instruments])
        return out

    def flagged_counts(self, rows: I64) -> I64:
        """Per instrument: how many of ``rows`` hold or target it while it has a price flag."""
        inst = self._inst[rows].ravel()
        inst = inst[inst >= 0]
        inst = inst[self._flags[inst] != 0]
        out: I64 = np.bincount(inst, minlength=self.n_instruments).astype(np.int64)
        return out

    # ---- evaluation and legs -----------------------------------------------------------------

    def evaluate(self, rows: I64 | None = None, shift: Shift | None = None) -> Evaluation:
        """Evaluate ``rows`` (all accounts when None) in one vectorized pass, re-arming recovered bands;
        with ``shift``, on holdings projected by what working orders will still trade."""
        self._settle_limits()
        n = self.n_accounts
        if rows is None:
            rows, full = np.arange(n, dtype=np.int64), True
        else:
            rows = np.asarray(rows, dtype=np.int64)
            full = rows.size == n and bool(np.array_equal(rows, np.arange(n)))
        inst = _take_rows(self._inst, rows, full)
        qty = _take_rows(self._qty, rows, full)
        target = _take_rows(self._target, rows, full)
        limit = _take_rows(self._limit, rows, full)
        disarmed = _take_rows(self._disarmed, rows, full)
        cash = _take_rows(self._cash, rows, full)
        sellable = spendable = None
        if shift is not None:
            qty, cash, sellable, spendable = shift.apply(inst, qty, cash)
        if self._reserving:  # a withdrawal's cash is not the portfolio's (cash may go below 0)
            reserve = _take_rows(self._reserve, rows, full)
            if spendable is None:
                sellable, spendable = qty, cash
            cash = cash - reserve
            spendable = np.maximum(spendable - reserve, 0.0)
        ev = evaluate_arrays(rows, inst, qty, target, limit, disarmed, cash, self._mid, self._flags)
        if sellable is not None and spendable is not None:
            ev = dataclasses.replace(ev, sellable=sellable, spendable=spendable)
        if disarmed.any():
            with np.errstate(invalid="ignore"):  # NaN deviations of unevaluable rows stay disarmed
                inside = np.abs(ev.deviations) <= self.policy.rearm_fraction * ev.limits
            self._disarmed[rows] = disarmed & ~inside
        if self.groups.width and self.groups.count[rows].any():
            ev = ev.with_groups(self._group_drift(ev, _take_rows(self._group, rows, full), full))
        cash_target = _take_rows(self._cash_target, rows, full)
        cash_limit = _take_rows(self._cash_limit, rows, full)
        return ev.with_cash(cash_drift(ev.cash, ev.value, cash_target, cash_limit, ev.status != 0))

    def _group_drift(self, ev: Evaluation, slot_group: I8, full: bool) -> GroupDrift:
        """Group deviations of an evaluation's rows, and their re-arming (as for slots)."""
        g, rows = self.groups, ev.rows
        width = g.width
        target = _take_rows(g.target, rows, full)[:, :width]
        limit = _take_rows(g.limit, rows, full)[:, :width]
        gdisarmed = _take_rows(g.disarmed, rows, full)[:, :width]
        drift = group_drift(slot_group, ev.deviations, target, limit, gdisarmed, ev.status != 0, g.scratch)
        if gdisarmed.any():
            with np.errstate(invalid="ignore"):
                inside = np.abs(drift.deviations) <= self.policy.rearm_fraction * drift.limits
            g.disarmed[rows, :width] = gdisarmed & ~inside
        if self.sleeves.rows:
            pos = np.flatnonzero(self._sleeved[rows])
            if pos.size:
                marks = np.full(drift.deviations.shape, np.nan)
                marks[pos] = self._sleeve_marks(rows[pos], slot_group[pos], ev.instruments[pos], ev.qty[pos])
                drift = dataclasses.replace(drift, marks=marks)
        return drift

    def _sleeve_marks(self, rows: I64, slot_group: I8, inst: I64, qty: F64) -> F64:
        """Marks of the open sleeves of ``rows``, recording the entry mid of members first held and
        raising the peaks."""
        sl, width = self.sleeves, self.groups.width
        live = sl.is_sleeve[rows, :width] & ~sl.closed[rows, :width]
        in_live = spread(slot_group, live, False)
        mid = np.take(self._mid, inst, mode="wrap")
        entry = self._entry[rows]
        k = inst.shape[1]
        fresh = in_live & (qty > 0.0) & np.isnan(entry[:, :k]) & (mid > 0.0)
        if fresh.any():
            entry[:, :k] = np.where(fresh, mid, entry[:, :k])
            self._entry[rows] = entry
            self._sleeve_changed.update(rows[fresh.any(axis=1)].tolist())
        marks = sleeve_marks(slot_group, qty, mid, entry[:, :k], live)
        peak = sl.peak[rows, :width]
        higher = np.fmax(peak, marks)
        # stored again when the peak rose by 0.2 %: a drawdown is judged on a peak at most that low
        risen = ~np.isnan(higher) & (np.isnan(peak) | (higher > peak * 1.002))
        if risen.any():
            sl.peak[rows, :width] = np.where(risen, higher, peak)
            self._sleeve_changed.update(rows[risen.any(axis=1)].tolist())
        return marks

    def sleeve_triggers(self, ev: Evaluation, now_ms: int) -> list[tuple[int, int, Trigger, float]]:
        """(row, group, trigger, mark) of the open sleeves of ``ev`` whose kill criteria hold now."""
        if not self.sleeves.rows or ev.groups is None:
            return []
        pos = np.flatnonzero(self._sleeved[ev.rows])
        if pos.size == 0:
            return []
        rows, width, sl = ev.rows[pos], self.groups.width, self.sleeves
        marks = ev.groups.marks[pos] if ev.groups.marks is not None else np.full((pos.size, width), np.nan)
        live = sl.is_sleeve[rows, :width] & ~sl.closed[rows, :width]
        hit = triggers(
            marks, sl.peak[rows, :width], sl.opened_ms[rows, :width], sl.kill[rows, :width], ~live, now_ms
        )
        bad = ev.status[pos] != 0  # no price, no judgement (the calendar stop waits too)
        hit[bad] = Trigger.NONE
        return [
            (int(rows[j]), int(g), Trigger(int(hit[j, g])), float(marks[j, g]))
            for j, g in zip(*np.nonzero(hit), strict=True)
        ]

    def sleeve_state(self, row: int) -> dict[str, tuple[dict[str, float], float]]:
        """Per sleeve of a row: the entry mids of its members by instrument, and its peak mark."""
        out: dict[str, tuple[dict[str, float], float]] = {}
        names = self.groups.names(row)
        for g, name in enumerate(names):
            if not self.sleeves.is_sleeve[row, g]:
                continue
            members = np.flatnonzero((self._group[row] == g) & ~np.isnan(self._entry[row]))
            entries = {
                self.instruments.id_of(int(self._inst[row, s])): float(self._entry[row, s]) for s in members
            }
            out[name] = (entries, float(self.sleeves.peak[row, g]))
        return out

    def restore_sleeve(self, row: int, name: str, entries: Mapping[str, float], peak: float) -> None:
        """Put back a sleeve's stored entry mids and peak (after its targets were applied again)."""
        names = self.groups.names(row)
        if name not in names:
            return
        g = names.index(name)
        for s in np.flatnonzero(self._group[row] == g).tolist():
            inst = self.instruments.id_of(int(self._inst[row, s]))
            if inst in entries:
                self._entry[row, s] = entries[inst]
        self.sleeves.peak[row, g] = peak

    def drain_sleeve_changes(self) -> set[int]:
        """Rows whose sleeve entries or peaks changed since the last call (to store)."""
        out, self._sleeve_changed = self._sleeve_changed, set()
        return out

    def plan(self, ev: Evaluation, limits: LegLimits | None = None, to_target: Bool | None = None) -> LegPlan:
        """Legs for the breaching accounts of ``ev``, each in its own rebalance mode (a group's members
        in the group's mode, when it has one); accounts marked ``to_target`` (per account of ``ev``: a
        calendar run) trade every weight back to target, whatever their modes."""
        picked = np.flatnonzero(ev.breaching)
        br = ev.take(picked)
        mode = self._mode[br.rows]
        group_desired = None
        if br.groups is not None:
            gmode = self.groups.mode[br.rows, : self.groups.width]
            gmode = np.where(gmode >= 0, gmode, mode[:, None]).astype(np.int8)
            group_desired = desired_members(br.groups, gmode, br.targets, self.policy.edge_margin)
            mode = np.where(br.groups.slot_group >= 0, br.groups.member_values(gmode, 0), mode[:, None])
        if to_target is not None and to_target.any():
            whole = to_target[picked]
            mode = np.where(whole if mode.ndim == 1 else whole[:, None], Mode.TARGET, mode)
            if group_desired is not None:  # members to their own targets, not to a group's edge
                group_desired = np.where(whole[:, None], np.nan, group_desired)
        cash = None
        if br.cash_drift is not None:
            other: Bool = np.any(br.breach_slots, axis=1)
            if br.groups is not None:
                other |= br.groups.breaching
            if to_target is not None:  # a calendar run rebalances the whole account, cash with it
                other |= to_target[picked]
            cash = CashPlan(br.cash_drift, self._cash_buffer[br.rows], other, self._mode[br.rows])
        min_trade = np.maximum(self._min_trade[br.rows], self._min_frac[br.rows] * br.value)
        return plan_legs(
            br,
            bid=self._bid,
            ask=self._ask,
            lot=self._lot,
            cash_target=self._cash_target[br.rows],
            mode=mode.astype(np.int8),
            min_trade=min_trade,
            limits=limits or LegLimits(),
            edge_margin=self.policy.edge_margin,
            group_desired=group_desired,
            cash=cash,
            table=self.limit_table,
            sizes=(self._bid_size, self._ask_size),
            trading=(self._inst_state, self._acct_state[br.rows]),
        )

    def mark_answered(self, plan: LegPlan) -> None:
        """Disarm the breached slots that got a leg (hysteresis until back inside or a position update).

        Slots are matched by instrument, so a plan stays safe to apply after the book's rows grew wider
        or a slot was reused.
        """
        traded = plan.breach_slots & (plan.qty != 0.0)
        has = traded.any(axis=1)
        rows = plan.rows[has]
        k = plan.instruments.shape[1]
        same = self._inst[rows, :k] == plan.instruments[has]
        self._disarmed[rows, :k] |= traded[has] & same
        if plan.groups is not None:  # a breached group some of whose members got a leg
            g = plan.groups
            moved = plan.qty != 0.0
            width = g.excess.shape[1]
            answered = np.stack([(moved & (g.slot_group == j)).any(axis=1) for j in range(width)], axis=1)
            self.groups.disarmed[plan.rows, :width] |= answered & (g.excess > 0.0)

    # ---- read access -------------------------------------------------------------------------

    def _nonzero_by_instrument(self, account: str, per_slot: F64) -> dict[str, float]:
        row = self.accounts.get(account)
        if row is None:
            return {}
        return {
            self.instruments.id_of(int(i)): float(v)
            for i, v in zip(self._inst[row], per_slot[row], strict=True)
            if i >= 0 and v != 0.0
        }

    def holdings(self, account: str) -> dict[str, float]:
        """Non-zero holdings of an account, by instrument id."""
        return self._nonzero_by_instrument(account, self._qty)

    def targets(self, account: str) -> dict[str, float]:
        """Non-zero target weights of an account, by instrument id."""
        return self._nonzero_by_instrument(account, self._target)

    def cash(self, account: str) -> float:
        """Cash balance of an account."""
        row = self.accounts.get(account)
        return 0.0 if row is None else float(self._cash[row])

    def cash_limit(self, account: str) -> float:
        """The band limit of an account's cash weight."""
        row = self.accounts.get(account)
        if row is None:
            return self.policy.default.abs_or_inf
        self._settle_limits()
        return float(self._cash_limit[row])

    def cash_target_of(self, row: int) -> float:
        """Cash target of the account in ``row``."""
        return float(self._cash_target[row])

    def cash_target(self, account: str) -> float:
        """Cash target of an account as a fraction of its value."""
        row = self.accounts.get(account)
        return 1.0 if row is None else float(self._cash_target[row])

    def group_limit(self, account: str, group: str) -> float:
        """Effective band limit of one of an account's groups."""
        row = self.accounts.get(account)
        names = () if row is None else self.groups.names(row)
        if row is None or group not in names:
            raise KeyError(f"{account} has no group {group!r}")
        self._settle_limits()
        return float(self.groups.limit[row, names.index(group)])

    def limit(self, account: str, instrument: str) -> float:
        """Effective band limit of one holding/target (inf when the account has no such slot)."""
        row, inst = self.accounts.get(account), self.instruments.get(instrument)
        if row is None or inst is None:
            return math.inf
        slot = self._slot(row, inst, create=False)
        self._settle_limits()
        return math.inf if slot is None else float(self._limit[row, slot])
