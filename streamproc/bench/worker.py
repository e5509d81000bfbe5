"""`streamproc bench worker`: one real worker's ingest rates on this machine, next to a bare aiokafka
consumer draining the same quotes (the ceiling), measured in one run against the local stack."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamproc import kafka
from streamproc.app.topics import ensure_topics, remove_namespace
from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings
from streamproc.sim import messages
from streamproc.state.keys import Keys
from streamproc.worker_process import WorkerProcess


async def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> dict[int, tuple[bytes, int]]:
    """Send records; returns partition -> (key, index) of the last record sent to each partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks=1)
    await producer.start()
    last: dict[tuple[str, int], tuple[bytes, int]] = {}
    try:
        futures = [await producer.send(t, key=k, value=v) for t, k, v in records]
        for i, fut in enumerate(futures):
            meta = await fut
            last[(meta.topic, meta.partition)] = (records[i][1], i)
    finally:
        await producer.stop()
    return {p: v for (_t, p), v in last.items()}


async def _drain(settings: Settings, topic: str, partitions: int, total: int) -> float:
    """Seconds a bare consumer takes to fetch ``total`` records of ``topic`` (no decoding). Its loop is
    the measurement, the ceiling of the worker's ingest: it only counts (``kafka.read_to_end`` would keep
    every record and ask for positions after each batch)."""
    consumer = kafka.consumer(settings, max_poll_records=2000)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        seen, started = 0, time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            seen += sum(len(v) for v in batch.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def _wait_quotes(client: aioredis.Redis, key: str, end: dict[int, int], worker: WorkerProcess) -> None:
    """Until the stored quote offsets of every partition reach ``end``."""
    while True:
        worker.check_alive()
        done = {int(k): int(v) for k, v in (await client.hgetall(key)).items()}
        if all(done.get(p, 0) >= o for p, o in end.items() if o):
            return
        await asyncio.sleep(0.005)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    s = Settings.from_env(None, namespace=f"bench-{int(time.time())}", partitions=args.partitions)
    t, keys = s.topics, Keys(s.redis_prefix)
    admin = AIOKafkaAdminClient(**kafka_args(s))
    await admin.start()
    client = redis_client(s)
    worker: WorkerProcess | None = None
    try:
        await ensure_topics(s, admin)
        rng = np.random.default_rng(7)
        instruments = [f"I{i:05d}" for i in range(args.instruments)]
        now = int(time.time() * 1000)
        print(
            f"producing {args.accounts} accounts x {args.holdings} holdings "
            f"over {args.instruments} instruments ..."
        )
        setup: list[tuple[str, bytes, bytes]] = []
        for i in instruments:
            setup.append((t.quotes, *messages.quote(i, 100.0, 0, ts=now)))  # 99.99 / 100.01
        for a in range(args.accounts):
            held = rng.choice(args.instruments, size=args.holdings, replace=False)
            weights = {instruments[h]: round(0.95 / args.holdings, 6) for h in held}
            setup.append((t.targets, *messages.targets(f"A{a:06d}", weights)))
        await _produce(s.kafka_bootstrap_servers, setup)

        seq = np.zeros(args.accounts, dtype=np.int64)
        positions: list[tuple[str, bytes, bytes]] = []
        seqs: list[int] = []  # of each record in ``positions``
        for n in range(args.positions):
            a = int(rng.integers(args.accounts))
            seq[a] += 1
            seqs.append(int(seq[a]))
            instrument = instruments[int(rng.integers(args.instruments))]
            qty = float(rng.integers(1, 500))
            positions.append(
                (t.positions, *messages.position(f"A{a:06d}", instrument, qty, seqs[-1], now + n))
            )
        last_pos = await _produce(s.kafka_bootstrap_servers, positions)

        print(f"worker: applying {args.positions} position updates (Redis persistence included) ...")
        env = {
            **os.environ,
            "STREAMPROC_NAMESPACE": s.namespace,
            "STREAMPROC_PARTITIONS": str(args.partitions),
            # the random book breaches everywhere: a breach storm would hold orders and change the work
            "STREAMPROC_STORM_MIN_ACCOUNTS": str(10 * args.accounts),
        }
        env["STREAMPROC_LOG_LEVEL"] = "warning"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        worker = WorkerProcess(env, args.out.parent / "bench-worker.log").start()
        print(f"worker log: {worker.log_path}")
        first: float | None = None
        pending = {p: (k.decode(), seqs[i]) for p, (k, i) in last_pos.items()}
        while pending:
            worker.check_alive()
            for p, (acct, want) in list(pending.items()):
                got = await client.hget(keys.account(acct), "seq")
                if got is not None and first is None:
                    first = time.perf_counter()
                if got is not None and int(got) >= want:
                    del pending[p]
            await asyncio.sleep(0.005)
        assert first is not None
        positions_s = time.perf_counter() - first

        # Pause the worker while the quotes are produced, so it then faces them as a backlog with its
        # evaluator running: its rate is measured, not the producer's.
        worker.pause()
        print(f"worker: ingesting {args.quotes} quotes with evaluation ...")
        quotes = []
        qseq = np.zeros(args.instruments, dtype=np.int64)
        for _ in range(args.quotes):
            k = int(rng.integers(args.instruments))
            qseq[k] += 1
            mid = 100.0 * (1 + 0.001 * float(rng.standard_normal()))
            quotes.append((t.quotes, *messages.quote(instruments[k], mid, int(qseq[k]))))
        await _produce(s.kafka_bootstrap_servers, quotes)
        end = await kafka.end_offsets(s, [TopicPartition(t.quotes, p) for p in range(args.partitions)])
        key = keys.quote_offsets
        before = sum(int(v) for v in (await client.hgetall(key)).values())
        started = time.perf_counter()
        worker.resume()
        await _wait_quotes(client, key, {tp.partition: o for tp, o in end.items()}, worker)
        quotes_s = time.perf_counter() - started
        quotes_n = sum(end.values()) - before
        worker.stop(timeout_s=30)

        print("bare aiokafka consumer: draining the same quotes topic ...")
        total = sum(end.values())
        drain_s = await _drain(s, t.quotes, args.partitions, total)
        out = {
            "accounts": args.accounts,
            "holdings": args.holdings,
            "instruments": args.instruments,
            "positions": args.positions,
            "positions_per_s": round(args.positions / positions_s),
            "quotes_measured": quotes_n,
            "worker_quotes_per_s": round(quotes_n / quotes_s),
            "bare_consumer_quotes_per_s": round(total / drain_s),
        }
        out["worker_vs_bare"] = round(out["worker_quotes_per_s"] / out["bare_consumer_quotes_per_s"], 3)
        return out
    finally:
        if worker is not None:
            worker.stop(timeout_s=30)
        await client.aclose()
        await admin.close()
        await remove_namespace(s)


def run(args: argparse.Namespace) -> int:
    """Entry point of `streamproc bench worker`."""
    figures = asyncio.run(_run(args))
    print()
    print(f"{'measure':<44}{'value':>14}")
    print(f"{'position updates applied + persisted / s':<44}{figures['positions_per_s']:>14,}")
    print(f"{'quotes ingested + evaluated / s (worker)':<44}{figures['worker_quotes_per_s']:>14,}")
    print(f"{'quotes fetched / s (bare aiokafka consumer)':<44}{figures['bare_consumer_quotes_per_s']:>14,}")
    print(f"{'worker / bare':<44}{figures['worker_vs_bare']:>14.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"written to {args.out}")
    return 0
