"""Sleeves of the accounts a worker owns: their stored state (entry mids, peak mark, closure), the
kill checks after each evaluation, and the ``sleeve_stopped`` episodes that tell on-call.

The marks and triggers are the book's (vectorized); this component keeps what must survive a restart
(Redis field ``sleeves``) and turns a trigger into a closure: the sleeve's members' targets become 0,
the rest of the model takes their weight, and the next pass sells them (one liquidation order whose
id counts the closures, so a restart between the trigger and the order publishes it once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streamproc.core import Book
from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.core.evaluate import Evaluation


@dataclass(frozen=True, slots=True)
class Closed:
    """Why and when a sleeve was stopped, and its mark then."""

    trigger: str
    at_ms: int
    mark: float


@dataclass(slots=True)
class SleeveRecord:
    """One sleeve's stored state (it belongs to the sleeve opened at ``opened_at``)."""

    opened_at: int
    entry: dict[str, float]
    peak: float
    closed: Closed | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"opened_at": self.opened_at, "entry": self.entry, "peak": self.peak}
        if self.closed is not None:
            c = self.closed
            doc["closed"] = {"trigger": c.trigger, "at_ms": c.at_ms, "mark": c.mark}
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SleeveRecord:
        closed = doc.get("closed")
        return cls(
            int(doc["opened_at"]),
            {k: float(v) for k, v in doc["entry"].items()},
            float(doc["peak"]),
            None
            if closed is None
            else Closed(closed["trigger"], int(closed["at_ms"]), float(closed["mark"])),
        )


def opened_at(group: Mapping[str, Any], targets: Mapping[str, Any]) -> int:
    """When a sleeve of a targets document opened: its ``opened_at``, else the document's ``ts``."""
    return int(group.get("opened_at", targets["ts"]))


def is_sleeve(group: Mapping[str, Any]) -> bool:
    return "kill" in group or "opened_at" in group


class Sleeves:
    """Per account (row) its sleeves' records by name, and the open ``sleeve_stopped`` episodes."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.records: dict[int, dict[str, SleeveRecord]] = {}
        self.stopped: dict[int, Episode] = {}  # row -> open sleeve_stopped (its sleeve still held)
        self.changed: set[int] = set()  # rows whose records are to be stored
        self._closed: list[Episode] = []

    # ---- targets and loads -------------------------------------------------------------------

    def closed_names(self, r: int, targets: Mapping[str, Any] | None) -> set[str]:
        """The sleeves of ``targets`` that were stopped (same name, same opening)."""
        return closed_names(self.records.get(r, {}), targets)

    def applied(self, r: int, targets: Mapping[str, Any] | None) -> None:
        """The account's targets were (re)applied to the book: keep the records of its sleeves that
        are the same sleeves (name and opening), drop the rest, and put entries and peaks back."""
        mine = self.records.get(r, {})
        keep: dict[str, SleeveRecord] = {}
        for name, group in ((targets or {}).get("groups") or {}).items():
            rec = mine.get(name)
            if is_sleeve(group) and rec is not None and rec.opened_at == opened_at(group, targets or {}):
                keep[name] = rec
                self.book.restore_sleeve(r, name, rec.entry, rec.peak)
        if keep.keys() != mine.keys():
            self.changed.add(r)
        if keep:
            self.records[r] = keep
        else:
            self.records.pop(r, None)

    def load(
        self, r: int, account: str, records: dict[str, SleeveRecord], targets: Mapping[str, Any] | None
    ) -> None:
        """A loaded account's stored records (its targets already in the book): entries and peaks
        back in the book, and the episode of a stopped sleeve re-opened (it ends once sold out)."""
        self.stopped.pop(r, None)
        self.records[r] = records
        self.applied(r, targets)
        for name in closed_names(self.records.get(r, {}), targets):
            self.start_episode(r, account, name)

    def closures(self, r: int) -> int:
        """How many sleeves of the account's current targets were stopped (part of an order's id)."""
        return sum(1 for rec in self.records.get(r, {}).values() if rec.closed is not None)

    # ---- each pass ---------------------------------------------------------------------------

    def check(
        self, ev: Evaluation, now_ms: int, targets: Callable[[int], Mapping[str, Any] | None]
    ) -> list[int]:
        """After an evaluation: record the entries and peaks the book moved, stop the sleeves whose
        kill criteria hold (returns their rows), and end the episodes of sleeves sold out."""
        book = self.book
        for r in book.drain_sleeve_changes():
            self._sync(r, targets(r))
        stopped: list[int] = []
        for r, g, trigger, mark in book.sleeve_triggers(ev, now_ms):
            name = book.groups.name(r, g)
            rec = self.records.get(r, {}).get(name)
            doc = targets(r) or {}
            group = (doc.get("groups") or {}).get(name)
            if group is None:
                continue
            if rec is None:
                self._sync(r, doc)
                rec = self.records[r][name]
            rec.closed = Closed(trigger.wire, now_ms, round(mark, 6))
            self.changed.add(r)
            stopped.append(r)
        if self.stopped and ev.groups is not None:
            self._end_sold_out(ev)
        return stopped

    def _sync(self, r: int, targets: Mapping[str, Any] | None) -> None:
        """Copy the book's entries and peaks of a row's sleeves into its records."""
        groups = (targets or {}).get("groups") or {}
        mine = self.records.setdefault(r, {})
        for name, (entry, peak) in self.book.sleeve_state(r).items():
            group = groups.get(name)
            if group is None:
                continue
            rec = mine.get(name)
            if rec is None:
                mine[name] = SleeveRecord(opened_at(group, targets or {}), entry, peak)
            else:
                rec.entry, rec.peak = entry, peak
        self.changed.add(r)

    def episode(self, r: int, account: str, name: str) -> Episode:
        """The ``sleeve_stopped`` episode of a stopped sleeve (opened while its members are held)."""
        rec = self.records[r][name]
        assert rec.closed is not None
        subject = ("account", account)
        details = {
            "sleeve": name,
            "trigger": rec.closed.trigger,
            "mark": rec.closed.mark,
            "peak": round(rec.peak, 6),
            "opened_at": rec.opened_at,
            "entry": rec.entry,
        }
        ep_id = episode_id("sleeve_stopped", subject, f"{name}:{rec.opened_at}")
        return Episode("sleeve_stopped", subject, ep_id, rec.closed.at_ms, details)

    def start_episode(self, r: int, account: str, name: str) -> None:
        self.stopped[r] = self.episode(r, account, name)

    def _end_sold_out(self, ev: Evaluation) -> None:
        assert ev.groups is not None
        book = self.book
        index = {int(r): j for j, r in enumerate(ev.rows.tolist()) if int(r) in self.stopped}
        for r, j in index.items():
            ep = self.stopped[r]
            names = book.groups.names(r)
            name = ep.details["sleeve"]
            if name not in names:
                continue
            g = names.index(name)
            weight = float(ev.groups.targets[j, g] + ev.groups.deviations[j, g])
            if weight <= 0.0:
                self._closed.append(self.stopped.pop(r))

    def open_episodes(self, owned: Callable[[int], bool]) -> dict[Key, Episode]:
        """The episodes open now, of owned accounts."""
        return {ep.key: ep for r, ep in self.stopped.items() if owned(r)}

    def drain_closed(self) -> list[Episode]:
        out, self._closed = self._closed, []
        return out

    def drain_changed(self) -> dict[int, bytes]:
        """Rows whose records changed, with the ``sleeves`` field to store (b"": none)."""
        out = {r: encode(self.records.get(r, {})) for r in self.changed}
        self.changed = set()
        return out


def decode(raw: bytes | None) -> dict[str, SleeveRecord]:
    """The records of an account's ``sleeves`` field."""
    return {name: SleeveRecord.from_doc(doc) for name, doc in orjson.loads(raw).items()} if raw else {}


def closed_names(records: Mapping[str, SleeveRecord], targets: Mapping[str, Any] | None) -> set[str]:
    """The sleeves of ``targets`` that ``records`` say were stopped (same name, same opening)."""
    out: set[str] = set()
    for name, group in ((targets or {}).get("groups") or {}).items():
        rec = records.get(name)
        stopped = is_sleeve(group) and rec is not None and rec.closed is not None
        if stopped and rec is not None and rec.opened_at == opened_at(group, targets or {}):
            out.add(name)
    return out


def encode(records: Mapping[str, SleeveRecord]) -> bytes:
    """The ``sleeves`` field of an account (b"": it has none)."""
    return orjson.dumps({name: rec.to_doc() for name, rec in records.items()}) if records else b""
