"""Announcing alerts: lifecycle transitions become ``alerts`` records (wire contract v1) published by the
worker that owns the subject; the firing set is mirrored in Redis, so a new owner (after a rebalance or a
restart) resolves what its predecessor announced instead of announcing it again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import structlog

from streamproc.app.accounts import Accounts
from streamproc.app.counters import Counters
from streamproc.app.ports import AlertStore, Publisher
from streamproc.app.prices import Prices
from streamproc.app.watch import Watch
from streamproc.core.alerts import ALERT_TYPES, Episode, Key, Subject, Transition, apply, reconcile
from streamproc.state.records import episode_doc, episode_from

log = structlog.get_logger(__name__)


def field_of(key: Key) -> str:
    """The Redis hash field of an alert key: ``<type>|<subject kind>|<subject id>``."""
    type_, (kind, ident) = key
    return f"{type_}|{kind}|{ident}"


def alert_doc(t: Transition, now_ms: int, runbook_base_url: str = "") -> dict[str, Any]:
    """The ``alerts`` record of a transition (with ``runbook_url`` when the runbooks' base is set)."""
    ep = t.episode
    kind = ALERT_TYPES[ep.type]
    details = dict(ep.details)
    if t.state == "resolved":
        details["firing_since"] = ep.since_ms
    return {
        "alert_id": ep.id,
        "type": ep.type,
        "severity": kind.severity,
        "state": t.state,
        "subject": {ep.subject[0]: ep.subject[1]},
        "ts": now_ms,
        "details": details,
        "runbook": kind.runbook,
    } | ({"runbook_url": f"{runbook_base_url}/{ep.type}.md"} if runbook_base_url else {})


class Alerter:
    """Reconciles detector episodes with the announced set and publishes the difference."""

    def __init__(
        self,
        store: AlertStore,
        publisher: Publisher,
        topic: str,
        owns: Callable[[Subject], bool],
        counters: Counters,
        runbook_base_url: str = "",
    ) -> None:
        self.store = store
        self.runbook_base_url = runbook_base_url
        self.publisher = publisher
        self.topic = topic
        self.owns = owns
        self.counters = counters
        self.firing: dict[Key, Episode] = {}
        self.stale = True  # reload the firing set before the next reconciliation (ownership changed)
        self._lock = asyncio.Lock()

    def invalidate(self, _partitions: object = None) -> None:
        """Ownership changed: reload the announced set before the next reconciliation."""
        self.stale = True

    async def load(self) -> dict[Key, Episode]:
        """Read the announced set from Redis."""
        raw = await self.store.firing_alerts()
        self.firing = {(ep := episode_from(doc)).key: ep for doc in raw.values()}
        self.stale = False
        return self.firing

    async def sync(
        self, types: Iterable[str], open_now: Mapping[Key, Episode], closed: Iterable[Episode], now_ms: int
    ) -> list[Transition]:
        """Publish the transitions for ``types`` this worker owns; returns them."""
        async with self._lock:
            if self.stale:
                await self.load()
            transitions = reconcile(types, open_now, closed, self.firing, self.owns)
            if transitions:
                await self._publish(transitions, now_ms)
            return transitions

    async def _publish(self, transitions: list[Transition], now_ms: int) -> None:
        futures = []
        for t in transitions:
            doc = alert_doc(t, now_ms, self.runbook_base_url)
            ep = t.episode
            futures.append(
                await self.publisher.send(self.topic, key=ep.subject[1].encode(), value=orjson.dumps(doc))
            )
            self.counters.alerts.inc(ep.type, t.state)
            log.warning("alert", type=ep.type, state=t.state, subject=ep.subject[1], alert_id=ep.id)
        await asyncio.gather(*futures)
        before = dict(self.firing)
        apply(self.firing, transitions)
        firing = {field_of(k): episode_doc(e) for k, e in self.firing.items() if before.get(k) is not e}
        resolved = [field_of(k) for k in before if k not in self.firing]
        await self.store.record_alerts(firing, resolved)


DATA_ALERTS = (
    "quote_stale",
    "quote_gap",
    "quote_crossed",
    "quote_outlier",
    "clock_skew",
    "position_gap",
    "order_rejected",
    "order_unanswered",
    "sleeve_stopped",
    "needs_adjustment",
)
TOPIC_ALERTS = ("feed_silent", "deadletter_rate", "breach_storm")


class DataAlerts:
    """After each evaluation pass: reconcile the quote and position detectors with the announced set."""

    def __init__(
        self,
        prices: Prices,
        accounts: Accounts,
        alerter: Alerter,
        watch: Watch,
        feed_ready_ms: Callable[[], int | None],
    ) -> None:
        self.prices = prices
        self.accounts = accounts
        self.alerter = alerter
        self.watch = watch
        self.feed_ready_ms = feed_ready_ms

    async def announce(self, now_ms: int) -> list[Transition]:
        prices, accounts, alerter = self.prices, self.accounts, self.alerter
        open_now = prices.checks.open_episodes()

        def owned(r: int) -> bool:
            return bool(accounts.owned[r])

        open_now.update(accounts.quarantine.open_episodes(owned))
        open_now.update(accounts.working.open_episodes(owned))
        open_now.update(accounts.sleeves.open_episodes(owned))
        open_now.update(accounts.adjustments.open_episodes(owned))
        closed = (
            prices.checks.drain_closed()
            + accounts.quarantine.drain_closed()
            + accounts.working.drain_closed()
            + accounts.sleeves.drain_closed()
            + accounts.adjustments.drain_closed()
        )
        types: tuple[str, ...] = DATA_ALERTS
        if self.watch.tick == 0:  # which instruments are referenced is not known yet: judge staleness later
            types = tuple(t for t in types if t != "quote_stale")
        else:
            open_now.update(prices.stale_episodes(self.watch.referenced, now_ms, self.feed_ready_ms()))
            self.watch.quotes_due_ms = prices.market_open_since(self.watch.referenced, now_ms)
            self.watch.quotes_due_known = True
            if alerter.stale:
                await alerter.load()
            # a "never quoted" alert outlives a restart (its clock restarts with the feed) while unquoted
            for key, ep in alerter.firing.items():
                never = ep.type == "quote_stale" and ep.id.endswith(":never")
                if never and key not in open_now and prices.never_quoted(ep.subject[1]):
                    open_now[key] = ep
        return await alerter.sync(types, open_now, closed, now_ms)
