"""`streamproc bench e2e`: the whole path on this machine, in one run against the local stack. A fixed data
set (100,000 accounts x 10 holdings over 2,000 instruments by default) is produced into real Kafka, then
a real worker process is measured: (d) position updates/s with Redis persistence, (e) restart: state
loaded from Redis, and peak memory, (b) quote ingest with evaluation next to (a) a bare aiokafka consumer
draining the same topic, and (c) quote-to-order latency at a fixed offered quote rate."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streamproc import kafka
from streamproc.app.topics import ensure_topics, remove_namespace
from streamproc.bench.worker import _drain
from streamproc.clients import kafka_args, redis_client
from streamproc.kafka import partition_of
from streamproc.settings import Settings
from streamproc.sim.messages import quote
from streamproc.state.keys import Keys
from streamproc.worker_process import WorkerProcess

console = Console()
# a +45% jump takes a 9.5% holding to 13.2%: out of a 3-point band (and below the 0.5 outlier threshold)
_JUMP = 1.45
_TIERS = (("large", 0.0001, 0.7), ("bond", 0.01, 0.2), ("micro", 1.0, 0.1))  # tier, lot, share


@dataclass
class DataSet:
    """The fixed book: instrument names, tiers, opening mids, accounts' holdings (instrument indices)."""

    instruments: list[str]
    tiers: list[str]
    lots: list[float]
    mids: npt.NDArray[np.float64]
    holdings: npt.NDArray[np.int64]  # accounts x holdings
    seq: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def build(accounts: int, holdings: int, instruments: int, seed: int) -> DataSet:
    """A deterministic book: every account holds ``holdings`` distinct instruments on equal targets."""
    rng = np.random.default_rng(seed)
    names, tiers, lots = [], [], []
    bounds = np.cumsum([share for _tier, _lot, share in _TIERS])
    for i in range(instruments):
        tier, lot, _share = _TIERS[min(int(np.searchsorted(bounds, i / instruments, side="right")), 2)]
        names.append(f"{tier[:2].upper()}{i:05d}")
        tiers.append(tier)
        lots.append(lot)
    mids = np.round(rng.uniform(20.0, 200.0, instruments), 2)
    # distinct instruments per account without an accounts x instruments matrix: a random start and a
    # random stride coprime with the instrument count
    strides = np.array([k for k in range(1, instruments) if math.gcd(k, instruments) == 1])
    start = rng.integers(instruments, size=(accounts, 1))
    stride = rng.choice(strides, size=(accounts, 1))
    held = ((start + stride * np.arange(holdings)) % instruments).astype(np.int64, copy=False)
    return DataSet(names, tiers, lots, mids, held, np.ones(instruments, dtype=np.int64))


def book_records(data: DataSet, s: Settings, capital: float = 100_000.0) -> list[tuple[str, bytes, bytes]]:
    """Reference data, opening quotes, every account's targets and opening positions (on target)."""
    t, now = s.topics, int(time.time() * 1000)
    out: list[tuple[str, bytes, bytes]] = []
    for name, tier, lot in zip(data.instruments, data.tiers, data.lots, strict=True):
        out.append(
            (t.instruments, name.encode(), orjson.dumps({"instrument": name, "tier": tier, "lot": lot}))
        )
    for i, name in enumerate(data.instruments):
        out.append((t.quotes, *quote(name, float(data.mids[i]), 1, ts=now)))
    k = data.holdings.shape[1]
    weight = round(0.95 / k, 6)
    for a, row in enumerate(data.holdings):
        acct = f"ACC-{a:07d}"
        key = acct.encode()
        weights = {data.instruments[i]: weight for i in row}
        tdoc = {"account": acct, "version": 1, "weights": weights, "band": {"abs": 0.03}, "ts": now}
        out.append((t.targets, key, orjson.dumps(tdoc)))
        seq = 0
        for i in row:
            seq += 1
            qty = np.floor(capital * weight / data.mids[i] / data.lots[i]) * data.lots[i]
            doc = {"account": acct, "instrument": data.instruments[i], "qty": round(float(qty), 4)}
            out.append((t.positions, key, orjson.dumps({**doc, "seq": seq, "ts": now})))
        cash = {"account": acct, "instrument": "CASH", "qty": capital * 0.05, "seq": seq + 1, "ts": now}
        out.append((t.positions, key, orjson.dumps(cash)))
    return out


def walk(
    data: DataSet, n: int, rng: np.random.Generator, ts: int, sigma: float = 2e-4
) -> list[tuple[bytes, bytes]]:
    """``n`` quote records (key, value) of a small random walk over random instruments (no band breaches)."""
    picks = rng.integers(len(data.instruments), size=n)
    steps = np.exp(sigma * rng.standard_normal(n))
    out = []
    for i, step in zip(picks.tolist(), steps.tolist(), strict=True):
        data.mids[i] *= step
        data.seq[i] += 1
        out.append(quote(data.instruments[i], float(data.mids[i]), int(data.seq[i]), ts=ts))
    return out


# ---- processes and probes -----------------------------------------------------------------------


async def _until(
    progress: Progress, label: str, total: int, done: Callable[[], Awaitable[int]], check: Callable[[], None]
) -> None:
    """Show a bar until ``done()`` reaches ``total``."""
    task = progress.add_task(label, total=total)
    while True:
        check()
        n = await done()
        progress.update(task, completed=min(n, total))
        if n >= total:
            return
        await asyncio.sleep(0.1)


async def _produce(
    bootstrap: str, records: list[tuple[str, bytes, bytes]], progress: Progress, label: str
) -> None:
    """Send records as fast as the producer goes, with a bar."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks=1)
    await producer.start()
    task = progress.add_task(label, total=len(records))
    try:
        futures = []
        for n, (topic, key, value) in enumerate(records, 1):
            futures.append(await producer.send(topic, key=key, value=value))
            if n % 20_000 == 0:
                await asyncio.gather(*futures)  # bounded memory: the futures hold their records
                futures.clear()
                progress.update(task, completed=n)
        await asyncio.gather(*futures)
        progress.update(task, completed=len(records))
    finally:
        await producer.stop()


async def _quote_offsets(client: aioredis.Redis, s: Settings) -> int:
    return sum(int(v) for v in (await client.hgetall(Keys(s.redis_prefix).quote_offsets)).values())


# ---- the phases -------------------------------------------------------------------------------


async def _account_phase(
    s: Settings,
    w: WorkerProcess,
    topic: str,
    records: list[tuple[str, bytes, bytes]],
    field_: str,
    want: bytes | None,
    progress: Progress,
) -> dict[str, Any]:
    """Produce ``records`` of one account topic while the worker runs; the worker's rate is measured from
    its first consumed record until the last account of every partition has ``field_`` (= ``want``) in
    Redis, i.e. applied and persisted."""
    t0 = w.samples().get("streamproc_messages_consumed_total", {}).get((("topic", topic),), 0.0)
    first: float | None = None

    async def consumed() -> int:
        nonlocal first
        n = w.samples().get("streamproc_messages_consumed_total", {}).get((("topic", topic),), 0.0) - t0
        if n and first is None:
            first = time.perf_counter()
        return int(n)

    last: dict[int, str] = {}
    for _topic, key, _value in records:
        last[partition_of(key.decode(), s.partitions)] = key.decode()
    # paused while its input is produced: then its rate is measured, not the producer's
    while not w.ready():
        w.check_alive()
        await asyncio.sleep(0.1)
    w.pause()
    try:
        await _produce(s.kafka_bootstrap_servers, records, progress, f"producing {topic}")
    finally:
        w.resume()
    await _until(progress, f"(d) worker applying {topic}", len(records), consumed, w.check_alive)
    client = redis_client(s)
    try:
        keys = Keys(s.redis_prefix)
        for acct in last.values():
            while (got := await client.hget(keys.account(acct), field_)) is None or (
                want is not None and got != want
            ):
                w.check_alive()
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()
    assert first is not None
    elapsed = time.perf_counter() - first
    return {"records": len(records), "seconds": round(elapsed, 2), "per_s": round(len(records) / elapsed)}


async def _restart_phase(w: WorkerProcess, partitions: int, progress: Progress, out: dict[str, Any]) -> None:
    """(e): a fresh worker loads the book from Redis; time to load and time to ready."""
    task = progress.add_task("(e) restart: loading state from Redis", total=None)
    while not w.ready():
        w.check_alive()
        await asyncio.sleep(0.05)
    ready_s = time.perf_counter() - w.started
    while len(loads := w.log_events("partitions loaded")) < partitions:  # the log may lag behind /ready
        await asyncio.sleep(0.05)
    # steady state before (b): the first pass after a load evaluates (and stores the drift of) every account
    while w.metric("streamproc_evaluations_total") < sum(int(e["accounts"]) for e in loads):
        w.check_alive()
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)
    progress.update(task, total=1, completed=1)
    out["restart"] = {
        "accounts_loaded": sum(int(e["accounts"]) for e in loads),
        "load_s_max_partition": max(float(e["seconds"]) for e in loads),
        "ready_s_from_process_start": round(ready_s, 2),
    }


async def _ingest_phase(
    s: Settings, w: WorkerProcess, data: DataSet, n: int, progress: Progress, out: dict[str, Any]
) -> int:
    """(b): quotes produced while the worker is paused, then ingested as a backlog with evaluation."""
    w.pause()
    rng = np.random.default_rng(11)
    values = walk(data, n, rng, int(time.time() * 1000))
    t = s.topics
    records = [(t.quotes, key, value) for key, value in values]
    await _produce(s.kafka_bootstrap_servers, records, progress, "(b) producing the quote backlog")
    client = redis_client(s)
    try:
        tps = [TopicPartition(t.quotes, p) for p in range(s.partitions)]
        end = sum((await kafka.end_offsets(s, tps)).values())
        before = await _quote_offsets(client, s)
        evals_before = w.metric("streamproc_evaluations_total")
        started = time.perf_counter()
        w.resume()

        async def done() -> int:
            return await _quote_offsets(client, s) - before

        await _until(progress, "(b) worker ingesting quotes", end - before, done, w.check_alive)
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    out["ingest"] = {
        "quotes": end - before,
        "seconds": round(elapsed, 2),
        "per_s": round((end - before) / elapsed),
        "evaluations": int(w.metric("streamproc_evaluations_total") - evals_before),
    }
    return end


async def _latency_phase(
    s: Settings, data: DataSet, rate: int, seconds: float, progress: Progress, out: dict[str, Any]
) -> None:
    """(c): quotes offered at ``rate``/s for ``seconds``; once a second one instrument jumps 45%,
    breaching its holders (+45%); latency = order received by a consumer minus the quote's ts (``as_of``)."""
    t = s.topics
    rng = np.random.default_rng(13)
    consumer = kafka.consumer(s, fetch_max_wait_ms=5)
    await consumer.start()
    tps = [TopicPartition(t.orders, p) for p in range(s.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    latencies: list[float] = []
    waits: list[float] = []  # the order's pass started (its ts) minus the quote's ts

    async def collect() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=20)
            now = time.time() * 1000
            for records in batch.values():
                for r in records:
                    doc = orjson.loads(r.value)
                    latencies.append(now - doc["as_of"])
                    waits.append(doc["ts"] - doc["as_of"])

    collector = asyncio.create_task(collect())
    producer = AIOKafkaProducer(**kafka_args(s), linger_ms=1, acks=1)
    await producer.start()
    task = progress.add_task(f"(c) offering {rate:,} quotes/s", total=int(rate * seconds))
    tick, sent, jumps = 0.01, 0, 0
    started = time.perf_counter()
    try:
        while sent < rate * seconds:
            elapsed = time.perf_counter() - started
            due = int(rate * min(elapsed + tick, seconds)) - sent
            now = int(time.time() * 1000)
            jump = int(elapsed) >= jumps and due > 0  # one jump per second, inside this tick's quota
            values = walk(data, max(due - jump, 0), rng, now)
            if jump:
                i = int(rng.integers(len(data.instruments)))
                data.mids[i] *= _JUMP
                data.seq[i] += 1
                values.append(quote(data.instruments[i], float(data.mids[i]), int(data.seq[i]), ts=now))
                jumps += 1
            for key, value in values:
                await producer.send(t.quotes, key=key, value=value)
            sent += len(values)
            progress.update(task, completed=sent)
            await asyncio.sleep(max(0.0, started + (sent / rate) - time.perf_counter()))
        offered_s = time.perf_counter() - started
        await producer.flush()
        quiet = time.monotonic() + 3.0  # collect the orders of the last jump
        while time.monotonic() < quiet:
            await asyncio.sleep(0.1)
    finally:
        collector.cancel()
        await producer.stop()
        await consumer.stop()
    lat = np.array(latencies)
    out["latency"] = {
        "offered_quotes_per_s": rate,
        "achieved_quotes_per_s": round(sent / offered_s),
        "seconds": round(offered_s, 1),
        "jumps": jumps,
        "orders": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "max_ms": round(float(lat.max()), 1) if lat.size else None,
        # where it goes: waiting for the evaluation pass, then the pass, publication and delivery
        "to_pass_start_p50_ms": round(float(np.percentile(waits, 50)), 1) if waits else None,
        "pass_to_consumer_p50_ms": (
            round(float(np.percentile(lat - np.array(waits), 50)), 1) if waits else None
        ),
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    s = Settings.from_env(None, namespace=f"e2e-{int(time.time())}", partitions=args.partitions)
    admin = AIOKafkaAdminClient(**kafka_args(s))
    await admin.start()
    client = redis_client(s)
    log_dir = args.out.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "STREAMPROC_NAMESPACE": s.namespace,
        "STREAMPROC_PARTITIONS": str(args.partitions),
        "STREAMPROC_LOG_LEVEL": "info",
        "STREAMPROC_LOG_FORMAT": "json",
        "STREAMPROC_WEB_PORT": str(args.web_port),
        # the jumps of (c) are 45% moves: real ones, not outliers to hold; one jump reaches ~0.5% of the
        # accounts at once, which must not trip the breach-storm hold
        "STREAMPROC_OUTLIER_MOVE": "0.5",
        "STREAMPROC_STORM_MIN_ACCOUNTS": str(10 * args.accounts),
        # no live feed while the book loads: its opening quotes must not go stale before (b) and (c)
        "STREAMPROC_QUOTE_MAX_AGE_S": "3600",
        # it is paused (SIGSTOP) while its input is produced: the group must not evict it meanwhile
        "STREAMPROC_SESSION_TIMEOUT_S": "120",
    }
    out: dict[str, Any] = {
        "accounts": args.accounts,
        "holdings": args.holdings,
        "instruments": args.instruments,
        "partitions": args.partitions,
        "machine": {"cpus": os.cpu_count()},
    }
    workers: list[WorkerProcess] = []
    try:
        await ensure_topics(s, admin)
        with Progress(
            TextColumn("{task.description:<42}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            data = build(args.accounts, args.holdings, args.instruments, seed=7)
            records = book_records(data, s)
            t = s.topics
            market = [r for r in records if r[0] in (t.instruments, t.quotes)]
            await _produce(s.kafka_bootstrap_servers, market, progress, "producing instruments and quotes")
            w = WorkerProcess(env, log_dir / "e2e-worker-1.log").start()
            workers.append(w)
            # positions first, then targets: an account is managed (evaluated) once its targets arrive,
            # and by then all of its holdings are in (a cold start from a backlog would otherwise evaluate
            # accounts whose later positions were not read yet)
            positions = [r for r in records if r[0] == t.positions]
            want = str(args.holdings + 1).encode()
            out["positions"] = await _account_phase(s, w, "positions", positions, "seq", want, progress)
            del positions
            targets = [r for r in records if r[0] == t.targets]
            out["targets"] = await _account_phase(s, w, "targets", targets, "targets", None, progress)
            del targets, records
            out["memory"] = {"worker_after_book_mib": round(w.peak_rss_mib())}
            w.stop()

            w = WorkerProcess(env, log_dir / "e2e-worker-2.log").start()
            workers.append(w)
            await _restart_phase(w, args.partitions, progress, out)
            end = await _ingest_phase(s, w, data, args.quotes, progress, out)

            task = progress.add_task("(a) bare aiokafka consumer draining", total=None)
            drain_s = await _drain(s, s.topics.quotes, args.partitions, end)
            progress.update(task, total=1, completed=1)
            out["bare_consumer"] = {
                "quotes": end,
                "seconds": round(drain_s, 2),
                "per_s": round(end / drain_s),
            }

            await _latency_phase(s, data, args.rate, args.latency_s, progress, out)
            out["memory"]["worker_peak_mib"] = round(w.peak_rss_mib())
            w.stop()
        out["ingest_vs_bare"] = round(out["ingest"]["per_s"] / out["bare_consumer"]["per_s"], 3)
        return out
    finally:
        for w in workers:
            w.stop()
        await client.aclose()
        await admin.close()
        await remove_namespace(s)


def _table(f: dict[str, Any]) -> Table:
    lat = f["latency"]
    table = Table(
        title=f"streamproc bench e2e: {f['accounts']:,} accounts x {f['holdings']} holdings, "
        f"{f['instruments']:,} instruments, {f['partitions']} partitions, 1 worker"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    rows = [
        ("(a) bare aiokafka consumer, quotes/s", f"{f['bare_consumer']['per_s']:,}", "ceiling"),
        ("(b) worker ingest + evaluation, quotes/s", f"{f['ingest']['per_s']:,}", ""),
        ("    (b) / (a)", f"{f['ingest_vs_bare']:.2f}", ">= 0.50"),
        (f"(c) quote-to-order at {lat['achieved_quotes_per_s']:,} quotes/s: p50 ms", f"{lat['p50_ms']}", ""),
        ("    p99 ms", f"{lat['p99_ms']}", "<= 100"),
        ("    max ms", f"{lat['max_ms']}", ""),
        ("    orders measured", f"{lat['orders']:,}", ""),
        ("(d) positions + targets applied and persisted/s", f"{f['positions']['per_s']:,}", ""),
        (
            "(e) restart: state load, s (slowest partition)",
            f"{f['restart']['load_s_max_partition']:.2f}",
            "<= 5",
        ),
        ("    accounts loaded", f"{f['restart']['accounts_loaded']:,}", ""),
        ("    process start to ready, s", f"{f['restart']['ready_s_from_process_start']:.2f}", ""),
        ("(e) worker peak memory, MiB", f"{f['memory']['worker_peak_mib']:,}", ""),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def run(args: argparse.Namespace) -> int:
    """Entry point of `streamproc bench e2e`."""
    figures = asyncio.run(_run(args))
    console.print(_table(figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    console.print(f"written to {args.out}; worker logs beside it")
    return 0
