"""Pipelined reads and writes of account, order and price state; retries while Redis is unreachable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.typing import EncodableT, FieldT

from streamproc.core.trading import StateDoc
from streamproc.state.keys import Keys
from streamproc.state.records import (
    QUOTE_FIELDS,
    AccountPatch,
    AccountRecord,
    EpisodeDoc,
    FieldValue,
    HashFields,
    OrderRequest,
    RecordedOrder,
    StoredQuote,
    StormDoc,
    parse_account,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")
_CHUNK = 1000
EMITTED_TTL_S = 30 * 24 * 3600
_TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def _text(v: bytes | str) -> str:
    """A key, member or field as text (the client returns bytes: decode_responses is off)."""
    return v.decode() if isinstance(v, bytes) else v


def _mapping(fields: Mapping[str, FieldValue]) -> Mapping[FieldT, EncodableT]:
    """An HSET mapping (redis-py's types are wider than the records' field values)."""
    return cast("Mapping[FieldT, EncodableT]", fields)


class Store:
    """The worker's view of Redis; every method is one or a few pipelined round trips."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        observe: Callable[[str, float], None] | None = None,
        failed: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.observe = observe  # (op, seconds) of each operation, retries included (metrics)
        self.failed = failed  # op of each failed attempt (metrics)

    async def retry(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` until it succeeds: a lost Redis pauses the caller (and so consumption), never skips."""
        delay = 0.05
        started = time.perf_counter()
        while True:
            try:
                result = await op()
                if self.observe is not None:
                    self.observe(what, time.perf_counter() - started)
                return result
            except _TRANSIENT as exc:
                if self.failed is not None:
                    self.failed(what)
                log.warning("redis unavailable, retrying", op=what, error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def ping(self) -> None:
        """Raise unless Redis answers within a second (readiness)."""
        await asyncio.wait_for(self.redis.ping(), 1.0)

    # ---- accounts ----------------------------------------------------------------------------

    async def load_partitions(self, partitions: Iterable[int]) -> list[AccountRecord]:
        """Every account stored for these partitions (SMEMBERS, then HGETALL in pipelined chunks)."""
        parts = sorted(partitions)

        async def members() -> list[list[bytes]]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for p in parts:
                    pipe.smembers(self.keys.partition(p))
                return [sorted(m) for m in await pipe.execute()]

        accounts = [a.decode() for group in await self.retry("load members", members) for a in group]
        out: list[AccountRecord] = []
        for start in range(0, len(accounts), _CHUNK):
            chunk = accounts[start : start + _CHUNK]

            async def fetch(chunk: list[str] = chunk) -> list[dict[bytes, bytes]]:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for a in chunk:
                        pipe.hgetall(self.keys.account(a))
                    return list(await pipe.execute())

            for a, raw in zip(chunk, await self.retry("load accounts", fetch), strict=True):
                if raw:
                    out.append(parse_account(a, raw))
        return out

    async def scan_accounts(
        self, fields: Sequence[str], chunk: int = 1000
    ) -> AsyncIterator[tuple[str, list[bytes | None]]]:
        """Every stored account with the values of ``fields``, for operator commands and reports (one key
        scan, then HMGETs pipelined ``chunk`` at a time; not for a worker's hot path)."""
        pattern = self.keys.account("*")  # a MATCH pattern: the braces are literal in it
        names = [k async for k in self.redis.scan_iter(match=pattern, count=5000)]
        for i in range(0, len(names), chunk):
            part = names[i : i + chunk]
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in part:
                    pipe.hmget(k, list(fields))
                rows = await pipe.execute()
            for k, values in zip(part, rows, strict=True):
                key = _text(k)
                yield key[key.index("{") + 1 : key.rindex("}")], values

    async def load_account(self, account: str) -> AccountRecord | None:
        """One account (for `streamproc inspect` and tests)."""
        raw = await self.redis.hgetall(self.keys.account(account))
        return parse_account(account, cast(HashFields, raw)) if raw else None

    async def write_accounts(
        self,
        patches: Mapping[str, AccountPatch],
        partitions: Mapping[str, int],
        referenced: Iterable[str] = (),
    ) -> None:
        """HSET the changed fields of many accounts, index them by partition and note the instruments
        they reference, in one pipeline."""
        referenced = list(referenced)
        if not patches:
            return

        async def op() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for account, patch in patches.items():
                    if patch.fields:
                        pipe.hset(self.keys.account(account), mapping=_mapping(patch.fields))
                by_part: dict[int, list[str]] = {}
                for account, p in partitions.items():
                    by_part.setdefault(p, []).append(account)
                for p, accounts in by_part.items():
                    pipe.sadd(self.keys.partition(p), *accounts)
                if referenced:
                    pipe.sadd(self.keys.held, *referenced)
                await pipe.execute()

        await self.retry("write accounts", op)

    async def record_orders(
        self,
        orders: Iterable[RecordedOrder],
        offsets: Mapping[int, int],
    ) -> None:
        """After publication: each order becomes its account's last order, its ids (cancels too) join the
        emitted set; ``offsets`` advance the orders scan start."""
        orders = list(orders)
        if not orders and not offsets:
            return

        async def op() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for o in orders:
                    pipe.hset(self.keys.account(o.account), mapping=_mapping(o.patch().fields))
                    pipe.sadd(self.keys.emitted(o.account), *o.ids)
                    pipe.expire(self.keys.emitted(o.account), EMITTED_TTL_S)
                if offsets:
                    pipe.hset(self.keys.order_offsets, mapping={str(p): o for p, o in offsets.items()})
                await pipe.execute()

        await self.retry("record orders", op)

    async def _offsets(self, key: str) -> dict[int, int]:
        """A partition -> offset hash."""
        return {int(k): int(v) for k, v in (await self.redis.hgetall(key)).items()}

    async def order_offsets(self) -> dict[int, int]:
        """Orders partition -> offset where the recovery scan starts."""
        return await self.retry("order offsets", lambda: self._offsets(self.keys.order_offsets))

    async def claim(self, partitions: Iterable[int], token: str) -> dict[int, str | None]:
        """Mark this worker as the partitions' owner; returns the previous owner tokens."""
        parts = list(partitions)

        async def op() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for p in parts:
                    pipe.set(self.keys.owner(p), token, get=True)
                return list(await pipe.execute())

        previous = await self.retry("claim partitions", op)
        return {p: (_text(v) if v else None) for p, v in zip(parts, previous, strict=True)}

    async def owners(self, partitions: Iterable[int]) -> dict[int, str | None]:
        """Current owner tokens of partitions."""
        parts = list(partitions)
        raw = await self.retry("owners", lambda: self.redis.mget([self.keys.owner(p) for p in parts]))
        return {p: (_text(v) if v else None) for p, v in zip(parts, raw, strict=True)}

    # ---- quotes ------------------------------------------------------------------------------

    async def load_quotes(self) -> tuple[dict[int, int], dict[str, StoredQuote]]:
        """(quotes partition -> offset, instrument -> last quote); offsets are read first, so the
        quotes are at least as new as the offsets say (replaying from them loses nothing)."""

        async def op() -> tuple[dict[int, int], dict[str, StoredQuote]]:
            offsets = await self._offsets(self.keys.quote_offsets)
            names = sorted(_text(m) for m in await self.redis.smembers(self.keys.quote_instruments))
            quotes: dict[str, StoredQuote] = {}
            for start in range(0, len(names), _CHUNK):
                chunk = names[start : start + _CHUNK]
                async with self.redis.pipeline(transaction=False) as pipe:
                    for i in chunk:
                        pipe.hmget(self.keys.quote(i), QUOTE_FIELDS)
                    for i, values in zip(chunk, await pipe.execute(), strict=True):
                        if (q := StoredQuote.parse(values)) is not None:
                            quotes[i] = q
            return offsets, quotes

        return await self.retry("load quotes", op)

    async def write_quotes(self, quotes: Mapping[str, StoredQuote], offsets: Mapping[int, int]) -> None:
        """Store the latest accepted quotes, then the offsets they reflect (same connection, in order)."""
        if not quotes and not offsets:
            return

        async def op() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i, q in quotes.items():
                    pipe.hset(self.keys.quote(i), mapping=_mapping(q.fields()))
                if quotes:
                    pipe.sadd(self.keys.quote_instruments, *quotes)
                if offsets:
                    pipe.hset(self.keys.quote_offsets, mapping={str(p): o for p, o in offsets.items()})
                await pipe.execute()

        await self.retry("write quotes", op)

    async def quote_offsets(self) -> dict[int, int]:
        """Quotes partition -> next offset the stored quotes reflect."""
        return await self.retry("quote offsets", lambda: self._offsets(self.keys.quote_offsets))

    async def held_instruments(self) -> set[str]:
        """Instruments some account has held or targeted."""
        raw = await self.retry("held instruments", lambda: self.redis.smembers(self.keys.held))
        return {_text(m) for m in raw}

    # ---- alerts and control ------------------------------------------------------------------

    async def firing_alerts(self) -> dict[str, EpisodeDoc]:
        """Alerts announced as firing and not yet resolved, by ``<type>|<kind>|<id>``."""
        raw = await self.retry("firing alerts", lambda: self.redis.hgetall(self.keys.alerts))
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    async def record_alerts(self, firing: Mapping[str, EpisodeDoc], resolved: Iterable[str]) -> None:
        """After publication: note firing alerts, forget resolved ones."""
        resolved = list(resolved)

        async def op() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                if firing:
                    pipe.hset(self.keys.alerts, mapping={k: orjson.dumps(v) for k, v in firing.items()})
                if resolved:
                    pipe.hdel(self.keys.alerts, *resolved)
                await pipe.execute()

        if firing or resolved:
            await self.retry("record alerts", op)

    async def storm(self) -> tuple[StormDoc | None, bool]:
        """(the breach storm holding orders or None, whether detection is muted after a release)."""

        async def op() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(self.keys.storm)
                pipe.exists(self.keys.storm_mute)
                return list(await pipe.execute())

        raw, muted = await self.retry("storm state", op)
        return (orjson.loads(raw) if raw else None), bool(muted)

    async def start_storm(self, doc: StormDoc) -> bool:
        """Hold all orders unless a storm already does; True if this call started it."""
        return bool(
            await self.retry(
                "start storm", lambda: self.redis.set(self.keys.storm, orjson.dumps(doc), nx=True)
            )
        )

    async def release_storm(self, mute_s: float) -> StormDoc | None:
        """Let orders flow again and mute detection for ``mute_s``; returns the storm released, if any."""

        async def op() -> list[Any]:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.storm)
                pipe.delete(self.keys.storm)
                if mute_s > 0:
                    pipe.set(self.keys.storm_mute, b"1", px=int(mute_s * 1000))
                return list(await pipe.execute())

        raw = (await self.retry("release storm", op))[0]
        return orjson.loads(raw) if raw else None

    async def reconcile_requests(self) -> dict[str, int]:
        """Accounts an operator asked to reconcile (lift their position-gap quarantine)."""
        raw = await self.retry("reconcile requests", lambda: self.redis.hgetall(self.keys.reconcile))
        return {_text(k): int(v) for k, v in raw.items()}

    async def request_reconcile(self, account: str, now_ms: int) -> None:
        """Ask the account's owner to lift its quarantine."""
        await self.retry("request reconcile", lambda: self.redis.hset(self.keys.reconcile, account, now_ms))

    async def reconciled(self, accounts: Iterable[str]) -> None:
        """Requests handled."""
        names = list(accounts)
        if names:
            await self.retry("reconciled", lambda: self.redis.hdel(self.keys.reconcile, *names))

    async def order_requests(self) -> dict[str, OrderRequest]:
        """Accounts an operator decided on (``streamproc orders retry|release``)."""
        raw = await self.retry("order requests", lambda: self.redis.hgetall(self.keys.order_requests))
        return {_text(k): OrderRequest.decode(v) for k, v in raw.items()}

    async def request_order_action(self, account: str, request: OrderRequest) -> None:
        """Ask the account's owner to retry or release it."""
        key = self.keys.order_requests
        await self.retry("request order action", lambda: self.redis.hset(key, account, request.encode()))

    async def order_requests_handled(self, accounts: Iterable[str]) -> None:
        names = list(accounts)
        if names:
            await self.retry(
                "order requests handled", lambda: self.redis.hdel(self.keys.order_requests, *names)
            )

    async def trading_states(self) -> dict[str, StateDoc]:
        """The trading states operators set (``halt``/``reduce``), by ``<scope>:<id>``."""
        raw = await self.retry("trading states", lambda: self.redis.hgetall(self.keys.trading))
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    async def set_trading_state(self, key: str, doc: StateDoc | None) -> StateDoc | None:
        """Set (or with None, end) one trading state; returns the one it replaced."""

        async def op() -> list[Any]:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hget(self.keys.trading, key)
                if doc is None:
                    pipe.hdel(self.keys.trading, key)
                else:
                    pipe.hset(self.keys.trading, key, orjson.dumps(doc))
                return list(await pipe.execute())

        before = (await self.retry("set trading state", op))[0]
        return orjson.loads(before) if before else None

    async def write_worker(self, token: str, doc: Mapping[str, Any]) -> None:
        """This worker's summary for `streamproc inspect status`."""
        await self.retry("write worker", lambda: self.redis.hset(self.keys.workers, token, orjson.dumps(doc)))

    async def workers(self) -> dict[str, dict[str, Any]]:
        """Every worker's latest summary."""
        raw = await self.redis.hgetall(self.keys.workers)
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    async def load_quote(self, instrument: str) -> StoredQuote | None:
        """One instrument's stored feed state (for `streamproc inspect`)."""
        values = await self.redis.hmget(self.keys.quote(instrument), QUOTE_FIELDS)
        return StoredQuote.parse(cast("list[bytes | None]", values))
