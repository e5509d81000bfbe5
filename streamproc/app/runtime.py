"""The component graph of one worker, built from its ports: the worker (``worker.py``) passes Redis and
Kafka, in-process tests pass ``MemoryStore`` and the test kit; everything else is the same."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from streamproc import calendars
from streamproc.app.accounts import Accounts
from streamproc.app.alerting import Alerter, DataAlerts
from streamproc.app.counters import Counters
from streamproc.app.deadletters import DeadLetters
from streamproc.app.decisions import state_counts
from streamproc.app.evaluator import Cadence, Evaluator
from streamproc.app.feed import Feed
from streamproc.app.health import Health
from streamproc.app.intake import Intake
from streamproc.app.metrics import Gauges, Metrics
from streamproc.app.orders import AfterPublish, Orders
from streamproc.app.ownership import Ownership
from streamproc.app.ports import Clock, OrderLog, Publisher, SystemClock, WorkerStore
from streamproc.app.prices import Prices
from streamproc.app.progress import Progress
from streamproc.app.storm import StormGuard
from streamproc.app.throttle import Throttle
from streamproc.app.trading import Trading
from streamproc.app.watch import Watch
from streamproc.app.watcher import Watcher
from streamproc.core import BandPolicy, Book
from streamproc.settings import Settings
from streamproc.wire.contract import Contract


@dataclass(slots=True)
class Components:
    """One worker's parts, wired; ``worker.py`` drives them from Faust and its tasks."""

    settings: Settings
    partitions: dict[str, int]
    store: WorkerStore
    book: Book
    accounts: Accounts
    prices: Prices
    counters: Counters
    progress: Progress
    metrics: Metrics
    ownership: Ownership
    orders: Orders
    storm: StormGuard
    alerter: Alerter
    feed: Feed
    intake: Intake
    evaluator: Evaluator
    watch: Watch
    watcher: Watcher
    health: Health
    cadence: Cadence

    def gauges(self) -> Gauges:
        """What /metrics reports beyond the counters (read at scrape time)."""
        firing = Counter(k[0] for k in self.alerter.firing if self.ownership.owns_subject(k[1]))
        return {
            "accounts": state_counts(self.accounts),
            "firing": dict(firing),
            "last_event_ms": dict(self.progress.last_event_ms),
            "lag": dict(self.progress.lag),
            "partitions": len(self.ownership.loaded_partitions()),
            "waiting_notional": self.accounts.capacity.notional(),
        }


def build(
    settings: Settings,
    contract: Contract,
    partitions: dict[str, int],
    *,
    store: WorkerStore,
    publisher: Publisher,
    order_log: OrderLog,
    clock: Clock | None = None,
    after_publish: AfterPublish | None = None,
    token: str | None = None,
) -> Components:
    """Wire one worker's components around the given ports."""
    clock = clock or SystemClock()
    topics = settings.topics
    lock = asyncio.Lock()  # one evaluation / rebalance / watch step at a time
    limits = settings.limits
    book = Book(
        BandPolicy(
            default=limits.default_band,
            tiers=limits.tier_bands(),
            instruments=limits.instrument_bands(),
            rel_floor=settings.band_rel_floor,
            edge_margin=settings.band_edge_margin,
        ),
        default_cash_buffer=settings.cash_buffer,
        limits=limits,
    )
    accounts = Accounts(
        book,
        cooldown_s=settings.order_cooldown_s,
        settle_s=settings.order_settle_s,
        max_attempts=settings.order_max_attempts,
        drift_min_move=settings.drift_min_move,
        drift_refresh_s=settings.drift_refresh_s,
    )
    prices = Prices(
        book,
        max_age_s=settings.quote_max_age_s,
        outlier_move=settings.outlier_move,
        max_age_by_tier=settings.quote_max_age_by_tier,
        outlier_by_tier=settings.outlier_move_by_tier,
        max_skew_s=settings.max_clock_skew_s,
        calendars=calendars.load,
        opening_delay_s=settings.opening_delay_s,
        opening_delay_by_tier=settings.opening_delay_by_tier,
    )
    counters = Counters()
    progress = Progress(topics)
    metrics = Metrics(counters, lambda: components.gauges())
    metrics.limits.info({"version": limits.version, "source": limits.source})
    deadletters = DeadLetters(publisher, topics, counters, clock)
    orders = Orders(
        publisher,
        order_log,
        store,
        accounts,
        topics.orders,
        counters,
        clock,
        observe_latency=metrics.quote_to_order.observe,
        after_publish=after_publish,
    )
    ownership = Ownership(store, accounts, partitions, orders.recover, lock, clock, token=token)
    storm = StormGuard(settings, store, accounts)
    alerter = Alerter(
        store, publisher, topics.alerts, ownership.owns_subject, counters, settings.runbook_base_url
    )
    watch = Watch(settings)
    feed = Feed(
        contract,
        topics,
        partitions,
        prices,
        store,
        deadletters,
        ownership.owns_input,
        counters,
        progress,
        clock,
        batch_max=settings.batch_max,
        checkpoint_ms=settings.quote_checkpoint_ms,
    )
    ownership.on_gained += [feed.request_reseek, alerter.invalidate]
    intake = Intake(
        contract,
        topics,
        accounts,
        store,
        deadletters,
        ownership.wait_loaded,
        counters,
        progress,
        clock,
        max_skew_s=settings.max_clock_skew_s,
    )
    alerts = DataAlerts(prices, accounts, alerter, watch, lambda: feed.ready_ms)
    trading = Trading(accounts)

    async def load_trading() -> None:
        async with lock:
            trading.apply(await store.trading_states())

    evaluator = Evaluator(
        accounts,
        prices,
        storm,
        orders,
        store,
        alerts,
        counters,
        clock,
        lock,
        observe_pass=metrics.evaluation.observe,
        before_first=load_trading,
        throttle=Throttle(settings.max_orders_per_s, settings.max_notional_per_min),
    )
    watcher = Watcher(
        settings, store, watch, storm, accounts, ownership, alerter, counters, progress, lock, clock, trading
    )
    health = Health(
        lambda: ownership.assigned,
        lambda: sorted(p for p in ownership.owned if not ownership.owns_partition(p)),
        feed.ready,
        store.ping,
    )
    cadence = Cadence(
        settings.eval_interval_ms / 1000.0, settings.eval_max_defer_ms / 1000.0, settings.batch_max
    )
    components = Components(
        settings,
        partitions,
        store,
        book,
        accounts,
        prices,
        counters,
        progress,
        metrics,
        ownership,
        orders,
        storm,
        alerter,
        feed,
        intake,
        evaluator,
        watch,
        watcher,
        health,
        cadence,
    )
    return components
