"""Helpers for the data-gap tests: a quote ticker, alert filters, and reads of the worker's Redis state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from streamproc.settings import Settings
from streamproc.sim.messages import now_ms, produce, quote
from streamproc.state.keys import Keys


def alerts_of(values: list[dict[str, Any]], type_: str, ident: str | None = None) -> list[dict[str, Any]]:
    """Alerts of one type (and subject id), in arrival order."""
    return [a for a in values if a["type"] == type_ and (ident is None or ident in a["subject"].values())]


def states(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["state"] for a in alerts]


class Ticker:
    """Keeps quoting instruments at fixed mids every ``every`` seconds with consecutive seqs."""

    def __init__(self, bootstrap: str, topic: str, mids: dict[str, float], seqs: dict[str, int]) -> None:
        self.bootstrap, self.topic, self.mids, self.seq = bootstrap, topic, mids, seqs
        self.every = 0.3
        self.last_ts: dict[str, int] = {}

    def now(self) -> int:
        return now_ms()

    def next(self, inst: str, mid: float | None = None) -> tuple[str, tuple[bytes, bytes]]:
        """The instrument's next quote in sequence (at its mid, or ``mid``)."""
        self.seq[inst] += 1
        ts = self.last_ts[inst] = now_ms()
        return (
            self.topic,
            quote(inst, self.mids.get(inst, 0.0) if mid is None else mid, self.seq[inst], ts=ts),
        )

    async def _run(self) -> None:
        while True:
            await produce(self.bootstrap, [self.next(i) for i in self.mids])
            await asyncio.sleep(self.every)


@asynccontextmanager
async def ticking(ticker: Ticker) -> AsyncIterator[Ticker]:
    task = asyncio.create_task(ticker._run())
    try:
        yield ticker
    finally:
        task.cancel()


async def account_field(redis_client: Any, settings: Settings, account: str, field: str) -> Any:
    """A JSON field of an account's hash (``drift``, ``gap``), or None."""
    raw = await redis_client.hget(Keys(settings.redis_prefix).account(account), field)
    return orjson.loads(raw) if raw else None


async def status_is(redis_client: Any, settings: Settings, account: str, status: str) -> Any:
    """The account's drift document when its status is ``status``, else None."""
    drift = await account_field(redis_client, settings, account, "drift")
    return drift if drift and drift["status"] == status else None


async def quote_seen(redis_client: Any, settings: Settings, inst: str, seq: int) -> bool:
    """Whether the worker has stored a quote of ``inst`` with seq >= ``seq``."""
    raw = await redis_client.hget(Keys(settings.redis_prefix).quote(inst), "seen")
    return raw is not None and int(raw) >= seq
