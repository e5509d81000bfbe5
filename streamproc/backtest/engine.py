"""Replays a price history through the live drift engine (``core.Book``: the same bands, groups, sleeve
stops, modes, lot rounding, minimum notional and bid/ask pricing as the worker), one account per policy,
in event time."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamproc.app.targets import targets_args
from streamproc.backtest.history import History
from streamproc.backtest.policies import Policy
from streamproc.backtest.portfolios import Portfolio
from streamproc.core import Band, BandPolicy, Book, LegLimits
from streamproc.core.calendar_rule import calendar_run, period_index
from streamproc.core.types import F64

_DAY_MS = 86_400_000


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
    group: str | None = None  # the instrument's group in the portfolio


@dataclass(frozen=True)
class Stop:
    """A sleeve stopped by one of its kill criteria (its members are sold the same day)."""

    day: int
    policy: int
    sleeve: str
    trigger: str
    mark: float  # the sleeve's value relative to its entry then


@dataclass
class Run:
    """Everything the report needs: per day and policy values and weights, the trades and the stops."""

    history: History
    policies: list[Policy]
    portfolio: Portfolio
    capital: float
    values: F64  # days x policies
    weights: F64  # days x policies x instruments
    trades: list[Trade]
    stops: list[Stop] = field(default_factory=list)

    @property
    def targets(self) -> dict[str, float]:
        """The portfolio's target weights."""
        return dict(self.portfolio.weights)


def _due(policy: Policy, day: int) -> bool:
    """Whether a band policy looks today (calendar policies: ``Simulation.periods``)."""
    return not policy.hold and policy.rule is None and day % policy.every == 0


def _day_number(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


class Simulation:
    """The book and the cash/holdings ledger of one backtest; ``step`` is one trading day."""

    def __init__(
        self,
        history: History,
        policies: list[Policy],
        portfolio: Portfolio,
        costs: Costs,
        capital: float,
    ) -> None:
        unknown = set(portfolio.weights) - set(history.instruments)
        if unknown:
            raise ValueError(f"target instruments {sorted(unknown)} have no prices in the history")
        self.history, self.policies, self.costs = history, policies, costs
        self.portfolio = portfolio
        self.doc = portfolio.targets(_ms(history.dates[0]))
        self.group_of = portfolio.group_of()
        # the policy's band applies to every instrument and group: no tier or per-instrument defaults
        self.book = Book(BandPolicy(default=Band(abs=0.03), tiers={}))
        for name in history.instruments:
            self.book.set_instrument(name, lot=costs.lots.get(name, 0.0001))
        self.cols = self.book.instrument_indices(history.instruments)
        self.accounts = [f"policy-{k}" for k in range(len(policies))]
        self.rows = {self.book.account(a): k for k, a in enumerate(self.accounts)}
        self.holdings = np.zeros((len(policies), len(history.instruments)))
        self.cash = np.full(len(policies), capital)
        self.trades: list[Trade] = []
        self.stops: list[Stop] = []
        self.closed: list[set[str]] = [set() for _ in policies]
        self.sleeved = any("kill" in g for g in portfolio.groups.values())
        # calendar policies: the period of the last look (the live engine's ``Schedules``, in day terms)
        self.rules = [p.rule for p in policies]
        day0 = _day_number(history.dates[0])
        self.periods = [
            -1 if rule is None else int(period_index(np.array([day0]), rule.every.months)[0])
            for rule in self.rules
        ]
        self._prices(0)
        buy_in = Policy("initial purchase")  # any drift breaches a near-zero band: trade to target
        for k, acct in enumerate(self.accounts):
            self.book.set_cash(acct, capital)
            self._apply(k, buy_in)
        self.trade(0, np.arange(len(policies), dtype=np.int64))  # the initial purchase, the same for all
        for k, p in enumerate(policies):
            self._apply(k, p)
        self.book.evaluate()  # the sleeves' entry prices: the day-0 mids they were bought at

    def _apply(self, k: int, policy: Policy) -> None:
        """Policy ``k``'s targets: the portfolio's weights and groups (its stopped sleeves closed), every
        band the policy's and every group in the policy's mode; sleeve entries and peaks kept."""
        acct = self.accounts[k]
        row = self.book.account(acct)
        kept = self.book.sleeve_state(row)
        args: dict[str, Any] = targets_args(self.doc, self.closed[k])
        args["groups"] = [dataclasses.replace(g, band=policy.band, mode=None) for g in args["groups"]]
        args.update(band=policy.band, bands={}, mode=policy.mode, min_trade=self.costs.min_notional)
        self.book.set_targets(acct, **args)
        for name, (entries, peak) in kept.items():
            self.book.restore_sleeve(row, name, entries, peak)

    def _prices(self, day: int) -> None:
        self.book.apply_prices(self.cols, self.history.bid[day], self.history.ask[day])

    def trade(self, day: int, rows: np.ndarray, calendar: Collection[int] = ()) -> None:
        """Evaluate ``rows`` and execute the legs the engine plans for the breaching ones; the policies
        in ``calendar`` run their calendar rule (the live engine's ``calendar_run``)."""
        ev = self.book.evaluate(rows)
        runs = None
        if calendar:
            policy_of = [self.rows[int(r)] for r in ev.rows]
            due = np.array([k in calendar for k in policy_of])
            tolerance = np.array([r.tolerance if (r := self.rules[k]) else 0.0 for k in policy_of])
            ev, runs = calendar_run(ev, due, tolerance)
            # a calendar policy's own band is no band (any drift): on its days the rule alone decides
            ev = dataclasses.replace(ev, breaching=np.where(due, runs, ev.breaching))
        if not ev.breaching.any():
            return
        plan = self.book.plan(ev, LegLimits(), runs)
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
                    Trade(
                        day,
                        p,
                        name,
                        leg.side,
                        leg.qty,
                        leg.price,
                        leg.notional,
                        self.costs.fee,
                        spread,
                        self.group_of.get(name),
                    )
                )
                self.book.set_holding(acct, name, float(self.holdings[p, c]))
            self.book.set_cash(acct, max(float(self.cash[p]), 0.0))

    def step(self, day: int) -> None:
        """A new day: prices, the sleeves' kill criteria (a stop sells at once, whatever the policy's
        calendar), then every policy due today looks and trades."""
        self._prices(day)
        due = {k for k, p in enumerate(self.policies) if _due(p, day)}
        calendar = self._calendar_due(day)
        due |= calendar
        if self.sleeved:
            due |= self._stop_sleeves(day)
        if due:
            self.trade(day, np.array(sorted(due), dtype=np.int64), calendar)

    def _calendar_due(self, day: int) -> set[int]:
        """The calendar policies whose period turned today (the first trading day of a new one)."""
        today = np.array([_day_number(self.history.dates[day])])
        out: set[int] = set()
        for k, rule in enumerate(self.rules):
            if rule is not None and not self.policies[k].hold:
                index = int(period_index(today, rule.every.months)[0])
                if index != self.periods[k]:
                    self.periods[k] = index
                    out.add(k)
        return out

    def _stop_sleeves(self, day: int) -> set[int]:
        """Judge the open sleeves of every trading policy on today's mids (this also moves their peaks);
        the stopped ones are closed and their policies trade today."""
        live = np.array([k for k, p in enumerate(self.policies) if not p.hold], dtype=np.int64)
        if live.size == 0:
            return set()
        ev = self.book.evaluate(live)
        stopped: set[int] = set()
        for row, g, trigger, mark in self.book.sleeve_triggers(ev, _ms(self.history.dates[day])):
            k = self.rows[row]
            name = self.book.groups.name(row, g)
            self.closed[k].add(name)
            self.stops.append(Stop(day, k, name, trigger.wire, mark))
            stopped.add(k)
        for k in stopped:
            self._apply(k, self.policies[k])
        return stopped

    def value(self, day: int) -> tuple[F64, F64]:
        """(value per policy, instrument weights per policy) at the day's mid prices."""
        held = self.holdings * self.history.mid[day]
        total = held.sum(axis=1) + self.cash
        return total, held / total[:, None]


def _ms(day: dt.date) -> int:
    """Event time of a trading day: its midnight UTC, in ms."""
    return (day - dt.date(1970, 1, 1)).days * _DAY_MS


def run(
    history: History,
    policies: list[Policy],
    portfolio: Portfolio | Mapping[str, float],
    costs: Costs | None = None,
    capital: float = 100_000.0,
) -> Run:
    """Replay ``history`` for every policy on the model ``portfolio`` (or plain target weights)."""
    if not isinstance(portfolio, Portfolio):
        portfolio = Portfolio("targets", dict(portfolio))
    sim = Simulation(history, policies, portfolio, costs or Costs(), capital)
    days = len(history.dates)
    values = np.empty((days, len(policies)))
    weights = np.empty((days, len(policies), len(history.instruments)))
    values[0], weights[0] = sim.value(0)
    for day in range(1, days):
        sim.step(day)
        values[day], weights[day] = sim.value(day)
    return Run(history, policies, portfolio, capital, values, weights, sim.trades, sim.stops)
