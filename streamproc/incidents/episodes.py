"""Incident episodes from the wire: the alerts topic's firing/resolved pairs grouped by alert_id, and
what each one did to the book (the accounts it kept from trading, the orders withheld and then
published, the dead letters and other alerts around it). Pure: the records come in, reports go out."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict


class AlertRecord(TypedDict, total=False):
    """An ``alerts`` record (schemas/alerts.json)."""

    alert_id: str
    type: str
    severity: str
    state: str
    subject: dict[str, str]
    ts: int
    details: dict[str, Any]
    runbook: str
    runbook_url: str


class OrderRecord(TypedDict, total=False):
    """The fields of an ``orders`` record a report reads."""

    event_id: str
    type: str
    account: str
    ts: int


class DeadLetterRecord(TypedDict, total=False):
    """The fields of a ``deadletter`` record a report reads."""

    topic: str
    reason: str
    error: str
    ts: int


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode: fired, and resolved unless it still fires."""

    alert_id: str
    type: str
    severity: str
    subject: tuple[str, str]
    fired_ms: int
    resolved_ms: int | None
    fired_details: dict[str, Any]
    resolved_details: dict[str, Any] | None
    runbook: str
    runbook_url: str | None

    def end_ms(self, now_ms: int) -> int:
        return self.resolved_ms if self.resolved_ms is not None else now_ms

    def duration_ms(self, now_ms: int) -> int:
        return self.end_ms(now_ms) - self.fired_ms

    def overlaps(self, since_ms: int, until_ms: int, now_ms: int) -> bool:
        return self.fired_ms <= until_ms and self.end_ms(now_ms) >= since_ms


def episodes(alerts: Iterable[AlertRecord]) -> list[Episode]:
    """The episodes of ``alerts`` (in any order), by when they fired. Records pair up in time order per
    alert_id: a firing opens an episode, the next resolved record ends it; a repeat of either after a
    worker's crash counts once. A resolution without its firing (before the range read) is left out."""
    out: list[Episode] = []
    open_: dict[str, AlertRecord] = {}
    for a in sorted(alerts, key=lambda r: (r["ts"], r["state"] != "firing")):
        aid = a["alert_id"]
        if a["state"] == "firing":
            open_.setdefault(aid, a)
        elif aid in open_:
            out.append(_episode(open_.pop(aid), a))
    out += [_episode(f, None) for f in open_.values()]
    return sorted(out, key=lambda e: (e.fired_ms, e.alert_id))


def _episode(f: AlertRecord, r: AlertRecord | None) -> Episode:
    ((kind, ident),) = f["subject"].items()
    return Episode(
        alert_id=f["alert_id"],
        type=f["type"],
        severity=f["severity"],
        subject=(kind, ident),
        fired_ms=f["ts"],
        resolved_ms=r["ts"] if r is not None else None,
        fired_details=dict(f["details"]),
        resolved_details=dict(r["details"]) if r is not None else None,
        runbook=f["runbook"],
        runbook_url=f.get("runbook_url"),
    )


@dataclass(frozen=True, slots=True)
class Affected:
    """The accounts an episode kept from trading, and how they were found."""

    accounts: tuple[str, ...]
    basis: str


@dataclass(slots=True)
class Report:
    """One episode and what it did."""

    episode: Episode
    affected: Affected
    orders_during: list[OrderRecord] = field(default_factory=list)
    orders_after: list[OrderRecord] = field(default_factory=list)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    related: list[Episode] = field(default_factory=list)
    runbook_commands: list[str] = field(default_factory=list)


def affected(
    ep: Episode, holders: Mapping[str, Sequence[str]] | None, orders: Sequence[OrderRecord]
) -> Affected:
    """Who the episode kept from trading. An account's own alert: that account. An instrument's: the
    accounts holding or targeting it (``holders``, from the workers' state), suppressed while it was
    flagged. A breach storm: the accounts whose held orders went out when it was released. A topic's
    (a silent feed, a dead-letter burst): see the alerts it brought (``related``)."""
    kind, ident = ep.subject
    if kind == "account":
        return Affected((ident,), "the account itself")
    if kind == "instrument" and holders is None:
        return Affected((), f"accounts holding or targeting {ident}: unknown, Redis was not reachable")
    if kind == "instrument":
        return Affected(
            tuple(sorted((holders or {}).get(ident, ()))),
            f"accounts holding or targeting {ident} (the workers' state now), suppressed while flagged",
        )
    if ep.type == "breach_storm" and ep.resolved_ms is not None:
        # other workers publish their released orders around the release: a few seconds either side
        released = _in(orders, ep.resolved_ms - _RELEASE_LEAD_MS, ep.resolved_ms + _RELEASE_MS)
        return Affected(
            tuple(sorted({o["account"] for o in released if o.get("type") == "rebalance"})),
            "accounts whose orders the storm held, published when it was released",
        )
    return Affected((), f"{kind} {ident}: the accounts are those of the related alerts")


_RELEASE_MS = 60_000  # a storm's held orders go out within this of its release
_RELEASE_LEAD_MS = 5_000


def _in(orders: Iterable[OrderRecord], start_ms: int, end_ms: int) -> list[OrderRecord]:
    return [o for o in orders if start_ms <= o["ts"] <= end_ms]


def report(
    ep: Episode,
    every: Sequence[Episode],
    holders: Mapping[str, Sequence[str]] | None,
    orders: Sequence[OrderRecord],
    dead: Sequence[DeadLetterRecord],
    now_ms: int,
    grace_ms: int,
    runbook_text: str | None,
) -> Report:
    """The report of ``ep``: orders of the affected accounts during it and within ``grace_ms`` after it
    resolved (withheld, then published), dead letters while it lasted, the other episodes overlapping it,
    and the runbook's commands with its subject filled in."""
    who = affected(ep, holders, orders)
    mine = set(who.accounts)
    end = ep.end_ms(now_ms)
    of_them = [o for o in orders if o.get("account") in mine]
    after = [] if ep.resolved_ms is None else _in(of_them, ep.resolved_ms, ep.resolved_ms + grace_ms)
    during = [o for o in _in(of_them, ep.fired_ms, end) if o not in after]
    letters = Counter(
        (d["topic"], d.get("reason", "?")) for d in dead if ep.fired_ms - 60_000 <= d["ts"] <= end
    )
    related = [
        e
        for e in every
        if e.alert_id != ep.alert_id and e.fired_ms <= end and e.end_ms(now_ms) >= ep.fired_ms
    ]
    return Report(ep, who, during, after, letters, related, commands(runbook_text or "", ep.subject))


def commands(runbook: str, subject: tuple[str, str]) -> list[str]:
    """The runbook's Diagnosis commands with the subject in its placeholder (`<ID>`, `<ACCOUNT>`)."""
    section = runbook.split("## Diagnosis", 1)[-1].split("\n## ", 1)[0] if "## Diagnosis" in runbook else ""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S)
    fill = {"instrument": "<ID>", "account": "<ACCOUNT>"}.get(subject[0])
    lines = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    return [line.replace(fill, subject[1]) if fill else line for line in lines]
