"""`streamproc demo`: the README's run command. In a fresh namespace on the local stack it runs two real
workers, the market simulator and the fill simulator, so the loop drift -> order -> fill -> back in band
closes on a live market; it injects data faults on a schedule, shows a live terminal view, and after the
set time (or Ctrl-C) stops everything cleanly and prints a one-screen summary."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import TopicPartition
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from streamproc import kafka
from streamproc.app.topics import remove_namespace
from streamproc.clients import redis_client
from streamproc.settings import Settings, SettingsError
from streamproc.sim import fill, simulate
from streamproc.sim.fill_desk import Policy
from streamproc.sim.market import CASH, TRADING_DAY_S, Faults, Market
from streamproc.state.store import Store
from streamproc.worker_process import Samples, WorkerProcess

console = Console()
OUT = Path("bench-results")
DEMO_LIMITS = Path(__file__).resolve().parents[1] / "ops" / "demo" / "limits.toml"
_STOP_S = 20.0  # grace for each part and worker to stop
_PROGRESS_S = 5.0  # a progress line this often when stdout is not a terminal
# the demo's order management: halves over 0.5 s, 5 % of orders rejected (working, filled, rejected,
# cancelled all show within a minute)
DESK = Policy(ratio=Decimal("0.5"), latency_ms=500, reject_share=0.05)


@dataclass(frozen=True)
class Step:
    """A scheduled change of the simulated feed."""

    at_s: float
    say: str
    faults: Faults | None


def schedule(market: Market) -> list[Step]:
    """Faults on a timeline that shows every alert path within the first minute."""
    quiet = market.of_tier("large")[0]  # held by the 60/40 and microcap accounts that picked it
    bursts = Faults(stop=frozenset({quiet}), skip_seq=0.003, crossed=0.003, outlier=0.003, malformed=0.004)
    return [
        Step(8.0, f"{quiet} stops quoting (quote_stale after its max age)", Faults(stop=frozenset({quiet}))),
        Step(20.0, "bad data: gaps, crossed, outliers, malformed records", bursts),
        Step(32.0, "bad data stops", Faults(stop=frozenset({quiet}))),
        Step(40.0, f"{quiet} quotes again (its alert resolves)", Faults()),
    ]


def reason_of(r: dict[str, Any]) -> tuple[str, str]:
    """An order's reason: its kind (instrument, cash, group, sleeve stop) and a line for the view."""
    band = f"(target {r['target']:.0%} ± {r['band'] * 100:.0f})"
    if "trigger" in r:
        return "sleeve stop", f"sleeve {r['group']} stopped ({r['trigger']}) at {r['weight']:.1%}, sold"
    if "group" in r:
        return "group", f"group {r['group']} at {r['weight']:.1%} {band}"
    kind = "cash" if r["instrument"] == CASH else "instrument"
    return kind, f"{r['instrument']} at {r['weight']:.1%} {band}"


# the data-gap alerts that paged on-call every night before sessions
DATA_ALERTS = frozenset(
    {
        "quote_stale",
        "feed_silent",
        "quote_gap",
        "quote_crossed",
        "quote_outlier",
        "clock_skew",
        "position_gap",
    }
)


@dataclass
class Night:
    """The market's closes and opens (with a calendar): what fired and traded while it was closed, and
    how the open went."""

    closes: int = 0
    closed_at_s: float | None = None
    closed_s: float = 0.0  # seconds closed in all
    opened_at_s: float | None = None  # the last open after a close
    alerts: Counter[str] = field(default_factory=Counter)  # data alerts that fired while closed, by type
    answers: Counter[str] = field(default_factory=Counter)  # other alerts then (order management's)
    orders: int = 0  # orders published while closed
    accounts_closed_peak: int = 0
    first_order_after_open_s: float | None = None
    storms_after_open: int = 0


@dataclass
class View:
    """What the live view and the summary show, from the output topics and the workers' /metrics."""

    started: float = field(default_factory=time.monotonic)
    orders: int = 0
    cancels: Counter[str] = field(default_factory=Counter)  # cancel records by why
    reasons: Counter[str] = field(default_factory=Counter)  # orders by what breached
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=5000))
    recent_orders: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    firing: dict[str, dict[str, Any]] = field(default_factory=dict)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    recent_alerts: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    deadletters: Counter[str] = field(default_factory=Counter)
    first_order_s: float | None = None
    first_alert_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)  # the highest value seen of some gauges
    events: deque[str] = field(default_factory=lambda: deque(maxlen=4))
    workers_up: int = 0
    market_open: bool = True
    night: Night = field(default_factory=lambda: Night())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def on_order(self, doc: dict[str, Any], received_ms: float) -> None:
        if doc.get("type") == "cancel":
            self.cancels[doc["why"]] += 1
            then = f", replaced by {doc['replaced_by'][:8]}" if "replaced_by" in doc else ""
            self.recent_orders.append(f"{doc['account']}: cancel {doc['cancels'][:8]} ({doc['why']}{then})")
            return
        self.orders += 1
        self.latencies_ms.append(received_ms - doc["as_of"])
        if self.first_order_s is None:
            self.first_order_s = self.elapsed()
        night = self.night
        if not self.market_open:
            night.orders += 1
        elif night.opened_at_s is not None and night.first_order_after_open_s is None:
            night.first_order_after_open_s = self.elapsed() - night.opened_at_s
        r = doc["reason"]
        kind, why = reason_of(r)
        self.reasons[kind] += 1
        legs = ", ".join(f"{leg['side']} {leg['qty']} {leg['instrument']}" for leg in doc["legs"][:3])
        self.recent_orders.append(f"{doc['account']}: {why} -> {legs}")

    def on_alert(self, doc: dict[str, Any]) -> None:
        self.transitions[(doc["type"], doc["state"])] += 1
        if doc["state"] == "firing":
            self.firing[doc["alert_id"]] = doc
            if self.first_alert_s is None:
                self.first_alert_s = self.elapsed()
            if not self.market_open:
                kind = self.night.alerts if doc["type"] in DATA_ALERTS else self.night.answers
                kind[doc["type"]] += 1
            elif doc["type"] == "breach_storm" and self.night.opened_at_s is not None:
                self.night.storms_after_open += 1
        else:
            self.firing.pop(doc["alert_id"], None)
        self.recent_alerts.append(
            f"{doc['state']:>8} {doc['type']:<15} {next(iter(doc['subject'].values())):<14} "
            f"({doc['severity']}) {doc['runbook']}"
        )

    def session(self, is_open: bool, say: str) -> None:
        """The simulated market opened or closed."""
        if is_open == self.market_open:
            return
        now, night = self.elapsed(), self.night
        if is_open and night.closed_at_s is not None:
            night.closed_s += now - night.closed_at_s
            night.opened_at_s, night.first_order_after_open_s = now, None
        else:
            night.closes += 1
            night.closed_at_s = now
        self.market_open = is_open
        self.events.append(f"{now:4.0f} s  {say}")

    def latency(self, q: float) -> float | None:
        return float(np.percentile(np.array(self.latencies_ms), q)) if self.latencies_ms else None


# ---- feeding the view -------------------------------------------------------------------------


async def watch_outputs(s: Settings, partitions: dict[str, int], view: View) -> None:
    """Read orders, alerts and dead letters from the beginning of the namespace's topics."""
    t = s.topics
    consumer = kafka.consumer(s, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        consumer.assign(
            [
                TopicPartition(topic, p)
                for topic in (t.orders, t.alerts, t.deadletter)
                for p in range(partitions[t.logical(topic)])
            ]
        )
        await consumer.seek_to_beginning()
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            now_ms = time.time() * 1000
            for tp, records in batch.items():
                for r in records:
                    doc = orjson.loads(r.value)
                    if tp.topic == t.orders:
                        view.on_order(doc, now_ms)
                    elif tp.topic == t.alerts:
                        view.on_alert(doc)
                    else:
                        view.deadletters[f"{doc['reason']}"] += 1
    finally:
        await consumer.stop()


def _total(samples: list[Samples], name: str, **labels: str) -> float:
    key = tuple(sorted(labels.items()))
    return sum(s.get(name, {}).get(key, 0.0) for s in samples)


async def watch_workers(workers: list[WorkerProcess], view: View) -> None:
    """Once a second: the workers' counters summed, and their rates over the last second."""
    names = {
        "quotes": ("streamproc_messages_consumed_total", {"topic": "quotes"}),
        "positions": ("streamproc_messages_consumed_total", {"topic": "positions"}),
        "evaluations": ("streamproc_evaluations_total", {}),
        "breaches": ("streamproc_breaches_total", {}),
        "orders": ("streamproc_orders_total", {}),
        "suppressed": ("streamproc_accounts", {"state": "suppressed"}),
        "quarantined": ("streamproc_accounts", {"state": "quarantined"}),
        "tracked": ("streamproc_accounts", {"state": "tracked"}),
        "depth_waiting": ("streamproc_depth_waiting_notional", {"side": "buy"}),
        "restricted": ("streamproc_accounts", {"state": "left_out_restricted"}),
        "closed": ("streamproc_accounts", {"state": "closed"}),
    }
    before: dict[str, float] = {}
    last = time.monotonic()
    while True:
        samples = await asyncio.gather(*(asyncio.to_thread(w.samples) for w in workers))
        now = time.monotonic()
        view.workers_up = sum(1 for s in samples if s)
        current = {k: _total(samples, name, **labels) for k, (name, labels) in names.items()}
        # quotes are read by every worker (a broadcast): show the rate of one
        current["quotes"] /= max(1, view.workers_up)
        for k in ("quotes", "positions", "evaluations", "breaches", "orders"):
            if k in before:
                view.rates[k] = max(0.0, (current[k] - before[k]) / (now - last))
        view.metrics, before, last = current, current, now
        for k in ("depth_waiting", "restricted"):
            view.peaks[k] = max(view.peaks.get(k, 0.0), current[k])
        if not view.market_open:
            night = view.night
            night.accounts_closed_peak = max(night.accounts_closed_peak, int(current["closed"]))
        await asyncio.sleep(1.0)


# ---- rendering ----------------------------------------------------------------------------------


def progress_line(view: View, sim: simulate.SimStats, desk: fill.FillStats) -> str:
    """One line of the run's state, for a stdout that is not a terminal."""
    m, r = view.metrics, view.rates
    p99 = view.latency(99)
    return (
        f"{view.elapsed():4.0f} s  {view.workers_up} workers  quotes/s {r.get('quotes', 0):,.0f}  "
        f"evaluations/s {r.get('evaluations', 0):,.0f}  orders {view.orders:,}  fills {desk.filled:,}  "
        f"suppressed {m.get('suppressed', 0):,.0f}  alerts firing {len(view.firing)}  "
        f"dead letters {sum(view.deadletters.values())}  p99 {'-' if p99 is None else f'{p99:,.0f} ms'}"
    )


def render(view: View, sim: simulate.SimStats, desk: fill.FillStats, duration_s: float) -> Group:
    """The live view: flows, state, latency, alerts and the newest orders."""
    m, r = view.metrics, view.rates
    flows = Table.grid(padding=(0, 2))
    for _ in range(4):
        flows.add_column(justify="right")
    p50, p99 = view.latency(50), view.latency(99)
    flows.add_row(
        "quotes in/s", f"{r.get('quotes', 0):,.0f}", "evaluations/s", f"{r.get('evaluations', 0):,.0f}"
    )
    flows.add_row(
        "positions in/s", f"{r.get('positions', 0):,.0f}", "breaches", f"{m.get('breaches', 0):,.0f}"
    )
    cancels = sum(view.cancels.values())
    flows.add_row(
        "orders",
        f"{view.orders:,} (+{cancels:,} cancels)",
        "filled",
        f"{desk.filled:,} in {desk.parts:,} parts",
    )
    flows.add_row(
        "working", f"{desk.working:,}", "rejected / cancelled", f"{desk.rejected:,} / {desk.cancelled:,}"
    )
    flows.add_row(
        "accounts",
        f"{m.get('tracked', 0):,.0f}",
        "suppressed",
        f"{m.get('suppressed', 0):,.0f} (gap {m.get('quarantined', 0):,.0f})",
    )
    flows.add_row(
        "quote->order p50",
        f"{p50:,.0f} ms" if p50 is not None else "-",
        "p99",
        f"{p99:,.0f} ms" if p99 is not None else "-",
    )
    flows.add_row("alerts firing", f"{len(view.firing)}", "dead letters", f"{sum(view.deadletters.values())}")
    if sim.market is not None and sim.market.calendar:
        flows.add_row("market", _market_line(sim), "accounts closed", f"{m.get('closed', 0):,.0f}")
    faults = ", ".join(f"{k} {v}" for k, v in sorted(sim.faults.items())) or "none"
    title = (
        f"streamproc demo · {view.elapsed():4.0f}/{duration_s:.0f} s · {view.workers_up} workers · "
        f"{sim.accounts:,} accounts · {sim.instruments} instruments · faults injected: {faults}"
    )
    orders = "\n".join(view.recent_orders) or "(none yet)"
    alerts = "\n".join(view.recent_alerts) or "(none yet)"
    by_type = Counter(doc["type"] for doc in view.firing.values())
    firing = ", ".join(f"{t} {n}" for t, n in by_type.most_common()) or "none"
    events = "\n".join(view.events) or "(market opening)"
    return Group(
        Panel(flows, title=title, title_align="left"),
        Panel(events, title="scenario", title_align="left"),
        Panel(
            f"firing now: {firing}\n{alerts}",
            title="alerts: firing now, then the newest transitions (state, type, subject, severity, runbook)",
            title_align="left",
        ),
        Panel(orders, title="newest orders", title_align="left"),
    )


def _market_line(sim: simulate.SimStats) -> str:
    """``open, closes in 12 s`` / ``closed, opens in 8 s``."""
    nxt = sim.next_change_ms
    ahead = (
        ""
        if nxt is None
        else f", {'closes' if sim.open else 'opens'} in {max(0.0, nxt / 1000 - time.time()):.0f} s"
    )
    return ("open" if sim.open else "closed") + ahead


def _night(view: View, sim: simulate.SimStats) -> dict[str, Any] | None:
    """The session part of the summary (None without a calendar)."""
    if sim.market is None or not sim.market.calendar:
        return None
    n = view.night
    closed_s = n.closed_s + (
        view.elapsed() - n.closed_at_s if not view.market_open and n.closed_at_s else 0.0
    )
    return {
        "calendar": sim.market.calendar,
        "closes": n.closes,
        "closed_s": round(closed_s, 1),
        "alerts_fired_while_closed": dict(n.alerts),
        "other_alerts_while_closed": dict(n.answers),
        "orders_while_closed": n.orders,
        "accounts_closed_peak": n.accounts_closed_peak,
        "first_order_after_open_s": None
        if n.first_order_after_open_s is None
        else round(n.first_order_after_open_s, 1),
        "breach_storms_after_open": n.storms_after_open,
    }


def summary(view: View, sim: simulate.SimStats, desk: fill.FillStats, drift: Counter[str]) -> dict[str, Any]:
    """The figures of the run (printed and written as JSON)."""
    return {
        "session": _night(view, sim),
        "seconds": round(view.elapsed(), 1),
        "accounts": sim.accounts,
        "instruments": sim.instruments,
        "quotes_sent": sim.quotes,
        "faults_injected": sim.faults,
        "evaluations": int(view.metrics.get("evaluations", 0)),
        "breaches": int(view.metrics.get("breaches", 0)),
        "orders": view.orders,
        "orders_by_reason": dict(view.reasons),
        "sleeves_stopped": view.transitions[("sleeve_stopped", "firing")],
        "depth_waiting_notional_peak": round(view.peaks.get("depth_waiting", 0.0), 2),
        "restricted_left_out_peak": int(view.peaks.get("restricted", 0)),
        "cancels": dict(view.cancels),
        "first_order_s": None if view.first_order_s is None else round(view.first_order_s, 1),
        "fills": desk.filled,
        "fill_duplicates": desk.duplicates,
        "positions_published_by_fills": desk.positions_published,
        "fill_parts": desk.parts,
        "fill_partly_filled": desk.partly_filled,
        "fill_rejected": desk.rejected,
        "fill_legs_rejected": desk.legs_rejected,
        "fill_cancelled": desk.cancelled,
        "fill_cancels_ignored": desk.cancels_ignored,
        "fill_working_at_end": desk.working,
        "quote_to_order_ms": {
            "p50": view.latency(50),
            "p99": view.latency(99),
            "max": max(view.latencies_ms) if view.latencies_ms else None,
        },
        "alerts": {f"{t}:{s}": n for (t, s), n in sorted(view.transitions.items())},
        "first_alert_s": None if view.first_alert_s is None else round(view.first_alert_s, 1),
        "alerts_still_firing": sorted(view.firing),
        "deadletters": dict(view.deadletters),
        "drift_status_at_end": dict(drift),
    }


def print_summary(doc: dict[str, Any], path: Path) -> None:
    console.print()
    table = Table(title="streamproc demo: summary", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    lat = doc["quote_to_order_ms"]
    rows = [
        ("ran for", f"{doc['seconds']} s"),
        ("accounts / instruments", f"{doc['accounts']:,} / {doc['instruments']}"),
        ("quotes sent", f"{doc['quotes_sent']:,}"),
        (
            "faults injected",
            ", ".join(f"{k} {v}" for k, v in sorted(doc["faults_injected"].items())) or "none",
        ),
        ("evaluations", f"{doc['evaluations']:,}"),
        ("breaches (in band -> out)", f"{doc['breaches']:,}"),
        ("orders (first after)", f"{doc['orders']:,} ({doc['first_order_s']} s)"),
        (
            "orders by reason",
            ", ".join(f"{k} {v}" for k, v in sorted(doc["orders_by_reason"].items())) or "none",
        ),
        ("sleeves stopped (sold by a liquidation order)", f"{doc['sleeves_stopped']:,}"),
        ("thin books: demand waiting (peak)", f"{doc['depth_waiting_notional_peak']:,.0f} notional"),
        ("restricted instruments: accounts not buying them (peak)", f"{doc['restricted_left_out_peak']:,}"),
        ("cancels (why)", ", ".join(f"{k} {v}" for k, v in sorted(doc["cancels"].items())) or "none"),
        ("fills (duplicates skipped)", f"{doc['fills']:,} ({doc['fill_duplicates']})"),
        (
            "answered: parts / rejected / cancelled",
            f"{doc['fill_parts']:,} / {doc['fill_rejected']:,} / {doc['fill_cancelled']:,}",
        ),
        (
            "quote -> order p50 / p99 / max",
            " / ".join("-" if v is None else f"{v:,.0f} ms" for v in (lat["p50"], lat["p99"], lat["max"])),
        ),
        ("alerts (first after)", f"{sum(doc['alerts'].values())} transitions ({doc['first_alert_s']} s)"),
    ]
    rows += [(f"    {k}", str(v)) for k, v in doc["alerts"].items()]
    night = doc.get("session")
    if night:
        fired = ", ".join(f"{k} {v}" for k, v in sorted(night["alerts_fired_while_closed"].items())) or "none"
        rows += [
            ("market closed (times, seconds)", f"{night['closes']}, {night['closed_s']} s"),
            ("    data alerts fired while closed", fired),
            (
                "    other alerts then (answers to earlier orders)",
                ", ".join(f"{k} {v}" for k, v in sorted(night["other_alerts_while_closed"].items()))
                or "none",
            ),
            ("    orders while closed", f"{night['orders_while_closed']:,}"),
            ("    accounts closed (peak)", f"{night['accounts_closed_peak']:,}"),
            (
                "    at the open: first order after, storms",
                f"{night['first_order_after_open_s']} s, {night['breach_storms_after_open']}",
            ),
        ]
    still = Counter(alert_id.partition(":")[0] for alert_id in doc["alerts_still_firing"])
    rows.append(("alerts still firing", ", ".join(f"{k} {v}" for k, v in sorted(still.items())) or "none"))
    rows.append(("dead letters", ", ".join(f"{k} {v}" for k, v in doc["deadletters"].items()) or "none"))
    rows.append(
        ("drift status at the end", ", ".join(f"{k} {v}" for k, v in doc["drift_status_at_end"].items()))
    )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"summary: {path}; worker logs: {OUT}/demo-worker-*.log")
    if not doc.get("removed", True):
        ns = doc["namespace"]
        console.print(
            f"kept namespace {ns}: inspect it with `STREAMPROC_NAMESPACE={ns} streamproc inspect status` "
            "(or `inspect topics`, `inspect account ID`); its topics and Redis keys stay until "
            f"`streamproc namespace rm {ns}`"
        )


async def drift_statuses(s: Settings) -> Counter[str]:
    """Accounts by their last drift status in Redis."""
    client = redis_client(s)
    out: Counter[str] = Counter()
    try:
        async for _account, (raw,) in Store(client, s.redis_prefix).scan_accounts(["drift"]):
            out[orjson.loads(raw)["status"] if raw else "not evaluated"] += 1
    finally:
        await client.aclose()
    return out


# ---- the run ------------------------------------------------------------------------------------


async def _run(s: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from streamproc.app.worker import prepare

    partitions = await prepare(s)
    base = {
        **os.environ,
        "STREAMPROC_NAMESPACE": s.namespace,
        "STREAMPROC_LOG_FORMAT": "json",
        "STREAMPROC_ORDER_SETTLE_S": os.environ.get("STREAMPROC_ORDER_SETTLE_S", "0.5"),
        # microcaps move more than 20% for real, and a demo day passes in a second
        "STREAMPROC_OUTLIER_MOVE_BY_TIER": os.environ.get("STREAMPROC_OUTLIER_MOVE_BY_TIER", "micro=0.5"),
        # a trading day per second breaches far more accounts per 10 s than a real market does: only a
        # move that breaches half the book is treated as a storm (a held book would end the demo's loop)
        "STREAMPROC_STORM_SHARE": os.environ.get("STREAMPROC_STORM_SHARE", "0.5"),
        # a restricted microcap and thin microcap books (ops/demo/limits.toml)
        "STREAMPROC_LIMITS_FILE": os.environ.get("STREAMPROC_LIMITS_FILE", str(DEMO_LIMITS)),
        # the simulated market's open: no order on its first seconds of prices
        "STREAMPROC_OPENING_DELAY_S": os.environ.get("STREAMPROC_OPENING_DELAY_S", "5"),
        # orders answered in parts, some rejected. The stand-in waits for its own positions before it
        # fills an order (up to 10 s, holding every other order's parts meanwhile), and a thin book's
        # remainder comes as one more order after each fill: at a 15 s cooldown about half the orders
        # went unanswered (measured 983 of 1,845 in 60 s), at 30 s none did
        "STREAMPROC_ORDER_COOLDOWN_S": os.environ.get("STREAMPROC_ORDER_COOLDOWN_S", "30"),
    }
    OUT.mkdir(exist_ok=True)
    workers = [
        WorkerProcess(
            {**base, "STREAMPROC_WEB_PORT": str(args.web_port + i)}, OUT / f"demo-worker-{i + 1}.log"
        ).start()
        for i in range(args.workers)
    ]
    market = Market(
        args.instruments,
        args.seed,
        time_scale=args.time_scale,
        max_quote_age_s=args.max_quote_age_s,
        calendar=simulate.calendar_of(args, int(time.time())),
    )
    sim, desk, view = simulate.SimStats(), fill.FillStats(), View()
    tasks = [
        asyncio.create_task(
            simulate.run(s, accounts=args.accounts, rate=args.rate, market=market, stats=sim), name="simulate"
        ),
        asyncio.create_task(fill.run(s, stats=desk, policy=DESK), name="fill"),
        asyncio.create_task(watch_outputs(s, partitions, view), name="outputs"),
        asyncio.create_task(watch_workers(workers, view), name="workers"),
    ]
    steps = deque(schedule(market))
    interrupted = False
    # not a terminal (`make demo | tee`, CI): plain progress lines instead of a live view
    tty = console.is_terminal
    live_view = Live(render(view, sim, desk, args.duration_s), console=console, refresh_per_second=4)
    printed = 0.0
    try:
        with live_view if tty else contextlib.nullcontext():
            while view.elapsed() < args.duration_s:
                for w in workers:
                    w.check_alive()
                for task in tasks:
                    if task.done():
                        task.result()  # a crashed part stops the demo with its error
                if sim.open != view.market_open:
                    say = (
                        "the market opens (orders after the opening delay, no storm)"
                        if sim.open
                        else "the market closes: quiet until its next session, accounts closed"
                    )
                    view.session(sim.open, say)
                    if not tty:
                        print(view.events[-1], flush=True)
                while steps and view.elapsed() >= steps[0].at_s:
                    step = steps.popleft()
                    market.faults = step.faults or Faults()
                    view.events.append(f"{view.elapsed():4.0f} s  {step.say}")
                    if not tty:
                        print(view.events[-1], flush=True)
                if tty:
                    live_view.update(render(view, sim, desk, args.duration_s))
                elif view.elapsed() - printed >= _PROGRESS_S:
                    printed = view.elapsed()
                    print(progress_line(view, sim, desk), flush=True)
                await asyncio.sleep(0.25)
    except asyncio.CancelledError:
        interrupted = True  # Ctrl-C: fall through to the clean shutdown and the summary
    finally:
        for task in tasks:
            task.cancel()
        # bounded: a part stuck in a Kafka client's shutdown must not keep the demo from ending
        _, stuck = await asyncio.wait(tasks, timeout=_STOP_S)
        if stuck:
            console.print(
                f"[yellow]parts not stopped after {_STOP_S:.0f} s: {sorted(t.get_name() for t in stuck)}"
            )
        # crash-only workers: SIGKILL after the grace period loses nothing
        codes = await asyncio.gather(*(asyncio.to_thread(w.stop, _STOP_S) for w in workers))
    drift = await drift_statuses(s)
    doc = summary(view, sim, desk, drift)
    doc["namespace"] = s.namespace
    doc["removed"] = not args.keep
    doc["interrupted"] = interrupted
    doc["worker_exit_codes"] = list(codes)
    if not args.keep:
        await remove_namespace(s)
    return doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `streamproc demo`."""
    parser.add_argument(
        "--duration-s", type=float, default=90.0, help="seconds to run; Ctrl-C ends it early (90)"
    )
    simulate.add_calendar_arguments(parser)
    # the demo's market: a 45 s session, a 20 s night, then the next session (24/7: never closes)
    parser.set_defaults(calendar="XNYS", session_s=45.0, closed_s=20.0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--accounts", type=int, default=3000, help="accounts on model portfolios (3000)")
    parser.add_argument("--instruments", type=int, default=60, help="instruments in the market (60)")
    parser.add_argument("--rate", type=float, default=400.0, help="quotes per second (400)")
    parser.add_argument(
        "--time-scale", type=float, default=TRADING_DAY_S, help="trading seconds per real second (a day)"
    )
    parser.add_argument("--max-quote-age-s", type=float, default=5.0, help="instruments' max quote age (5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--web-port", type=int, default=6166, help="first worker's web port (6166, 6167, ...)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the namespace's topics and keys afterwards")
    parser.add_argument(
        "--summary", type=Path, default=OUT / "demo-summary.json", help="where the summary goes"
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of `streamproc demo`."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries right after topic creation are expected
    try:
        settings = Settings.from_env(None, namespace=f"demo-{int(time.time())}")
    except SettingsError as exc:
        raise SystemExit(f"streamproc demo: {exc}") from None
    doc: dict[str, Any] = {}

    async def main() -> None:
        # Ctrl-C or SIGTERM: cancel the run, which stops its parts in order and still prints the summary
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        doc.update(await _run(settings, args))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    if not doc:
        return 130
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    print_summary(doc, args.summary)
    return 130 if doc["interrupted"] else 0
