"""`streamproc fill`: a stand-in order-management system. It fills each rebalance order once (deduplicated
by ``event_id`` in Redis) at the then-current quotes, sells at the bid and buys at the ask, and publishes
the account's resulting absolute positions with its next seqs, as a broker's fills would arrive."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamproc import kafka
from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings
from streamproc.sim.market import CASH, Record
from streamproc.sim.simulate import assign_tail, behind, command_settings, now_ms, run_command
from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract, SchemaViolation

ZERO = Decimal(0)
CLAIM_TTL_S = 86_400
QUOTE_LOOKBACK = 20_000


# ---- the pure part: the book of record and how an order's legs change it ----


@dataclass
class Holdings:
    """One account as the positions topic says: the last seq and the qty per instrument (CASH too)."""

    seq: int = 0
    qty: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Execution:
    """One leg as filled: ``qty`` may be less than ordered (never oversell, never overdraw cash)."""

    instrument: str
    side: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """An order's executions and the absolute holdings they leave (changed instruments, then CASH)."""

    executions: list[Execution]
    holdings: dict[str, Decimal]
    partial: bool


def fill_legs(
    legs: Iterable[Mapping[str, Any]],
    held: Mapping[str, Decimal],
    quotes: Mapping[str, tuple[Decimal, Decimal]],
    fee_bps: Decimal = ZERO,
) -> Fill:
    """Fill ``legs`` against ``held`` at ``quotes`` (instrument -> bid, ask): sells first, at the bid and
    capped at the holding; then buys at the ask, each cut (to its ordered precision, the lot) to the cash
    there is; ``fee_bps`` of each leg's notional is paid from cash."""
    rate = fee_bps / 10_000
    qty = dict(held)
    cash = qty.get(CASH, ZERO)
    executions: list[Execution] = []
    partial = False
    for leg in sorted(legs, key=lambda leg: leg["side"] != "sell"):
        name, ordered = leg["instrument"], Decimal(leg["qty"])
        bid, ask = quotes[name]
        have = qty.get(name, ZERO)
        if leg["side"] == "sell":
            done, price = min(ordered, have), bid
            cash += done * price - done * price * rate
            qty[name] = have - done
        else:
            price = ask
            unit = price + price * rate
            done = ordered if ordered * unit <= cash else (cash / unit).quantize(ordered, rounding=ROUND_DOWN)
            cash -= done * unit
            qty[name] = have + done
        partial |= done < ordered
        if done > 0:
            executions.append(Execution(name, leg["side"], done, price))
    holdings = {e.instrument: qty[e.instrument] for e in executions}
    if executions:
        holdings[CASH] = cash.normalize()  # products carry many trailing zeros
    return Fill(executions, holdings, partial)


def plain(x: Decimal) -> str:
    """A decimal string without exponent or sign of zero, as the positions schema wants."""
    return format(x if x else abs(x), "f")


def position_records(account: str, holdings: Mapping[str, Decimal], last_seq: int, ts: int) -> list[Record]:
    """The positions record of a fill: ``holdings`` as one atomic change (instruments and cash under
    the account's next seq after ``last_seq``), as a broker's fill should arrive."""
    if not holdings:
        return []
    changes = [{"instrument": name, "qty": plain(q)} for name, q in holdings.items()]
    doc = {"account": account, "changes": changes, "seq": last_seq + 1, "ts": ts}
    return [(account.encode(), orjson.dumps(doc))]


def execution_report(order: Mapping[str, Any], done: Fill | None, ts: int, reason: str = "") -> Record:
    """The execution report (``executions`` topic) answering ``order``: each leg filled, or cut short
    (cancelled with what was filled: not enough held or cash), or, without ``done``, rejected."""
    executed = {e.instrument: e for e in done.executions} if done is not None else {}
    legs = []
    for leg in order["legs"]:
        name, ordered = leg["instrument"], Decimal(leg["qty"])
        e = executed.get(name)
        filled = e.qty if e is not None else ZERO
        state = "rejected" if done is None else ("filled" if filled >= ordered else "cancelled")
        out: dict[str, Any] = {
            "instrument": name,
            "state": state,
            "cum_qty": plain(filled),
            "leaves_qty": "0",
        }
        if e is not None:
            out["avg_price"] = plain(e.price)
        if state != "filled":
            out["reason"] = reason or "not enough held or cash"
        legs.append(out)
    doc = {"account": order["account"], "event_id": order["event_id"], "exec_id": f"{order['event_id']}:1"}
    return (order["account"].encode(), orjson.dumps({**doc, "legs": legs, "ts": ts}))


class Ledger:
    """The book of record (positions topic) and the latest bid/ask per instrument (quotes topic)."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.accounts: dict[str, Holdings] = {}
        self.quotes: dict[str, tuple[Any, Any]] = {}

    def on_quote(self, key: bytes | None, value: bytes | None) -> bool:
        """Take a quote record (the latest wins); an undecodable, invalid or crossed one is ignored."""
        doc = decode(self.contract, "quotes", key, value)
        if isinstance(doc, Rejected):
            return False
        self.quotes[doc["instrument"]] = (doc["bid"], doc["ask"])
        return True

    def on_position(self, key: bytes | None, value: bytes | None) -> bool:
        """Take a positions record; a replay or an echo of our own fill (seq <= known) or a bad one is
        ignored."""
        doc = decode(self.contract, "positions", key, value)
        if isinstance(doc, Rejected):
            return False
        account = self.accounts.setdefault(doc["account"], Holdings())
        if doc["seq"] <= account.seq:
            return False
        account.seq = doc["seq"]
        for change in doc.get("changes") or [doc]:
            account.qty[change["instrument"]] = Decimal(str(change["qty"]))
        return True

    def current(self, order: Mapping[str, Any]) -> bool:
        """Whether the account's positions are known up to the seq the order was computed on."""
        account = self.accounts.get(order["account"])
        return account is not None and account.seq >= order["inputs"]["positions_seq"]

    def prices(self, order: Mapping[str, Any]) -> dict[str, tuple[Decimal, Decimal]] | None:
        """Bid and ask of every leg's instrument, or None when one has no quote yet."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for leg in order["legs"]:
            quote = self.quotes.get(leg["instrument"])
            if quote is None:
                return None
            out[leg["instrument"]] = (Decimal(str(quote[0])), Decimal(str(quote[1])))
        return out

    def fill(
        self,
        order: Mapping[str, Any],
        prices: Mapping[str, tuple[Decimal, Decimal]],
        ts: int,
        fee_bps: Decimal,
    ) -> tuple[Fill, list[Record]]:
        """Fill ``order``, apply it to the account at once (its echo is then ignored) and return the
        positions records to publish."""
        account = self.accounts.setdefault(order["account"], Holdings())
        done = fill_legs(order["legs"], account.qty, prices, fee_bps)
        records = position_records(order["account"], done.holdings, account.seq, ts)
        account.qty.update(done.holdings)
        account.seq += len(records)
        return done, records


class Claims(Protocol):
    """Once-only claims on order ids."""

    async def claim(self, event_id: str) -> bool: ...

    async def release(self, event_id: str) -> None: ...


class MemoryClaims:
    """Claims in a set (tests, a single process)."""

    def __init__(self) -> None:
        self.done: set[str] = set()

    async def claim(self, event_id: str) -> bool:
        """True the first time ``event_id`` is claimed."""
        if event_id in self.done:
            return False
        self.done.add(event_id)
        return True

    async def release(self, event_id: str) -> None:
        """Forget a claim (the order could not be filled after all)."""
        self.done.discard(event_id)


class RedisClaims:
    """Claims as ``{prefix}fill:done:{event_id}`` keys (SET NX, one day), shared by every fill process."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = f"{prefix}fill:done:"

    async def claim(self, event_id: str) -> bool:
        """True the first time ``event_id`` is claimed."""
        return bool(await self.client.set(self.prefix + event_id, 1, nx=True, ex=CLAIM_TTL_S))

    async def release(self, event_id: str) -> None:
        """Forget a claim (the order could not be filled after all)."""
        await self.client.delete(self.prefix + event_id)


@dataclass
class FillStats:
    """Counts so far; a live view may read them while ``run`` goes on."""

    orders: int = 0
    filled: int = 0
    duplicates: int = 0
    unfillable: int = 0  # a leg's instrument had no quote yet
    invalid: int = 0
    behind: int = 0  # the account's positions did not arrive in time
    partial: int = 0  # a leg was cut: not enough held or not enough cash
    rejected: int = 0  # a leg's instrument is restricted (--reject)
    positions_published: int = 0
    quotes: int = 0
    positions: int = 0  # positions records applied (echoes and replays not counted)

    def summary(self) -> str:
        """One line for the console."""
        return (
            f"orders {self.orders}: filled {self.filled} (partial {self.partial}), rejected {self.rejected}, "
            f"duplicates {self.duplicates}, unfillable {self.unfillable}, invalid {self.invalid}, "
            f"behind {self.behind}; positions published {self.positions_published}"
        )


@dataclass
class Outbox:
    """What taking an order publishes: positions records and execution reports."""

    positions: list[Record] = field(default_factory=list)
    executions: list[Record] = field(default_factory=list)


class Desk:
    """Takes orders: validates, deduplicates and fills them against the ledger, rejecting those with a
    leg in a restricted instrument; answers each with an execution report."""

    def __init__(
        self,
        ledger: Ledger,
        claims: Claims,
        stats: FillStats,
        fee_bps: Decimal = ZERO,
        reject: frozenset[str] = frozenset(),
    ) -> None:
        self.ledger = ledger
        self.claims = claims
        self.stats = stats
        self.fee_bps = fee_bps
        self.reject = reject

    def parse(self, value: bytes | None) -> dict[str, Any] | None:
        """The order document, or None (counted invalid) when it breaks the contract."""
        self.stats.orders += 1
        try:
            doc = orjson.loads(value or b"")
            if not isinstance(doc, dict):
                raise SchemaViolation("not a JSON object")
            self.ledger.contract.validate("orders", doc)
        except (orjson.JSONDecodeError, SchemaViolation):
            self.stats.invalid += 1
            return None
        return doc

    async def take(self, order: Mapping[str, Any], ts: int) -> Outbox:
        """Fill a parsed order once; returns its positions record and execution report (nothing for a
        duplicate, an order on an account not yet current, or one with an unquoted instrument; only a
        report for a rejected one)."""
        if not self.ledger.current(order):
            self.stats.behind += 1
            return Outbox()
        if not await self.claims.claim(order["event_id"]):
            self.stats.duplicates += 1
            return Outbox()
        restricted = sorted({leg["instrument"] for leg in order["legs"]} & self.reject)
        if restricted:
            self.stats.rejected += 1
            return Outbox(
                executions=[execution_report(order, None, ts, f"restricted: {', '.join(restricted)}")]
            )
        prices = self.ledger.prices(order)
        if prices is None:
            await self.claims.release(order["event_id"])
            self.stats.unfillable += 1
            return Outbox()
        done, records = self.ledger.fill(order, prices, ts, self.fee_bps)
        self.stats.filled += 1
        self.stats.partial += done.partial
        self.stats.positions_published += len(records)
        return Outbox(records, [execution_report(order, done, ts)])


# ---- the process: Kafka in and out, Redis for the claims ----


async def run(
    settings: Settings,
    *,
    duration_s: float = 0.0,
    group: str = "fill",
    fee_bps: float = 0.0,
    quote_lookback: int = QUOTE_LOOKBACK,
    catchup_timeout_s: float = 10.0,
    stats: FillStats | None = None,
    reject: Iterable[str] = (),
) -> FillStats:
    """Fill the namespace's orders until ``duration_s`` (0: until cancelled). Positions are read from the
    beginning and quotes from ``quote_lookback`` records before the end of each partition (-1: all), both
    up to their end before the first order; orders are read in the consumer group ``group`` (prefixed with
    the namespace) and committed once their positions are acknowledged."""
    from streamproc.app.worker import prepare

    stats = stats if stats is not None else FillStats()
    partitions = await prepare(settings)
    t = settings.topics
    ledger = Ledger(Contract(settings.schemas_dir))
    client = redis_client(settings)
    claims = RedisClaims(client, settings.redis_prefix)
    desk = Desk(ledger, claims, stats, Decimal(str(fee_bps)), frozenset(reject))
    feed = kafka.consumer(settings)
    orders = AIOKafkaConsumer(
        t.orders,
        **kafka_args(settings),
        group_id=f"{settings.namespace}.{group}" if settings.namespace else group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**kafka_args(settings), linger_ms=5, acks="all", enable_idempotence=True)
    started: list[Any] = []
    try:
        for c in (feed, producer, orders):
            await c.start()
            started.append(c)
        end = await assign_tail(
            feed,
            {t.quotes: (partitions["quotes"], quote_lookback), t.positions: (partitions["positions"], -1)},
        )
        topics = (t.quotes, t.positions)
        while await behind(feed, end):
            await _read_feed(feed, ledger, stats, topics, 500)
        deadline = time.monotonic() + duration_s if duration_s else float("inf")
        while time.monotonic() < deadline:
            await _read_feed(feed, ledger, stats, topics, 0)
            batch = await orders.getmany(timeout_ms=200)
            out = Outbox()
            for rows in batch.values():
                for r in rows:
                    taken = await _order(desk, feed, stats, topics, r.value, catchup_timeout_s)
                    out.positions += taken.positions
                    out.executions += taken.executions
            if batch:
                futures = [await producer.send(t.positions, key=k, value=v) for k, v in out.positions]
                futures += [await producer.send(t.executions, key=k, value=v) for k, v in out.executions]
                await asyncio.gather(*futures)
                await orders.commit()
    finally:
        for c in reversed(started):
            await c.stop()
        await client.aclose()
    return stats


async def _read_feed(
    feed: AIOKafkaConsumer, ledger: Ledger, stats: FillStats, topics: tuple[str, str], timeout_ms: int
) -> None:
    """Apply one fetched batch of quotes and positions to the ledger."""
    quotes, _positions = topics
    for tp, rows in (await feed.getmany(timeout_ms=timeout_ms, max_records=5000)).items():
        if tp.topic == quotes:
            stats.quotes += sum(ledger.on_quote(r.key, r.value) for r in rows)
        else:
            stats.positions += sum(ledger.on_position(r.key, r.value) for r in rows)


async def _order(
    desk: Desk,
    feed: AIOKafkaConsumer,
    stats: FillStats,
    topics: tuple[str, str],
    value: bytes | None,
    catchup_timeout_s: float,
) -> Outbox:
    """One order record: parsed, its account's positions awaited up to its seq, then taken."""
    order = desk.parse(value)
    if order is None:
        return Outbox()
    deadline = time.monotonic() + catchup_timeout_s
    while not desk.ledger.current(order) and time.monotonic() < deadline:
        await _read_feed(feed, desk.ledger, stats, topics, 100)
    return await desk.take(order, now_ms())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `streamproc fill`."""
    parser.add_argument("--duration-s", type=float, default=0.0, help="seconds to run; 0: until Ctrl-C")
    parser.add_argument(
        "--group", default="fill", help="consumer group of the orders, prefixed with the namespace (fill)"
    )
    parser.add_argument("--fee-bps", type=float, default=0.0, help="fee per leg in bps of its notional (0)")
    parser.add_argument(
        "--quote-lookback",
        type=int,
        default=QUOTE_LOOKBACK,
        help=f"quotes read back per partition at start for current prices; -1: all ({QUOTE_LOOKBACK})",
    )
    parser.add_argument(
        "--reject",
        default="",
        help="comma-separated instruments that are restricted: orders with a leg in one are rejected",
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of `streamproc fill`: runs until the duration ends or Ctrl-C, then prints counts."""
    settings = command_settings("fill")
    stats = FillStats()
    print(f"filling orders of namespace {settings.namespace or '(none)'}")
    work = run(
        settings,
        duration_s=args.duration_s,
        group=args.group,
        fee_bps=args.fee_bps,
        quote_lookback=args.quote_lookback,
        stats=stats,
        reject=[i for i in args.reject.split(",") if i],
    )
    return run_command("fill", work, stats)
