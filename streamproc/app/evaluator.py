"""The evaluator: ``step(now)`` is one pure pass (staleness, candidates, the vectorized decision);
``run_once`` puts it through the storm guard, publishes its orders and writes its statuses; ``run`` is
the cadence loop, conflating while the price feed works through a backlog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from streamproc.app.accounts import Accounts
from streamproc.app.alerting import DataAlerts
from streamproc.app.counters import Counters
from streamproc.app.decisions import Decisions, back_in_band, decide
from streamproc.app.orders import Orders
from streamproc.app.ports import AccountStore, Clock
from streamproc.app.prices import Prices
from streamproc.app.status import Status
from streamproc.app.storm import StormGuard
from streamproc.app.throttle import Throttle
from streamproc.core import LegLimits
from streamproc.state.records import AccountPatch


class Cadence:
    """How often to evaluate: every ``interval_s``, deferred while the feed is more than ``backlog``
    records behind, yet at least every ``max_defer_s``."""

    def __init__(self, interval_s: float, max_defer_s: float, backlog: int) -> None:
        self.interval_s = interval_s
        self.max_defer_s = max_defer_s
        self.backlog = backlog


class Evaluator:
    """Evaluates changed and price-affected accounts, then publishes and records what a pass decided."""

    def __init__(
        self,
        accounts: Accounts,
        prices: Prices,
        storm: StormGuard,
        orders: Orders,
        store: AccountStore,
        alerts: DataAlerts,
        counters: Counters,
        clock: Clock,
        lock: asyncio.Lock,
        *,
        limits: LegLimits | None = None,
        observe_pass: Callable[[float], None] = lambda s: None,
        before_first: Callable[[], Awaitable[None]] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.throttle = throttle or Throttle(0.0, 0.0)
        self.before_first = before_first  # shared state to load before the first pass (trading states)
        self.accounts = accounts
        self.prices = prices
        self.storm = storm
        self.orders = orders
        self.store = store
        self.alerts = alerts
        self.counters = counters
        self.clock = clock
        self.lock = lock  # one evaluation / rebalance / watch step at a time
        self.limits = limits or LegLimits()
        self.observe_pass = observe_pass  # wall seconds of a pass that had candidates

    def step(self, now: float) -> Decisions:
        """One pass, no I/O: refresh staleness, pick the candidates and decide (orders held while a
        storm holds)."""
        self.prices.refresh_stale(int(now * 1000))
        changed = self.prices.drain_changed()
        affected = self.accounts.book.accounts_affected_by(changed) if changed.size else changed
        back_in_band(self.accounts, affected, now)
        rows = self.accounts.candidates(affected, now)
        if rows.size == 0:
            return Decisions()
        return decide(self.accounts, self.prices, rows, now, self.limits, hold=self.storm.holding)

    async def run_once(self) -> int:
        """One pass with its effects, then the data alerts; returns the orders published."""
        async with self.lock:
            now = self.clock.time()
            published = await self._pass(now)
            await self.alerts.announce(int(now * 1000))
            self.counters.passes.inc()
            return published

    async def _pass(self, now: float) -> int:
        started = time.perf_counter()
        decisions = self.step(now)
        if decisions.evaluated == 0 and not self.accounts.working.changed:
            return 0
        self.counters.evaluations.inc(n=decisions.evaluated)
        self.counters.breaches.inc(n=decisions.new_breaches)
        await self.storm.guard(decisions, now)
        accounts = self.accounts
        self._throttle(decisions, now)
        drafts = [d for d in decisions.orders if accounts.last_order.get(d.row) != d.event_id]
        published = await self.orders.publish(drafts, decisions.cancels)
        schedules = accounts.schedules
        for d in decisions.orders:  # a calendar run already published (recovered) is done too
            if d.period >= 0 and accounts.last_order.get(d.row) == d.event_id:
                schedules.checked(d.row, d.period)
        for d in published:
            if d.attempt == 0 and d.day >= 0:  # a re-issue after a cooldown is the same run
                schedules.ran(d.row, d.day)
        ids = accounts.book.accounts
        patches = {ids.id_of(r): AccountPatch().drift(doc) for r, doc in decisions.statuses.items()}
        for r in schedules.drain_changed():
            patches.setdefault(ids.id_of(r), AccountPatch()).schedule(*schedules.stored(r))
        working = accounts.working
        for r in working.drain_changed():  # given up at their cooldown, confirmed, counted unanswered
            working.stored(r, patches.setdefault(ids.id_of(r), AccountPatch()))
        for r, sleeves in accounts.sleeves.drain_changed().items():  # entries, peaks, stops
            patches.setdefault(ids.id_of(r), AccountPatch()).sleeves(sleeves)
        await self.store.write_accounts(patches, {})
        self.observe_pass(time.perf_counter() - started)
        return len(published)

    def _throttle(self, decisions: Decisions, now: float) -> None:
        """Hold the orders over the throttle's limits: their accounts are ``throttled`` and drafted
        again next pass (a replaced order's cancel waits with its replacement)."""
        throttle, accounts = self.throttle, self.accounts
        if not throttle.on:
            return
        allowed, held = throttle.admit(decisions.orders, now)
        rows = {d.row for d in held}
        if held:
            self.counters.throttled.inc(n=len(held))
            decisions.cancels = [c for c in decisions.cancels if c.row not in rows]
            now_ms = int(now * 1000)
            why = f"throttled: {throttle.describe()}; waits its turn, drafted again each pass"
            for d in held:
                accounts.status[d.row] = Status.THROTTLED
                decisions.statuses[d.row] = {"status": "throttled", "why": why, "evaluated_at": now_ms}
                accounts.dirty.add(d.row)
        decisions.orders = allowed
        throttle.forget(
            [r for r, doc in decisions.statuses.items() if doc["status"] != "ordered" and r not in rows]
        )

    async def run(self, cadence: Cadence, feed_lag: Callable[[], int], ready: asyncio.Event) -> None:
        """Evaluate every ``cadence.interval_s`` once the feed has caught up. While the feed works
        through a backlog the prices in the book are already superseded in Kafka: evaluate once it has
        caught up (conflation), yet at least every ``max_defer_s``."""
        await ready.wait()
        await self.storm.load()  # a storm may already hold orders
        if self.before_first is not None:
            await self.before_first()  # a halt set before this worker started holds from its first pass
        last = 0.0
        while True:
            started = time.monotonic()
            if feed_lag() <= cadence.backlog or started - last >= cadence.max_defer_s:
                last = started
                await self.run_once()
            else:
                self.counters.deferred.inc()
            await asyncio.sleep(max(0.0, cadence.interval_s - (time.monotonic() - started)))
