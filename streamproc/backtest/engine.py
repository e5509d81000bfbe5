"""Replays a price history through the live drift engine (``core.Book``: the same bands, modes, lot
rounding, minimum notional and bid/ask pricing as the worker), one account per policy, in event time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from streamproc.backtest.history import History
from streamproc.backtest.policies import Policy
from streamproc.core import Band, BandPolicy, Book, LegLimits, Mode
from streamproc.core.types import F64


@dataclass(frozen=True)
class Costs:
    """Trading costs and constraints applied to every policy alike."""

    fee: float = 1.0  # per leg (a ticket charge)
    min_notional: float = 50.0  # smaller legs are not traded (the live engine's min_trade)
    lots: Mapping[str, float] = field(default_factory=dict)  # instrument -> tradable lot (default 0.0001)


@dataclass(frozen=True)
class Trade:
    """One executed leg."""

    day: int
    policy: int
    instrument: str
    side: str
    qty: float
    price: float
    notional: float
    fee: float
    spread_cost: float  # |price - mid| * qty: what crossing the spread cost


@dataclass
class Run:
    """Everything the report needs: per day and policy values and weights, and the trades."""

    history: History
    policies: list[Policy]
    targets: dict[str, float]
    capital: float
    values: F64  # days x policies
    weights: F64  # days x policies x instruments
    trades: list[Trade]


def _due(policy: Policy, day: int, history: History) -> bool:
    if policy.hold:
        return False
    if policy.calendar is None:
        return day % policy.every == 0
    prev, cur = history.dates[day - 1], history.dates[day]
    if policy.calendar == "year":
        return cur.year != prev.year
    if policy.calendar == "quarter":
        return (cur.year, (cur.month - 1) // 3) != (prev.year, (prev.month - 1) // 3)
    return (cur.year, cur.month) != (prev.year, prev.month)


class Simulation:
    """The book and the cash/holdings ledger of one backtest; ``step`` is one trading day."""

    def __init__(
        self,
        history: History,
        policies: list[Policy],
        targets: Mapping[str, float],
        costs: Costs,
        capital: float,
    ) -> None:
        unknown = set(targets) - set(history.instruments)
        if unknown:
            raise ValueError(f"target instruments {sorted(unknown)} have no prices in the history")
        self.history, self.policies, self.costs = history, policies, costs
        self.targets = dict(targets)
        # the policy's band applies to every instrument: no tier or per-instrument defaults
        self.book = Book(BandPolicy(default=Band(abs=0.03), tiers={}))
        for name in history.instruments:
            self.book.set_instrument(name, lot=costs.lots.get(name, 0.0001))
        self.cols = self.book.instrument_indices(history.instruments)
        self.accounts = [f"policy-{k}" for k in range(len(policies))]
        self.holdings = np.zeros((len(policies), len(history.instruments)))
        self.cash = np.full(len(policies), capital)
        self.trades: list[Trade] = []
        self._prices(0)
        for acct in self.accounts:
            self.book.set_cash(acct, capital)
            self.book.set_targets(
                acct, self.targets, band=Band(abs=1e-9), mode=Mode.TARGET, min_trade=costs.min_notional
            )
        self.trade(0, np.arange(len(policies), dtype=np.int64))  # the initial purchase, the same for all
        for acct, p in zip(self.accounts, policies, strict=True):
            self.book.set_targets(acct, self.targets, band=p.band, mode=p.mode, min_trade=costs.min_notional)

    def _prices(self, day: int) -> None:
        self.book.apply_prices(self.cols, self.history.bid[day], self.history.ask[day])

    def trade(self, day: int, rows: np.ndarray) -> None:
        """Evaluate ``rows`` and execute the legs the engine plans for the breaching ones."""
        ev = self.book.evaluate(rows)
        if not ev.breaching.any():
            return
        plan = self.book.plan(ev, LegLimits())
        col_of = {int(c): j for j, c in enumerate(self.cols)}
        mid = self.history.mid[day]
        for j in np.flatnonzero(plan.has_legs).tolist():
            p = int(plan.rows[j])
            acct = self.accounts[p]
            for leg in plan.legs(j):
                c = col_of[leg.instrument]
                signed = leg.qty if leg.side == "buy" else -leg.qty
                self.holdings[p, c] += signed
                self.cash[p] -= signed * leg.price + self.costs.fee
                spread = abs(leg.price - mid[c]) * leg.qty
                name = self.history.instruments[c]
                self.trades.append(
                    Trade(day, p, name, leg.side, leg.qty, leg.price, leg.notional, self.costs.fee, spread)
                )
                self.book.set_holding(acct, name, float(self.holdings[p, c]))
            self.book.set_cash(acct, max(float(self.cash[p]), 0.0))

    def step(self, day: int) -> None:
        """A new day: prices, then every policy due today looks and trades."""
        self._prices(day)
        due = [k for k, p in enumerate(self.policies) if _due(p, day, self.history)]
        if due:
            self.trade(day, np.array(due, dtype=np.int64))

    def value(self, day: int) -> tuple[F64, F64]:
        """(value per policy, instrument weights per policy) at the day's mid prices."""
        held = self.holdings * self.history.mid[day]
        total = held.sum(axis=1) + self.cash
        return total, held / total[:, None]


def run(
    history: History,
    policies: list[Policy],
    targets: Mapping[str, float],
    costs: Costs | None = None,
    capital: float = 100_000.0,
) -> Run:
    """Replay ``history`` for every policy on the model portfolio ``targets``."""
    sim = Simulation(history, policies, targets, costs or Costs(), capital)
    days = len(history.dates)
    values = np.empty((days, len(policies)))
    weights = np.empty((days, len(policies), len(history.instruments)))
    values[0], weights[0] = sim.value(0)
    for day in range(1, days):
        sim.step(day)
        values[day], weights[day] = sim.value(day)
    return Run(history, policies, dict(targets), capital, values, weights, sim.trades)
