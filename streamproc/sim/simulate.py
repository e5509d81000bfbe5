"""`streamproc simulate`: publishes a simulated market and its accounts to the namespace's topics, then
quotes at an offered rate (with optional faults) until the duration ends or it is cancelled."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamproc import calendars, kafka
from streamproc.clients import kafka_args
from streamproc.core.sessions import ALWAYS, CLOSED, Calendar
from streamproc.settings import Settings, SettingsError
from streamproc.sim.market import TRADING_DAY_S, Faults, Market, Record
from streamproc.wire.codec import Rejected, decode
from streamproc.wire.contract import Contract

TICK_S = 0.02
_MAX_BURST_S = 1.0  # after a stall, catch up at most this much of the rate at once
_RESUME_LOOKBACK = 20_000


@dataclass
class SimStats:
    """What the simulator has sent so far; a live view may read it while ``run`` goes on."""

    instruments: int = 0
    accounts: int = 0
    positions: int = 0
    targets: int = 0
    quotes: int = 0  # every quote record, opening ones included
    opening_quotes: int = 0
    resumed: int = 0  # instruments continued from the topic (without the book)
    quoting_since: float = 0.0  # time.monotonic() when quoting at the rate began
    market: Market | None = field(default=None, repr=False)
    open: bool = True  # the market's session is open now (always without a calendar)
    closes: int = 0  # sessions the market has closed since quoting began
    next_change_ms: int | None = None  # when it next opens or closes (None: never, or unknown)

    @property
    def faults(self) -> dict[str, int]:
        """Faults injected so far, by kind."""
        return dict(self.market.injected) if self.market else {}

    def quote_rate(self) -> float:
        """Quotes per second since quoting at the rate began."""
        elapsed = time.monotonic() - self.quoting_since if self.quoting_since else 0.0
        return (self.quotes - self.opening_quotes) / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        """One line for the console."""
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"sent {self.instruments} instruments, {self.accounts} accounts ({self.targets} targets, "
            f"{self.positions} positions), {self.quotes} quotes ({self.quote_rate():.0f}/s); faults: {faults}"
        )


def now_ms() -> int:
    """Epoch milliseconds now."""
    return int(time.time() * 1000)


async def run(
    settings: Settings,
    *,
    instruments: int = 50,
    accounts: int = 1000,
    rate: float = 500.0,
    duration_s: float = 0.0,
    seed: int = 1,
    faults: Faults | None = None,
    time_scale: float = 1.0,
    max_quote_age_s: float | None = None,
    book: bool = True,
    market: Market | None = None,
    stats: SimStats | None = None,
    tick_s: float = TICK_S,
    calendar: str | None = None,
) -> SimStats:
    """Publish reference data, opening quotes and (with ``book``) the accounts' positions and targets, then
    quote at ``rate`` per second for ``duration_s`` (0: until cancelled); everything sent is flushed before
    it returns or the cancellation goes on. Without ``book`` the quotes continue each instrument's seq and
    mid from the topic, so a restarted simulator is not taken for duplicates. Pass ``market`` to control
    it (e.g. switch ``market.faults``) while it runs; ``stats.market`` is set either way."""
    from streamproc.app.worker import prepare

    if rate <= 0:
        raise ValueError("rate must be > 0 quotes per second")
    stats = stats if stats is not None else SimStats()
    market = market or Market(
        instruments,
        seed,
        time_scale=time_scale,
        max_quote_age_s=max_quote_age_s,
        faults=faults,
        calendar=calendar,
    )
    stats.market = market
    partitions = await prepare(settings)
    t = settings.topics
    if not book:
        last = await latest_quotes(settings, partitions["quotes"])
        stats.resumed = market.resume(last)
    producer = AIOKafkaProducer(**kafka_args(settings), linger_ms=5, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        stats.instruments += await _publish(producer, t.instruments, market.reference_records())
        stats.opening_quotes = await _publish(producer, t.quotes, market.opening_quotes(now_ms()))
        stats.quotes += stats.opening_quotes
        if book:
            opening = market.book(accounts, now_ms=now_ms())
            stats.positions += await _publish(producer, t.positions, opening.positions)
            stats.targets += await _publish(producer, t.targets, opening.targets)
            stats.accounts = len(opening.models)
        await _quote(producer, t.quotes, market, stats, rate, duration_s, tick_s)
    finally:
        await producer.stop()  # flushes what was sent, also when cancelled
    return stats


async def _publish(producer: AIOKafkaProducer, topic: str, records: Iterable[Record]) -> int:
    """Send records in order and wait until the broker has them all; returns how many."""
    futures = [await producer.send(topic, key=key, value=value) for key, value in records]
    await asyncio.gather(*futures)
    return len(futures)


async def _quote(
    producer: AIOKafkaProducer,
    topic: str,
    market: Market,
    stats: SimStats,
    rate: float,
    duration_s: float,
    tick_s: float,
) -> None:
    """Token-bucket pacing: each tick steps the market by the real time elapsed and sends the quotes the
    rate allows; the previous tick's sends are awaited first (backpressure and delivery errors). With a
    calendar the market is quiet between its sessions (its prices still move: the open gaps)."""
    start = last = stats.quoting_since = time.monotonic()
    tokens = 0.0
    pending: list[asyncio.Future[Any]] = []
    session = _Session(market.calendar)
    while not duration_s or last - start < duration_s:
        now = time.monotonic()
        market.step(now - last)
        tokens = min(tokens + rate * (now - last), rate * _MAX_BURST_S)
        last = now
        if pending:
            await asyncio.gather(*pending)
        stamp = now_ms()
        session.at(stamp, stats)
        if not stats.open:
            tokens = 0.0
        count = int(tokens)
        tokens -= count
        pending = [await producer.send(topic, key=k, value=v) for k, v in market.quotes(count, stamp)]
        stats.quotes += len(pending)
        await asyncio.sleep(max(0.0, now + tick_s - time.monotonic()))
    await asyncio.gather(*pending)


class _Session:
    """The simulated market's calendar (reloaded before its loaded sessions run out): open or not."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.cal: Calendar | None = None

    def at(self, now: int, stats: SimStats) -> None:
        if self.name is None:
            return
        cal = self.cal
        if cal is None or int(cal.closes[-1]) - now < (int(cal.closes[-1]) - int(cal.opens[0])) // 4:
            cal = self.cal = calendars.load(self.name, now)
        is_open = cal.open_since(now) != CLOSED
        if stats.open and not is_open:
            stats.closes += 1
        stats.open = is_open
        stats.next_change_ms = cal.next_close(now) if is_open else cal.next_open(now)


async def assign_tail(
    consumer: AIOKafkaConsumer, topics: Mapping[str, tuple[int, int]]
) -> dict[TopicPartition, int]:
    """Assign every partition of each topic (name -> partitions, lookback) from ``lookback`` records
    before its end (-1: the beginning); returns the end offsets at assignment."""
    tps = [TopicPartition(topic, p) for topic, (n, _) in topics.items() for p in range(n)]
    consumer.assign(tps)
    begin = await consumer.beginning_offsets(tps)
    end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    for tp in tps:
        lookback = topics[tp.topic][1]
        consumer.seek(tp, begin[tp] if lookback < 0 else max(begin[tp], end[tp] - lookback))
    return end


async def behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    """Whether ``consumer`` has yet to reach ``end`` on some partition."""
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return True
    return False


async def latest_quotes(
    settings: Settings, partitions: int, lookback: int = _RESUME_LOOKBACK
) -> dict[str, tuple[int, float | None]]:
    """Per instrument, the last seq published (a crossed quote's too) and the mid of the last good quote,
    from the tail of the quotes topic."""
    contract = Contract(settings.schemas_dir)
    tps = [TopicPartition(settings.topics.quotes, p) for p in range(partitions)]
    consumer = kafka.consumer(settings)
    await consumer.start()
    try:
        end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        start = {tp: max(0, end[tp] - lookback) for tp in tps} if lookback >= 0 else {}
        records, _ = await kafka.read_to_end(consumer, tps, start)
    finally:
        await consumer.stop()
    last: dict[str, tuple[int, float | None]] = {}
    for r in records:  # in offset order per partition, and an instrument's quotes share one partition
        doc = decode(contract, "quotes", r.key, r.value)
        if isinstance(doc, Rejected):
            if doc.doc is not None:  # crossed: its seq counts, its prices do not
                name = doc.doc["instrument"]
                last[name] = (doc.doc["seq"], last.get(name, (0, None))[1])
            continue
        last[doc["instrument"]] = (doc["seq"], (float(doc["bid"]) + float(doc["ask"])) / 2)
    return last


def calendar_of(args: argparse.Namespace, now_s: int) -> str | None:
    """The market's calendar from ``--calendar`` (with ``--session-s``/``--closed-s``: a simulated clock's,
    its first session opening now); SystemExit with what to fix when unusable."""
    if not args.calendar:
        if args.session_s or args.closed_s:
            raise SystemExit("streamproc: --session-s and --closed-s need --calendar (e.g. --calendar XNYS)")
        return None
    if args.calendar == ALWAYS:
        return None
    try:
        if args.session_s or args.closed_s:
            if not (args.session_s > 0 and args.closed_s > 0):
                raise SystemExit("streamproc: give both --session-s and --closed-s, each > 0")
            return calendars.simulated(args.calendar, args.session_s, args.closed_s, now_s)
        return calendars.canonical(args.calendar)
    except calendars.UnknownCalendar as exc:
        raise SystemExit(f"streamproc: {exc}") from None


def add_calendar_arguments(parser: argparse.ArgumentParser) -> None:
    """``--calendar``, ``--session-s``, ``--closed-s`` (the simulator's and the demo's)."""
    parser.add_argument(
        "--calendar",
        default=None,
        help="the market's trading calendar (XNYS, XLON, ...): quiet between sessions (default: 24/7)",
    )
    parser.add_argument(
        "--session-s",
        type=float,
        default=0.0,
        help="with --calendar: each session lasts this many seconds (a simulated clock; 0: real time)",
    )
    parser.add_argument(
        "--closed-s",
        type=float,
        default=0.0,
        help="with --session-s: each night, weekend or holiday lasts this",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `streamproc simulate`."""
    add_calendar_arguments(parser)
    parser.add_argument("--instruments", type=int, default=50, help="instruments in the market (50)")
    parser.add_argument(
        "--accounts", type=int, default=1000, help="accounts opened on model portfolios (1000)"
    )
    parser.add_argument("--rate", type=float, default=500.0, help="quotes per second offered (500)")
    parser.add_argument("--duration-s", type=float, default=0.0, help="seconds of quoting; 0: until Ctrl-C")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same market and accounts (1)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help=f"trading seconds per real second (1; {TRADING_DAY_S:.0f}: a trading day per second)",
    )
    parser.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="INSTRUMENT",
        help="an instrument whose quotes stop (repeatable)",
    )
    parser.add_argument("--stop-after-s", type=float, default=0.0, help="when the --stop ones go quiet (0)")
    parser.add_argument("--skip-seq", type=float, default=0.0, help="probability a quote's seq jumps ahead")
    parser.add_argument("--crossed", type=float, default=0.0, help="probability a quote is crossed")
    parser.add_argument("--outlier", type=float, default=0.0, help="probability of a one-off ±40%% mid")
    parser.add_argument("--malformed", type=float, default=0.0, help="probability a record is garbage")
    parser.add_argument(
        "--no-book",
        dest="book",
        action="store_false",
        help="quotes only (the accounts were published); seqs and mids continue from the topic",
    )
    parser.add_argument(
        "--max-quote-age-s",
        type=float,
        default=None,
        help="every instrument's max_quote_age_s (default: 30, microcaps 60)",
    )


def faults_of(args: argparse.Namespace, now: int) -> Faults:
    """The faults the options ask for (``--stop`` ones go quiet ``--stop-after-s`` after ``now``)."""
    return Faults(
        stop=frozenset(args.stop),
        stop_from_ms=now + int(args.stop_after_s * 1000) if args.stop_after_s else 0,
        skip_seq=args.skip_seq,
        crossed=args.crossed,
        outlier=args.outlier,
        malformed=args.malformed,
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of `streamproc simulate`: runs until the duration ends or Ctrl-C, then prints counts."""
    settings = command_settings("simulate")
    try:
        faults = faults_of(args, now_ms())
    except ValueError as exc:
        raise SystemExit(f"streamproc simulate: {exc}") from None
    stats = SimStats()
    calendar = calendar_of(args, int(time.time()))
    print(
        f"simulating {args.instruments} instruments, {args.accounts if args.book else 'no new'} accounts, "
        f"{args.rate:g} quotes/s into namespace {settings.namespace or '(none)'}"
        + (f", calendar {calendar}" if calendar else "")
    )
    work = run(
        settings,
        instruments=args.instruments,
        accounts=args.accounts,
        rate=args.rate,
        duration_s=args.duration_s,
        seed=args.seed,
        faults=faults,
        time_scale=args.time_scale,
        max_quote_age_s=args.max_quote_age_s,
        book=args.book,
        stats=stats,
        calendar=calendar,
    )
    return run_command("simulate", work, stats)


class _Summary(Protocol):
    def summary(self) -> str: ...


def command_settings(name: str) -> Settings:
    """The settings from the environment for command ``name`` (a bad one exits with the message)."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries right after topic creation are expected
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"streamproc {name}: {exc}") from None


def run_command(name: str, work: Coroutine[Any, Any, Any], stats: _Summary, every_s: float = 10.0) -> int:
    """Run ``work`` with ``stats.summary()`` printed every ``every_s`` and at the end; Ctrl-C or SIGTERM
    stops it cleanly (its task is cancelled and flushes)."""

    async def with_progress() -> None:
        task = asyncio.ensure_future(work)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            while not task.done():
                await asyncio.wait([task], timeout=every_s)
                if not task.done():
                    print(stats.summary(), flush=True)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled():
            task.result()

    try:
        asyncio.run(with_progress())
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        raise SystemExit(f"streamproc {name}: {exc}") from None
    print(stats.summary())
    return 0
