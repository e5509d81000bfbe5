"""The in-memory twin of the Redis store, for in-process tests of the worker's components: the same
records, encoded and parsed by the same codec, with Redis's semantics (SET NX, HDEL, sets)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from streamproc.core.trading import StateDoc
from streamproc.state.records import (
    AccountPatch,
    AccountRecord,
    EpisodeDoc,
    OrderRequest,
    RecordedOrder,
    StoredQuote,
    StormDoc,
    encoded,
    parse_account,
)


class MemoryStore:
    """What one Redis namespace holds, in dicts; several workers (evaluators) may share one."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[bytes, bytes]] = {}
        self.partitions: dict[int, set[str]] = {}
        self.emitted: dict[str, set[str]] = {}
        self.owner: dict[int, str] = {}
        self.quotes: dict[str, StoredQuote] = {}
        self.quote_offsets_: dict[int, int] = {}
        self.order_offsets_: dict[int, int] = {}
        self.held: set[str] = set()
        self.alerts: dict[str, EpisodeDoc] = {}
        self.storm_: StormDoc | None = None
        self.muted = False
        self.reconcile: dict[str, int] = {}
        self.order_requests_: dict[str, OrderRequest] = {}
        self.trading: dict[str, StateDoc] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}  # operation -> how many times it was called

    def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1

    async def ping(self) -> None:
        return None

    # ---- accounts ----------------------------------------------------------------------------

    async def load_partitions(self, partitions: Iterable[int]) -> list[AccountRecord]:
        self._count("load_partitions")
        names = [a for p in sorted(partitions) for a in sorted(self.partitions.get(p, ()))]
        return [parse_account(a, self.accounts[a]) for a in names if self.accounts.get(a)]

    async def load_account(self, account: str) -> AccountRecord | None:
        raw = self.accounts.get(account)
        return parse_account(account, raw) if raw else None

    async def write_accounts(
        self,
        patches: Mapping[str, AccountPatch],
        partitions: Mapping[str, int],
        referenced: Iterable[str] = (),
    ) -> None:
        referenced = list(referenced)
        if not patches:
            return
        self._count("write_accounts")
        for account, patch in patches.items():
            fields = self.accounts.setdefault(account, {})
            fields.update({k.encode(): encoded(v) for k, v in patch.fields.items()})
        for account, p in partitions.items():
            self.partitions.setdefault(p, set()).add(account)
        self.held.update(referenced)

    async def held_instruments(self) -> set[str]:
        return set(self.held)

    # ---- owners ------------------------------------------------------------------------------

    async def claim(self, partitions: Iterable[int], token: str) -> dict[int, str | None]:
        previous: dict[int, str | None] = {}
        for p in partitions:
            previous[p] = self.owner.get(p)
            self.owner[p] = token
        return previous

    async def owners(self, partitions: Iterable[int]) -> dict[int, str | None]:
        return {p: self.owner.get(p) for p in partitions}

    # ---- orders ------------------------------------------------------------------------------

    async def record_orders(self, orders: Iterable[RecordedOrder], offsets: Mapping[int, int]) -> None:
        orders = list(orders)
        if not orders and not offsets:
            return
        self._count("record_orders")
        for o in orders:
            fields = self.accounts.setdefault(o.account, {})
            fields.update({k.encode(): encoded(v) for k, v in o.patch().fields.items()})
            self.emitted.setdefault(o.account, set()).update(o.ids)
        self.order_offsets_.update(offsets)

    async def order_offsets(self) -> dict[int, int]:
        return dict(self.order_offsets_)

    # ---- quotes ------------------------------------------------------------------------------

    async def load_quotes(self) -> tuple[dict[int, int], dict[str, StoredQuote]]:
        return dict(self.quote_offsets_), dict(self.quotes)

    async def write_quotes(self, quotes: Mapping[str, StoredQuote], offsets: Mapping[int, int]) -> None:
        if not quotes and not offsets:
            return
        self._count("write_quotes")
        self.quotes.update(quotes)
        self.quote_offsets_.update(offsets)

    async def quote_offsets(self) -> dict[int, int]:
        return dict(self.quote_offsets_)

    async def load_quote(self, instrument: str) -> StoredQuote | None:
        return self.quotes.get(instrument)

    # ---- alerts and control ------------------------------------------------------------------

    async def firing_alerts(self) -> dict[str, EpisodeDoc]:
        # a copy through the codec, as a read from Redis would be
        return {k: orjson.loads(orjson.dumps(v)) for k, v in self.alerts.items()}

    async def record_alerts(self, firing: Mapping[str, EpisodeDoc], resolved: Iterable[str]) -> None:
        self.alerts.update(firing)
        for k in resolved:
            self.alerts.pop(k, None)

    async def storm(self) -> tuple[StormDoc | None, bool]:
        return self.storm_, self.muted

    async def start_storm(self, doc: StormDoc) -> bool:
        if self.storm_ is not None:
            return False
        self.storm_ = doc
        return True

    async def release_storm(self, mute_s: float) -> StormDoc | None:
        """Release; ``muted`` stays until a test clears it (there is no TTL clock here)."""
        released, self.storm_ = self.storm_, None
        self.muted = mute_s > 0
        return released

    async def reconcile_requests(self) -> dict[str, int]:
        return dict(self.reconcile)

    async def request_reconcile(self, account: str, now_ms: int) -> None:
        self.reconcile[account] = now_ms

    async def reconciled(self, accounts: Iterable[str]) -> None:
        for a in accounts:
            self.reconcile.pop(a, None)

    async def order_requests(self) -> dict[str, OrderRequest]:
        return dict(self.order_requests_)

    async def request_order_action(self, account: str, request: OrderRequest) -> None:
        self.order_requests_[account] = request

    async def order_requests_handled(self, accounts: Iterable[str]) -> None:
        for a in accounts:
            self.order_requests_.pop(a, None)

    async def trading_states(self) -> dict[str, StateDoc]:
        return dict(self.trading)

    async def set_trading_state(self, key: str, doc: StateDoc | None) -> StateDoc | None:
        before = self.trading.pop(key, None)
        if doc is not None:
            self.trading[key] = doc
        return before

    async def write_worker(self, token: str, doc: Mapping[str, Any]) -> None:
        self.workers[token] = dict(doc)
