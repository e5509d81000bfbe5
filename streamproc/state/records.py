"""The records kept in Redis (account, quote, order, alert episode, storm) and their codec in both
directions. No redis import: the Redis store and its in-memory twin share this one schema."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypedDict

import orjson

from streamproc.core.alerts import Episode
from streamproc.wire.documents import DriftDoc

HashFields = Mapping[bytes, bytes]
# what an HSET mapping may hold (redis-py encodes each value)
FieldValue = bytes | str | int | float


class EpisodeDoc(TypedDict):
    """An alert episode as stored: in the ``alerts`` hash, a quote's open episodes, an account's gap."""

    type: str
    subject: list[str]
    id: str
    since_ms: int
    details: dict[str, Any]


class StormDoc(TypedDict):
    """The breach storm holding every order (the ``storm`` string)."""

    alert_id: str
    since_ms: int
    details: dict[str, Any]


def episode_doc(ep: Episode) -> EpisodeDoc:
    """An episode as stored in Redis."""
    return {
        "type": ep.type,
        "subject": list(ep.subject),
        "id": ep.id,
        "since_ms": ep.since_ms,
        "details": dict(ep.details),
    }


def episode_from(doc: Mapping[str, Any]) -> Episode:
    """An episode from its stored form."""
    kind, ident = doc["subject"]
    return Episode(doc["type"], (kind, ident), doc["id"], int(doc["since_ms"]), doc.get("details", {}))


def storm_episode(doc: StormDoc, orders_topic: str) -> Episode:
    """The ``breach_storm`` episode of a stored storm (its subject is the orders topic)."""
    return Episode("breach_storm", ("topic", orders_topic), doc["alert_id"], doc["since_ms"], doc["details"])


def order_key(order: Mapping[str, Any]) -> tuple[int, int, int]:
    """Which of two orders of an account is newer: (positions seq, targets version, attempt)."""
    inputs = order["inputs"]
    return (inputs["positions_seq"], inputs["targets_version"], inputs.get("attempt", 0))


TERMINAL = frozenset({"filled", "rejected", "cancelled", "expired"})


@dataclass(frozen=True, slots=True)
class WorkingLeg:
    """One leg of a working order, with the holding it started from."""

    instrument: str
    side: str  # buy | sell
    qty: float
    held_before: float
    state: str = "new"  # new, or the last execution report's state
    cum_qty: float = 0.0  # filled, as order management reported
    leaves_qty: float | None = None  # still working, as reported (None: the whole qty)

    @property
    def terminal(self) -> bool:
        """Nothing of the leg works any more (filled, rejected, cancelled, expired)."""
        return self.state in TERMINAL

    def signed(self, qty: float) -> float:
        """``qty`` of this leg as a holding change: < 0 for a sell."""
        return -qty if self.side == "sell" else qty

    @property
    def expected(self) -> float:
        """The holding once the leg is filled."""
        return self.held_before + self.signed(self.qty)


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """An order published and not yet answered: it holds its account (no second order) until positions
    complete its legs or its cooldown ends. Once cancelled (``cancelled_ms``) it may still trade until
    order management confirms: evaluations count what it has open."""

    event_id: str
    ts_ms: int
    legs: tuple[WorkingLeg, ...]
    exec_ids: tuple[str, ...] = ()  # execution reports applied (a repeat is ignored)
    cancelled_ms: int = 0  # when its cancel was published (0: not cancelled)

    @classmethod
    def of(cls, doc: Mapping[str, Any], held: Mapping[str, float]) -> WorkingOrder:
        """A published order document working from the holdings ``held``."""
        legs = tuple(
            WorkingLeg(leg["instrument"], leg["side"], float(leg["qty"]), held.get(leg["instrument"], 0.0))
            for leg in doc["legs"]
        )
        return cls(str(doc["event_id"]), int(doc["ts"]), legs)

    def done(self, holdings: Mapping[str, float], lot_of: Callable[[str], float]) -> bool:
        """Whether ``holdings`` complete every leg, each within a lot."""
        return all(
            abs(holdings.get(leg.instrument, 0.0) - leg.expected) <= lot_of(leg.instrument) * (1.0 + 1e-9)
            for leg in self.legs
        )

    def remaining(
        self, holdings: Mapping[str, float], uncredited: frozenset[str] = frozenset()
    ) -> list[tuple[str, float]]:
        """(instrument, qty still to trade: > 0 buys, < 0 sells) per leg: what execution reports say is
        working, else the ordered qty less what positions show filled since it started (not for the
        ``uncredited`` instruments: an older open order trades them too, and the move is its)."""
        out = []
        for leg in self.legs:
            if leg.terminal:
                continue
            if leg.leaves_qty is not None:
                left = leg.leaves_qty
            elif leg.instrument in uncredited:
                left = leg.qty
            else:
                filled = leg.signed(holdings.get(leg.instrument, 0.0) - leg.held_before)
                left = leg.qty - min(max(filled, 0.0), leg.qty)
            if left > 0:
                out.append((leg.instrument, leg.signed(left)))
        return out

    def traded(self, holdings: Mapping[str, float]) -> list[tuple[str, float]]:
        """(instrument, qty traded so far: > 0 bought, < 0 sold) per leg: what execution reports say
        was filled, else what positions show moved since it started (at most the leg)."""
        out = []
        for leg in self.legs:
            if leg.terminal or leg.leaves_qty is not None:
                done = leg.cum_qty
            else:
                moved = leg.signed(holdings.get(leg.instrument, 0.0) - leg.held_before)
                done = min(max(moved, 0.0), leg.qty)
            if done > 0:
                out.append((leg.instrument, leg.signed(done)))
        return out

    def to_doc(self) -> dict[str, Any]:
        legs = [
            [leg.instrument, leg.side, leg.qty, leg.held_before, leg.state, leg.cum_qty, leg.leaves_qty]
            for leg in self.legs
        ]
        doc = {"event_id": self.event_id, "ts": self.ts_ms, "legs": legs, "exec_ids": list(self.exec_ids)}
        if self.cancelled_ms:
            doc["cancelled"] = self.cancelled_ms
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> WorkingOrder:
        legs = tuple(WorkingLeg(i, side, float(q), float(h), *rest) for i, side, q, h, *rest in doc["legs"])
        exec_ids = tuple(doc.get("exec_ids", ()))
        return cls(doc["event_id"], int(doc["ts"]), legs, exec_ids, int(doc.get("cancelled", 0)))

    def encode(self) -> bytes:
        return orjson.dumps(self.to_doc())

    @classmethod
    def decode(cls, raw: bytes) -> WorkingOrder | None:
        return cls.from_doc(orjson.loads(raw)) if raw else None


def open_legs(orders: Iterable[WorkingOrder], holdings: Mapping[str, float]) -> list[tuple[str, str, float]]:
    """(event_id, instrument, qty still to trade) of an account's open orders, oldest first. A position
    move is credited to the oldest open order of its instrument only: a newer one counts whole until
    reported on (never less than is really open, so nothing is sold or bought twice)."""
    out: list[tuple[str, str, float]] = []
    seen: set[str] = set()
    for order in orders:
        out += [(order.event_id, name, left) for name, left in order.remaining(holdings, frozenset(seen))]
        seen.update(leg.instrument for leg in order.legs if not leg.terminal)
    return out


def open_caps(orders: Iterable[WorkingOrder]) -> list[tuple[str, float]]:
    """(instrument, the most a leg may still trade: > 0 buys, < 0 sells) of open orders: what execution
    reports say is working, else the whole leg (positions never prove which order a move belongs to)."""
    out = []
    for order in orders:
        for leg in order.legs:
            if not leg.terminal:
                left = leg.qty if leg.leaves_qty is None else leg.leaves_qty
                out.append((leg.instrument, leg.signed(left)))
    return out


def encode_orders(orders: Iterable[WorkingOrder]) -> bytes:
    """Several working orders as one field (an account's cancelled orders not yet confirmed)."""
    return orjson.dumps([o.to_doc() for o in orders])


def decode_orders(raw: bytes) -> tuple[WorkingOrder, ...]:
    return tuple(WorkingOrder.from_doc(d) for d in orjson.loads(raw)) if raw else ()


@dataclass(frozen=True, slots=True)
class RecordedOrder:
    """What a pass published for one account, as recorded after delivery: its emitted ids (cancels
    and the order), the account's last order, the order working, and the cancelled orders still open."""

    account: str
    event_id: str  # the rebalance published ("" when only cancels were)
    doc: bytes  # the order document as published (b"" when only cancels were)
    working: WorkingOrder | None = None
    cancels: tuple[str, ...] = ()  # event_ids of the cancels published with it
    cancelling: tuple[WorkingOrder, ...] | None = None  # None: unchanged

    @property
    def ids(self) -> list[str]:
        return ([self.event_id] if self.event_id else []) + list(self.cancels)

    def patch(self) -> AccountPatch:
        """What recording it changes in its account's hash."""
        patch = AccountPatch()
        if self.doc:
            patch.order(self.doc)
        if self.working is not None or self.cancelling is not None:
            patch.working(self.working)
        if self.cancelling is not None:
            patch.cancelling(self.cancelling)
        return patch


class OrderAction(Enum):
    """An operator's decision on an account whose orders went unanswered."""

    RETRY = "retry"  # another attempt, the unanswered count starting again
    RELEASE = "release"  # nothing is open any more (settled with order management): start over


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """``streamproc orders retry|release ACCOUNT``, waiting for the account's owner."""

    action: OrderAction
    at_ms: int

    def encode(self) -> bytes:
        return f"{self.action.value}:{self.at_ms}".encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> OrderRequest:
        action, _, at = (raw.decode() if isinstance(raw, bytes) else raw).partition(":")
        return cls(OrderAction(action), int(at))


# ---- accounts ------------------------------------------------------------------------------------


@dataclass(slots=True)
class GapRecord:
    """A quarantined account's missing position seqs and the ``position_gap`` episode they raised."""

    gaps: dict[str, Any]  # core.gaps.SeqGaps.to_json()
    episode: Episode

    def encode(self) -> bytes:
        return orjson.dumps({**self.gaps, "episode": episode_doc(self.episode)})

    @classmethod
    def decode(cls, account: str, raw: bytes) -> GapRecord | None:
        if not raw:
            return None
        doc = orjson.loads(raw)
        stored = doc.pop("episode", None)
        if stored is None:  # written before the episode was nested (id, since_ms, details at the top)
            stored = {
                "type": "position_gap",
                "subject": ["account", account],
                "id": doc.pop("id"),
                "since_ms": doc.pop("since_ms"),
                "details": doc.pop("details", {}),
            }
        return cls(doc, episode_from(stored))


@dataclass(slots=True)
class AccountRecord:
    """One account as stored in Redis."""

    account: str
    partition: int
    holdings: dict[str, float]
    cash: float
    seq: int  # last applied positions seq, -1 = none
    pts: int  # ts of that position update
    targets: dict[str, Any] | None  # the last applied targets document
    order: dict[str, Any] | None  # the last order published
    gap: GapRecord | None = None  # missing position seqs (the account is quarantined)
    drift_json: bytes | None = None  # the last drift status written (parsed on demand: loads skip it)
    working: WorkingOrder | None = None  # the order holding the account, if still unanswered
    rejected: Episode | None = None  # its order was rejected: held until an input changes
    cancelling: tuple[WorkingOrder, ...] = ()  # cancelled, not yet confirmed: may still trade
    unanswered: Episode | None = None  # its orders went unanswered (details: attempts)
    settled: str | None = None  # the last withdrawal a positions record paid out (``settles``)
    sleeves: bytes | None = None  # its sleeves' state (app.sleeves), parsed by that component
    calendar_run: str | None = None  # the period of its last calendar check (``quarter:228``)
    runs: str | None = None  # its runs on a trading day (``<day>:<n>``, max_runs_per_day)

    @property
    def drift(self) -> DriftDoc | None:
        """The last drift status written."""
        return orjson.loads(self.drift_json) if self.drift_json else None


def holding_field(instrument: str) -> str:
    """The account hash field of a holding."""
    return f"q:{instrument}"


def parse_account(account: str, raw: HashFields) -> AccountRecord:
    """An account from its hash."""
    holdings = {k[2:].decode(): q for k, v in raw.items() if k.startswith(b"q:") and (q := float(v)) > 0}
    targets, order, drift = raw.get(b"targets"), raw.get(b"order"), raw.get(b"drift")
    return AccountRecord(
        account=account,
        partition=int(raw.get(b"part", b"-1")),
        holdings=holdings,
        cash=float(raw.get(b"cash", b"0")),
        seq=int(raw.get(b"seq", b"-1")),
        pts=int(raw.get(b"pts", b"0")),
        targets=orjson.loads(targets) if targets else None,
        order=orjson.loads(order) if order else None,
        gap=GapRecord.decode(account, raw.get(b"gap", b"")),
        drift_json=drift or None,
        working=WorkingOrder.decode(raw.get(b"working", b"")),
        rejected=episode_from(orjson.loads(rej)) if (rej := raw.get(b"rejected")) else None,
        cancelling=decode_orders(raw.get(b"cancelling", b"")),
        unanswered=episode_from(orjson.loads(una)) if (una := raw.get(b"unanswered")) else None,
        settled=settled.decode() if (settled := raw.get(b"settled")) else None,
        sleeves=raw.get(b"sleeves") or None,
        calendar_run=run.decode() if (run := raw.get(b"calendar_run")) else None,
        runs=runs.decode() if (runs := raw.get(b"runs")) else None,
    )


@dataclass(slots=True)
class AccountPatch:
    """The fields of one account hash a batch changes (an HSET mapping), built by name so only this
    module spells them."""

    fields: dict[str, FieldValue] = field(default_factory=dict)

    def holding(self, instrument: str, qty: float) -> AccountPatch:
        self.fields[holding_field(instrument)] = qty
        return self

    def cash(self, qty: float) -> AccountPatch:
        self.fields["cash"] = qty
        return self

    def positions(self, seq: int, pts: int) -> AccountPatch:
        self.fields["seq"], self.fields["pts"] = seq, pts
        return self

    def partition(self, p: int) -> AccountPatch:
        self.fields["part"] = p
        return self

    def targets(self, doc: Mapping[str, Any]) -> AccountPatch:
        self.fields["targets"] = orjson.dumps(doc)
        return self

    def gap(self, record: GapRecord | None) -> AccountPatch:
        self.fields["gap"] = record.encode() if record is not None else b""
        return self

    def drift(self, doc: DriftDoc) -> AccountPatch:
        self.fields["drift"] = orjson.dumps(doc)
        return self

    def order(self, encoded: bytes) -> AccountPatch:
        self.fields["order"] = encoded
        return self

    def working(self, order: WorkingOrder | None) -> AccountPatch:
        self.fields["working"] = order.encode() if order is not None else b""
        return self

    def rejected(self, episode: Episode | None) -> AccountPatch:
        self.fields["rejected"] = orjson.dumps(episode_doc(episode)) if episode is not None else b""
        return self

    def cancelling(self, orders: Iterable[WorkingOrder]) -> AccountPatch:
        self.fields["cancelling"] = encode_orders(orders)
        return self

    def sleeves(self, encoded: bytes) -> AccountPatch:
        self.fields["sleeves"] = encoded
        return self

    def schedule(self, calendar_run: str, runs: str) -> AccountPatch:
        self.fields["calendar_run"], self.fields["runs"] = calendar_run, runs
        return self

    def settled(self, withdrawal: str) -> AccountPatch:
        self.fields["settled"] = withdrawal
        return self

    def unanswered(self, episode: Episode | None) -> AccountPatch:
        self.fields["unanswered"] = orjson.dumps(episode_doc(episode)) if episode is not None else b""
        return self


def encoded(value: FieldValue) -> bytes:
    """A field value as Redis stores it (redis-py's encoding: str(number), utf-8 text)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


# ---- quotes --------------------------------------------------------------------------------------

QUOTE_FIELDS = ["bid", "ask", "seq", "ts", "seen", "held", "episodes", "bid_size", "ask_size", "calendar"]


@dataclass(frozen=True, slots=True)
class StoredQuote:
    """An instrument's feed state: the last applied quote and what the gap checks need to resume."""

    bid: float  # NaN: no quote applied yet
    ask: float
    seq: int  # seq of the applied quote, -1 none
    ts: int  # its ts, 0 none
    seen: int = -1  # last seq seen, applied or not (crossed and held quotes count)
    held: float = math.nan  # mid of an outlier quote waiting for confirmation
    episodes: tuple[EpisodeDoc, ...] = ()  # open gap/crossed/outlier episodes
    bid_size: float = math.nan  # displayed sizes of the applied quote, NaN: not given
    ask_size: float = math.nan
    calendar: str = "24/7"  # its venue's trading calendar (from reference data), for `inspect`

    def fields(self) -> dict[str, FieldValue]:
        """The quote hash's fields (bid/ask/seq/ts only once a quote was applied)."""
        out: dict[str, FieldValue] = {
            "seen": self.seen,
            "held": "" if math.isnan(self.held) else self.held,
            "episodes": orjson.dumps(list(self.episodes)),
            "calendar": self.calendar,
        }
        if not math.isnan(self.bid):
            out |= {"bid": self.bid, "ask": self.ask, "seq": self.seq, "ts": self.ts}
            out |= {
                k: "" if math.isnan(v) else v
                for k, v in (("bid_size", self.bid_size), ("ask_size", self.ask_size))
            }
        return out

    @classmethod
    def parse(cls, values: list[bytes | None]) -> StoredQuote | None:
        """From the values of ``QUOTE_FIELDS`` (HMGET); None when nothing is stored."""
        bid, ask, seq, ts, seen, held, episodes, bid_size, ask_size, calendar = values
        if bid is None and seen is None:
            return None
        return cls(
            bid=float(bid) if bid else math.nan,
            ask=float(ask) if ask else math.nan,
            seq=int(seq) if seq else -1,
            ts=int(ts) if ts else 0,
            seen=int(seen) if seen else (int(seq) if seq else -1),
            held=float(held) if held else math.nan,
            episodes=tuple(orjson.loads(episodes)) if episodes else (),
            bid_size=float(bid_size) if bid_size else math.nan,
            ask_size=float(ask_size) if ask_size else math.nan,
            calendar=calendar.decode() if calendar else "24/7",
        )
