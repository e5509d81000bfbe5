"""Announcing alerts: lifecycle transitions become ``alerts`` records (wire contract v1) published by the
worker that owns the subject; the firing set is mirrored in Redis, so a new owner (after a rebalance or a
restart) resolves what its predecessor announced instead of announcing it again."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaProducer

from streamproc.app.prices import episode_doc, episode_from
from streamproc.core.alerts import ALERT_TYPES, Episode, Key, Subject, Transition, apply, reconcile
from streamproc.state.store import Store

log = structlog.get_logger(__name__)


def field_of(key: Key) -> str:
    """The Redis hash field of an alert key: ``<type>|<subject kind>|<subject id>``."""
    type_, (kind, ident) = key
    return f"{type_}|{kind}|{ident}"


def alert_doc(t: Transition, now_ms: int) -> dict[str, Any]:
    """The ``alerts`` record of a transition."""
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
    }


class Alerter:
    """Reconciles detector episodes with the announced set and publishes the difference."""

    def __init__(
        self,
        store: Callable[[], Store],
        producer: Callable[[], AIOKafkaProducer],
        topic: str,
        owns: Callable[[Subject], bool],
        stats: Counter[str],
    ) -> None:
        self._store = store
        self._producer = producer
        self.topic = topic
        self.owns = owns
        self.stats = stats
        self.firing: dict[Key, Episode] = {}
        self.stale = True  # reload the firing set before the next reconciliation (ownership changed)
        self._lock = asyncio.Lock()

    async def load(self) -> dict[Key, Episode]:
        """Read the announced set from Redis."""
        raw = await self._store().firing_alerts()
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
        producer = self._producer()
        futures = []
        for t in transitions:
            doc = alert_doc(t, now_ms)
            ep = t.episode
            futures.append(
                await producer.send(self.topic, key=ep.subject[1].encode(), value=orjson.dumps(doc))
            )
            self.stats[f"alerts.{ep.type}.{t.state}"] += 1
            log.warning("alert", type=ep.type, state=t.state, subject=ep.subject[1], alert_id=ep.id)
        await asyncio.gather(*futures)
        before = dict(self.firing)
        apply(self.firing, transitions)
        firing = {field_of(k): episode_doc(e) for k, e in self.firing.items() if before.get(k) is not e}
        resolved = [field_of(k) for k in before if k not in self.firing]
        await self._store().record_alerts(firing, resolved)
