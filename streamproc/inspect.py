"""`streamproc inspect`, `streamproc storm release` and `streamproc reconcile`: the on-call engineer's
view of the live state in Redis, and the two operator actions the runbooks name."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import TopicPartition

from streamproc import kafka
from streamproc.clients import redis_client
from streamproc.core.trading import Scope, StateDoc, field
from streamproc.settings import Settings
from streamproc.state.records import EpisodeDoc, OrderAction, OrderRequest, WorkingOrder
from streamproc.state.store import Store

_WORKER_FRESH_MS = 30_000
_READ_TIMEOUT_S = 10.0


def _age(now_ms: int, ts: int | None) -> str:
    return "never" if not ts else f"{(now_ms - ts) / 1000:.1f} s ago"


def when(now_ms: int, ts: int | None) -> str:
    """A time for people: ISO 8601 in UTC and how long ago (``2026-12-03T14:05:56Z, 12.3 s ago``)."""
    if not ts:
        return "never"
    iso = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{iso}, {_age(now_ms, ts)}"


def _json(doc: Any) -> str:
    return orjson.dumps(doc).decode()


def _alerts_for(firing: Mapping[str, EpisodeDoc], kind: str, ident: str, now_ms: int) -> list[str]:
    return [
        f"  {doc['type']} firing since {when(now_ms, doc['since_ms'])} ({doc['id']}): {_json(doc['details'])}"
        for doc in firing.values()
        if doc["subject"] == [kind, ident]
    ]


async def _instrument(store: Store, ident: str, now_ms: int) -> int:
    q = await store.load_quote(ident)
    firing = await store.firing_alerts()
    held = ident in await store.held_instruments()
    if q is None:
        print(
            f"instrument {ident}: no quote stored ({'held or targeted by accounts' if held else 'unknown'})"
        )
    else:
        print(f"instrument {ident}")
        if q.ts:
            print(f"  last price     bid {q.bid} / ask {q.ask} (mid {(q.bid + q.ask) / 2:g})")
            print(f"  last quote     seq {q.seq}, ts {q.ts} ({when(now_ms, q.ts)})")
            if q.bid_size == q.bid_size or q.ask_size == q.ask_size:  # not NaN: the quote gave sizes
                print(f"  displayed size bid {q.bid_size:g} / ask {q.ask_size:g}")
        else:
            print("  last price     none applied yet")
        print(
            f"  last seq seen  {q.seen}" + (f"   outlier held at mid {q.held:g}" if q.held == q.held else "")
        )
        flags = [e["type"] for e in q.episodes]
        print(
            f"  flags          {', '.join(flags) if flags else 'none'}  (stale is judged by age; see alerts)"
        )
        print(f"  session        {_session(q.calendar, now_ms)}")
        print(f"  referenced     {'yes' if held else 'no'} (held or targeted by some account)")
        print(f"  trading state  {_state_line(await store.trading_states(), 'instrument', ident, now_ms)}")
    suppressed = {
        doc["worker"]: doc["suppressed_by"].get(ident, 0)
        for doc in (await _live_workers(store, now_ms)).values()
    }
    print(f"  accounts suppressed by it: {sum(suppressed.values())}")
    adjusting = [
        doc["subject"][1]
        for doc in firing.values()
        if doc["type"] == "needs_adjustment" and ident in doc["details"].get("restricted", ())
    ]
    if adjusting:
        versions = sorted({str(d.get("limits", "?")) for d in (await _live_workers(store, now_ms)).values()})
        print(
            f"  restricted     {len(adjusting)} accounts need adjustment for it "
            f"(e.g. {', '.join(sorted(adjusting)[:3])}); limits version {', '.join(versions) or '?'}"
        )
    print(_waiting_line(ident, await _live_workers(store, now_ms)))
    lines = _alerts_for(firing, "instrument", ident, now_ms)
    print("alerts firing:" + ("" if lines else " none"))
    for line in lines:
        print(line)
    return 0 if q is not None else 1


def _session(calendar: str, now_ms: int) -> str:
    """The instrument's market now: ``XNYS: closed, opens 2026-12-07T14:30:00Z, in 3.2 h``."""
    from streamproc.calendars import load
    from streamproc.core.sessions import ALWAYS, CLOSED

    if calendar == ALWAYS:
        return f"{ALWAYS} (never closes)"
    try:
        cal = load(calendar, now_ms)
    except ValueError as exc:
        return f"{calendar}: {exc}"
    opened = cal.open_since(now_ms)
    if opened == CLOSED:
        nxt = cal.next_open(now_ms)
        return f"{calendar}: closed, opens {when_ahead(now_ms, nxt)}"
    return (
        f"{calendar}: open since {when(now_ms, opened)}, closes {when_ahead(now_ms, cal.next_close(now_ms))}"
    )


def when_ahead(now_ms: int, ts: int | None) -> str:
    """A future time for people: ISO 8601 and how far ahead (``..., in 3.2 h``)."""
    if ts is None:
        return "beyond the loaded calendar"
    iso = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ahead = (ts - now_ms) / 1000
    return f"{iso}, in {ahead / 3600:.1f} h" if ahead >= 3600 else f"{iso}, in {ahead / 60:.0f} min"


def _state_line(states: Mapping[str, StateDoc], scope: str, ident: str, now_ms: int) -> str:
    """The trading states set on ``ident`` itself and on everything (tier states: ``inspect status``)."""
    # its own state first, then the global one (a Redis hash has no order of its own)
    shown = [
        f"{d['state']} ({'everything' if d['scope'] == 'global' else 'itself'}, "
        f"since {when(now_ms, d['at_ms'])})"
        for key in (f"{scope}:{ident}", "global:*")
        if (d := states.get(key)) is not None
    ]
    return ", ".join(shown) or "active (instrument and tier states: inspect status)"


def _schedule(targets: Mapping[str, Any], calendar_run: str | None, runs: str | None) -> str:
    """``calendar every quarter, tolerance 0.01 (bands too); last checked 2027-Q1; runs today 1 of 1``."""
    from streamproc.core.calendar_rule import CalendarRule, period_label

    parts = []
    if "calendar" in targets:
        rule = CalendarRule.of(targets["calendar"])
        text = f"calendar every {rule.every.value}, tolerance {rule.tolerance:g}"
        text += " (bands too)" if rule.bands else " (calendar only)"
        every, _, index = (calendar_run or "").partition(":")
        checked = period_label(int(index), rule.every) if every == rule.every.value else "not yet"
        parts.append(f"{text}; last checked {checked}")
    if "max_runs_per_day" in targets:
        day, _, n = (runs or "-1:0").partition(":")
        on = datetime.date(1970, 1, 1) + datetime.timedelta(days=int(day)) if int(day) >= 0 else None
        used = f"{n} on {on.isoformat()}" if on else "none yet"
        parts.append(f"max {targets['max_runs_per_day']} runs a trading day (last day: {used})")
    return "; ".join(parts)


def _waiting_line(ident: str, workers: dict[str, dict[str, Any]]) -> str:
    """The capacity report of one instrument: what thin books left waiting, over the live workers."""
    waits = [doc.get("waiting", {}).get(ident) for doc in workers.values()]
    waits = [w for w in waits if w]
    if not waits:
        return "  depth waiting  none (no leg of it was cut to its displayed size)"
    buy, sell = sum(w["buy"] for w in waits), sum(w["sell"] for w in waits)
    accounts = sum(w["accounts"] for w in waits)
    return f"  depth waiting  buy {buy:g} / sell {sell:g} for {accounts} accounts (a later order trades it)"


async def _account(store: Store, ident: str, now_ms: int) -> int:
    rec = await store.load_account(ident)
    if rec is None:
        print(f"account {ident}: not in Redis (no positions or targets consumed yet)")
        return 1
    drift = rec.drift
    print(f"account {ident} (partition {rec.partition})")
    print(f"  positions seq  {rec.seq}, last change {_age(now_ms, rec.pts)}")
    print(f"  cash           {rec.cash:g}")
    for inst, qty in sorted(rec.holdings.items()):
        print(f"  holding        {inst:<16} {qty:g}")
    if rec.targets:
        t = rec.targets
        extra = {
            k: t[k]
            for k in ("band", "bands", "groups", "mode", "min_trade", "liquidate", "cooldown_s")
            if k in t
        }
        print(f"  targets        v{t['version']}: {_json(t['weights'])} {_json(extra)}")
        if "calendar" in t or "max_runs_per_day" in t:
            print(f"  schedule       {_schedule(t, rec.calendar_run, rec.runs)}")
    else:
        print("  targets        none (not managed: never traded)")
    print(f"  trading state  {_state_line(await store.trading_states(), 'account', ident, now_ms)}")
    if drift:
        since = f" since {_age(now_ms, drift['status_since'])}" if "status_since" in drift else ""
        print(f"  drift status   {drift['status']}{since}, evaluated {_age(now_ms, drift['evaluated_at'])}")
        if "why" in drift:
            print(f"  why            {drift['why']}")
        if "weights" in drift:
            print(f"  weights        {_json(drift['weights'])}")
        if "groups" in drift:
            print(f"  groups         {_json(drift['groups'])}")
    else:
        print("  drift status   not evaluated yet")
    if rec.sleeves:
        for name, sleeve in orjson.loads(rec.sleeves).items():
            closed = sleeve.get("closed")
            state = (
                f"STOPPED by {closed['trigger']} {_age(now_ms, closed['at_ms'])} at mark {closed['mark']}"
                if closed
                else "open"
            )
            print(
                f"  sleeve         {name}: {state}; opened {_age(now_ms, sleeve['opened_at'])}, "
                f"peak mark {sleeve['peak']:.4f}, entry mids {_json(sleeve['entry'])}"
            )
    if rec.gap:
        print(
            f"  QUARANTINED    position seqs missing: {rec.gap.gaps['ranges']} (streamproc reconcile {ident})"
        )
    if rec.order:
        o = rec.order
        legs = ", ".join(f"{leg['side']} {leg['qty']} {leg['instrument']}" for leg in o["legs"])
        print(f"  last order     {o['event_id']} at {when(now_ms, o['ts'])}: {legs}")
        if "replaces" in o:
            print(f"                 replaces {o['replaces']} (cancelled)")
        for ref in o.get("working", []):
            print(
                f"                 sized on top of {ref['event_id']}: "
                f"{ref['side']} {ref['qty']} {ref['instrument']}"
            )
    else:
        print("  last order     none")
    if rec.working is not None:
        w = rec.working
        _open_order(
            f"  WORKING        {w.event_id} since {_age(now_ms, w.ts_ms)} (held: answered or cooled down)", w
        )
    for c in rec.cancelling:
        _open_order(
            f"  CANCELLED      {c.event_id}: cancel sent {_age(now_ms, c.cancelled_ms)}, not confirmed", c
        )
    if rec.unanswered is not None:
        d = rec.unanswered.details
        print(f"  UNANSWERED     {d['attempts']} orders in a row, the last {d['event_id']}")
        print(f"                 (streamproc orders retry {ident} | streamproc orders release {ident})")
    if rec.rejected is not None:
        d = rec.rejected.details
        print(f"  REJECTED       order {d['event_id']}: {', '.join(d['instruments'])} ({d['reason']})")
        print("                 not retried until a position or targets record of the account arrives")
    lines = _alerts_for(await store.firing_alerts(), "account", ident, now_ms)
    print("alerts firing:" + ("" if lines else " none"))
    for line in lines:
        print(line)
    return 0


def _open_order(title: str, w: WorkingOrder) -> None:
    print(title)
    for leg in w.legs:
        left = leg.qty if leg.leaves_qty is None else leg.leaves_qty
        print(
            f"    {leg.side:<4} {leg.qty:g} {leg.instrument:<16} {leg.state:<16} "
            f"filled {leg.cum_qty:g}, working {left:g} (held {leg.held_before:g} before)"
        )
    if w.exec_ids:
        print(f"    execution reports: {', '.join(w.exec_ids)}")


async def _live_workers(store: Store, now_ms: int) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in (await store.workers()).items() if now_ms - v["ts"] < _WORKER_FRESH_MS}


async def _status(store: Store, ident: str, now_ms: int) -> int:
    workers = await _live_workers(store, now_ms)
    storm, muted = await store.storm()
    firing = await store.firing_alerts()
    print(f"workers ({len(workers)} reporting in the last {_WORKER_FRESH_MS // 1000} s)")
    for doc in sorted(workers.values(), key=lambda d: d["partitions"]):
        print(
            f"  {doc['worker']:<28} partitions {doc['partitions']}  accounts {doc['accounts']}  "
            f"suppressed {doc['suppressed']}  quarantined {doc['quarantined']}  held {doc['held']}"
            + (f"  throttled {doc['throttled']}" if doc.get("throttled") else "")
            + (f"  closed {doc['closed']}" if doc.get("closed") else "")
            + (f"  limits {doc['limits']}" if "limits" in doc else "")
        )
        print(
            f"    reported {_age(now_ms, doc['ts'])}; lag "
            + (", ".join(f"{t} {n}" for t, n in sorted(doc.get("lag", {}).items())) or "unknown")
        )
        if doc["suppressed_by"]:
            print(f"    suppressed by: {_json(doc['suppressed_by'])}")
        counts = doc.get("counts", {})
        shown = ("quotes.duplicates", "positions.replayed", "positions.gap_filled", "orders")
        print("    counts: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in shown))
    total = sum(d["suppressed"] for d in workers.values())
    print(f"accounts suppressed: {total}")
    if storm:
        print(
            f"BREACH STORM: orders held since {when(now_ms, storm['since_ms'])} ({storm['alert_id']}); "
            "release with: streamproc storm release"
        )
    else:
        print("orders flowing" + (" (storm detection muted after a release)" if muted else ""))
    states = await store.trading_states()
    print(f"trading states: {len(states) or 'all active'}")
    for state in sorted(states.values(), key=lambda d: d["at_ms"]):
        target = "everything" if state["scope"] == "global" else f"{state['scope']} {state['id']}"
        why = f": {state['reason']}" if state["reason"] else ""
        applied = sum(
            1
            for w in workers.values()
            if f"{field(Scope(state['scope']), state['id'])}={state['state']}" in w.get("trading", ())
        )
        print(
            f"  {state['state'].upper():<9} {target}  since {when(now_ms, state['at_ms'])} "
            f"by {state['by']}{why}; applied by {applied} of {len(workers)} workers"
        )
    print(f"alerts firing: {len(firing)}")
    for alert in sorted(firing.values(), key=lambda d: d["since_ms"]):
        kind, ident_ = alert["subject"]
        print(f"  {alert['type']:<16} {kind} {ident_:<20} since {when(now_ms, alert['since_ms'])}")
    if not workers:
        ever = await store.workers()
        last = max((int(d.get("ts", 0)) for d in ever.values()), default=0)
        print(
            "NO WORKER is reporting in this namespace"
            + (f" (the last report: {when(now_ms, last)})" if last else " and none ever did")
            + f"; is STREAMPROC_NAMESPACE right (keys {store.keys.prefix!r})? "
            "`streamproc namespace list` shows the namespaces"
        )
        return 1
    return 0


async def _storm_release(store: Store, mute_s: float, now_ms: int) -> int:
    storm = await store.release_storm(mute_s)
    if storm is None:
        print("no breach storm is holding orders (nothing released)")
        return 1
    print(
        f"released {storm['alert_id']}: workers publish the held orders within a second; "
        f"storm detection muted for {mute_s:g} s"
    )
    return 0


async def _reconcile(store: Store, ident: str, now_ms: int) -> int:
    rec = await store.load_account(ident)
    if rec is None or not rec.gap:
        print(f"account {ident} is not quarantined (no position gap stored); nothing to do")
        return 1
    await store.request_reconcile(ident, now_ms)
    print(
        f"asked the owner of {ident} to lift its quarantine (missing seqs {rec.gap.gaps['ranges']}); "
        f"check with: streamproc inspect account {ident}"
    )
    return 0


async def _newest(settings: Settings, topics: list[str]) -> dict[str, tuple[int, int | None]]:
    """Per topic that exists: (records so far, the newest record's timestamp or None)."""
    parts = await kafka.partitions(settings, topics)
    tps = [TopicPartition(t, p) for t in topics for p in parts.get(t, ())]
    records: list[Any] = []
    ends: dict[TopicPartition, int] = {}
    if tps:  # (no consumer for nothing: kafka.read_tail says why)
        client = kafka.consumer(settings)
        await client.start()
        try:
            ends = await client.end_offsets(tps)
            start = {tp: max(0, end - 1) for tp, end in ends.items()}
            records, ends = await kafka.read_to_end(client, tps, start, timeout_s=_READ_TIMEOUT_S)
        finally:
            await client.stop()
    return {
        t: (
            sum(end for tp, end in ends.items() if tp.topic == t),
            max((r.timestamp for r in records if r.topic == t), default=None),
        )
        for t in parts
    }


async def _watches(settings: Settings) -> str:
    """The feed_silent thresholds as the live workers run them (this shell's setting if none reports)."""
    client = redis_client(settings, socket_connect_timeout=5)
    try:
        workers = await _live_workers(Store(client, settings.redis_prefix), int(time.time() * 1000))
    except (ConnectionError, OSError, aioredis.RedisError):
        workers = {}  # the topics are Kafka's: shown without Redis too
    finally:
        await client.aclose()
    seen = {
        ", ".join(f"{k}={v:g}s" for k, v in sorted(doc["feed_silent_s"].items())) or "none"
        for doc in workers.values()
        if "feed_silent_s" in doc
    }
    if seen:
        return " | ".join(sorted(seen)) + f" (STREAMPROC_FEED_SILENT_S of the {len(workers)} live workers)"
    mine = ", ".join(f"{k}={v:g}s" for k, v in settings.feed_silent_s.items()) or "none"
    return f"{mine} (STREAMPROC_FEED_SILENT_S in this shell: no live worker reports its own)"


def topics_view(settings: Settings) -> int:
    """`streamproc inspect topics`: per topic, records so far and when the newest arrived; 1 when a
    topic does not exist (a wrong STREAMPROC_NAMESPACE, or no worker has created them yet)."""
    t = settings.topics
    names = [t.quotes, t.positions, t.targets, t.instruments, t.executions, t.orders, t.alerts, t.deadletter]
    found = asyncio.run(_newest(settings, names))
    now_ms = int(time.time() * 1000)
    print(f"{'topic':<32} {'records':>10}  newest record")
    for name in names:
        records, newest = found.get(name, (0, None))
        if name not in found:
            shown = "(no such topic: is STREAMPROC_NAMESPACE right?)"
        else:
            shown = _age(now_ms, newest) if newest or not records else "unknown (not read in time)"
        print(f"{name:<32} {records:>10}  {shown}")
    print(f"feed_silent watches: {asyncio.run(_watches(settings))}")
    return 0 if len(found) == len(names) else 1


async def _dead_letters(settings: Settings, last: int) -> list[Any] | None:
    """The last ``last`` dead letters of each partition, oldest first (None: no dead-letter topic)."""
    topic = settings.topics.deadletter
    parts = (await kafka.partitions(settings, [topic])).get(topic)
    if parts is None:
        return None
    tps = [TopicPartition(topic, p) for p in parts]
    records = await kafka.read_tail(settings, tps, last, timeout_s=_READ_TIMEOUT_S)
    return sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))


def deadletters_view(settings: Settings, last: int) -> int:
    """`streamproc inspect deadletters`: the newest ``last`` dead letters with their reasons."""
    records = asyncio.run(_dead_letters(settings, last))
    if records is None:
        print(f"no such topic {settings.topics.deadletter}: is STREAMPROC_NAMESPACE right?")
        return 1
    shown = records[-last:]
    now_ms = int(time.time() * 1000)
    reasons: dict[str, int] = {}
    for r in shown:
        doc = orjson.loads(r.value)
        reasons[doc.get("reason", "?")] = reasons.get(doc.get("reason", "?"), 0) + 1
        where = f"{doc['topic']}@{doc['partition']}:{doc['offset']}"
        print(f"{when(now_ms, doc['ts'])} {where} [{doc.get('reason')}] {doc['error']}")
    print(f"{len(shown)} dead letters shown; by reason: {_json(reasons)}")
    return 0


def run(settings: Settings, action: Callable[[Store, int], Awaitable[int]]) -> int:
    """Connect to Redis, run ``action`` with the namespace's store and the current time."""

    async def main() -> int:
        client = redis_client(settings, socket_connect_timeout=5)
        try:
            return await action(Store(client, settings.redis_prefix), int(time.time() * 1000))
        except BrokenPipeError:
            raise  # the reader of our output went away (`| head`): not a Redis problem
        except (ConnectionError, OSError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            print(
                f"streamproc: Redis is not reachable at REDIS_URL ({settings.redacted()['redis_url']}): {exc}"
            )
            return 2
        finally:
            await client.aclose()

    return asyncio.run(main())


def inspect(settings: Settings, what: str, ident: str) -> int:
    """`streamproc inspect instrument|account ID` and `streamproc inspect status`."""
    view = {"instrument": _instrument, "account": _account, "status": _status}[what]
    return run(settings, lambda store, now: view(store, ident, now))


def storm_release(settings: Settings, mute_s: float) -> int:
    """`streamproc storm release`."""
    return run(settings, lambda store, now: _storm_release(store, mute_s, now))


async def _order_action(store: Store, ident: str, action: OrderAction, now_ms: int) -> int:
    rec = await store.load_account(ident)
    if rec is None:
        print(f"account {ident} is not stored; nothing to do")
        return 1
    if action == OrderAction.RETRY and rec.unanswered is None:
        print(f"account {ident} has no unanswered orders (no order_unanswered episode); nothing to retry")
        return 1
    await store.request_order_action(ident, OrderRequest(action, now_ms))
    print(f"asked the owner of {ident} to {action.value} it; check with: streamproc inspect account {ident}")
    return 0


def order_action(settings: Settings, action: str, account: str) -> int:
    """`streamproc orders retry|release ACCOUNT`."""
    return run(settings, lambda store, now: _order_action(store, account, OrderAction(action), now))


def reconcile(settings: Settings, account: str) -> int:
    """`streamproc reconcile ACCOUNT`."""
    return run(settings, lambda store, now: _reconcile(store, account, now))
