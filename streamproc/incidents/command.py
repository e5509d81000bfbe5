"""`streamproc incident report`: reads the alerts, orders and dead-letter topics over a time range and the
workers' account state in Redis, and prints one report per alert episode (Markdown, or JSON)."""

from __future__ import annotations

import asyncio
import datetime
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import redis.exceptions
from aiokafka import TopicPartition

from streamproc import kafka
from streamproc.clients import redis_client
from streamproc.incidents.episodes import AlertRecord, Episode, episodes, report
from streamproc.incidents.render import as_json, markdown
from streamproc.settings import Settings
from streamproc.state.records import holding_field
from streamproc.state.store import Store

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"  # the repository's (absent when installed)
_LOOKBACK_MS = 86_400_000  # an episode overlapping the range may have fired up to a day before it
_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time(raw: str, now_ms: int) -> int:
    """``30m``/``2h``/``1d`` ago, epoch milliseconds, or ISO 8601 (UTC unless it says otherwise)."""
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", raw):
        return now_ms - int(float(m.group(1)) * _UNITS[m.group(2)])
    if raw.isdigit():
        return int(raw)
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{raw!r} is not a time: use 30m, 2h or 1d (ago), epoch ms, or ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp() * 1000)


async def _read(settings: Settings, topic: str, since_ms: int) -> list[Any]:
    """The values of ``topic``'s records stamped from ``since_ms`` on (the topic may not exist yet)."""
    parts = (await kafka.partitions(settings, [topic])).get(topic, [])
    if not parts:
        return []
    client = kafka.consumer(settings)
    await client.start()
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        found = await client.offsets_for_times({tp: since_ms for tp in tps})
        ends = await client.end_offsets(tps)
        start = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}
        records, _ = await kafka.read_to_end(client, tps, start, timeout_s=60)
    finally:
        await client.stop()
    out = []
    for r in records:
        try:
            out.append(orjson.loads(r.value))
        except orjson.JSONDecodeError:
            continue  # not ours to judge here: the report reads what it can
    return out


async def _holders(settings: Settings, instruments: set[str]) -> dict[str, list[str]]:
    """Per instrument, the accounts in Redis that hold it or give it a target weight."""
    if not instruments:
        return {}
    client = redis_client(settings, socket_connect_timeout=5)
    wanted = sorted(instruments)
    found: dict[str, list[str]] = defaultdict(list)
    try:
        store = Store(client, settings.redis_prefix)
        async for account, (targets, *qtys) in store.scan_accounts(["targets", *map(holding_field, wanted)]):
            weights = orjson.loads(targets).get("weights", {}) if targets else {}
            for inst, qty in zip(wanted, qtys, strict=True):
                if (qty is not None and float(qty) > 0) or weights.get(inst, 0) > 0:
                    found[inst].append(account)
    finally:
        await client.aclose()
    return found


def _runbook(ep: Episode) -> str | None:
    path = RUNBOOKS / Path(ep.runbook).name
    return path.read_text() if path.is_file() else None


async def _reports(
    settings: Settings, since_ms: int, until_ms: int, alert_id: str | None, grace_ms: int, now_ms: int
) -> list[Any]:
    t = settings.topics
    alerts: list[AlertRecord] = await _read(settings, t.alerts, since_ms - _LOOKBACK_MS)
    every = episodes(alerts)
    chosen = [
        e
        for e in every
        if (alert_id is None or e.alert_id == alert_id) and e.overlaps(since_ms, until_ms, now_ms)
    ]
    if not chosen:
        return []
    first = min(e.fired_ms for e in chosen)
    orders, dead = await asyncio.gather(
        _read(settings, t.orders, first - 60_000), _read(settings, t.deadletter, first - 60_000)
    )
    holders: dict[str, list[str]] | None
    try:
        holders = await _holders(settings, {e.subject[1] for e in chosen if e.subject[0] == "instrument"})
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        # the topics still tell the story; only who held the instruments is unknown
        print(
            f"streamproc: Redis is not reachable at REDIS_URL ({exc}): instrument holders not shown",
            file=sys.stderr,
        )
        holders = None
    return [report(e, every, holders, orders, dead, now_ms, grace_ms, _runbook(e)) for e in chosen]


def incident_report(
    settings: Settings, since: str, until: str | None, alert_id: str | None, fmt: str, grace_s: float
) -> int:
    """Print the report; 1 when no episode matches (and say why)."""
    now_ms = int(time.time() * 1000)
    try:
        since_ms = parse_time(since, now_ms)
        until_ms = parse_time(until, now_ms) if until else now_ms
    except ValueError as exc:
        print(f"streamproc: {exc}", file=sys.stderr)
        return 2
    reports = asyncio.run(_reports(settings, since_ms, until_ms, alert_id, int(grace_s * 1000), now_ms))
    if not reports:
        what = f"alert {alert_id}" if alert_id else "any alert"
        print(
            f"no episode of {what} between {since} and {until or 'now'} on {settings.topics.alerts} "
            "(is STREAMPROC_NAMESPACE right? widen --since?)"
        )
        return 1
    if fmt == "json":
        sys.stdout.write(as_json(reports, since_ms, until_ms, settings.namespace, now_ms).decode() + "\n")
    else:
        sys.stdout.write(markdown(reports, since_ms, until_ms, settings.namespace, now_ms))
    return 0
