"""Alert types and their lifecycle: detectors report episodes (a condition on one subject, with an id
derived from the data), and ``reconcile`` turns them into one firing and one resolved transition each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AlertType:
    """An alert type: its severity and a one-line meaning (the runbook has the rest)."""

    name: str
    severity: str  # info | warning | critical
    meaning: str

    @property
    def runbook(self) -> str:
        """Repository path of the runbook an on-call engineer follows."""
        return f"runbooks/{self.name}.md"


ALERT_TYPES: dict[str, AlertType] = {
    t.name: t
    for t in (
        AlertType("quote_stale", "warning", "a held or targeted instrument has no quote within its max age"),
        AlertType("quote_gap", "warning", "an instrument's quote seq jumped: quotes were lost"),
        AlertType("quote_crossed", "warning", "an instrument's quote is crossed (bid > ask) or non-positive"),
        AlertType("quote_outlier", "warning", "an instrument's mid jumped beyond the outlier threshold"),
        AlertType(
            "clock_skew",
            "warning",
            "a quote is stamped further ahead of the worker's clock than allowed: it is not applied",
        ),
        AlertType("position_gap", "critical", "an account's position seq jumped: the account is quarantined"),
        AlertType(
            "order_rejected",
            "warning",
            "order management rejected an order: not retried until an input changes",
        ),
        AlertType(
            "order_unanswered",
            "warning",
            "an order got no answer within its cooldown: cancelled; capped, then an operator decides",
        ),
        AlertType(
            "sleeve_stopped",
            "info",
            "a sleeve met a kill criterion (time, stop-loss, drawdown, take-profit): it is being sold",
        ),
        AlertType(
            "needs_adjustment",
            "warning",
            "an account holds or targets an instrument not eligible for buys: its model needs changing",
        ),
        AlertType(
            "trading_state",
            "warning",
            "an operator halted, or allowed only reducing legs for, an instrument, tier, account or all",
        ),
        AlertType("feed_silent", "critical", "an input topic that was live has received nothing for a while"),
        AlertType("breach_storm", "critical", "too many accounts breached at once: all orders are held"),
        AlertType("deadletter_rate", "warning", "dead letters per minute above the threshold"),
    )
}

Subject = tuple[str, str]  # (kind, id): ("instrument", "EQ1"), ("account", "A"), ("topic", "quotes"),
# ("tier", "micro"), ("global", "*")
Key = tuple[str, Subject]  # (alert type, subject)


@dataclass(frozen=True, slots=True)
class Episode:
    """One occurrence of a condition on a subject. ``id`` is derived from the data (a seq, a quote ts), so
    any worker that sees the same data, or a restarted one, names the same episode the same way."""

    type: str
    subject: Subject
    id: str
    since_ms: int
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        """What one alert lifecycle is about: at most one episode per key fires at a time."""
        return (self.type, self.subject)


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change to publish; ``brief`` ones began and ended between two calls (announced as a
    pair, never part of the firing set)."""

    state: str  # firing | resolved
    episode: Episode
    brief: bool = False


def episode_id(type_: str, subject: Subject, mark: object) -> str:
    """``<type>:<subject id>:<mark>``, the alert id consumers deduplicate on."""
    return f"{type_}:{subject[1]}:{mark}"


def reconcile(
    types: Iterable[str],
    open_now: Mapping[Key, Episode],
    closed: Iterable[Episode],
    firing: Mapping[Key, Episode],
    mine: Callable[[Subject], bool],
) -> list[Transition]:
    """Transitions that bring ``firing`` (what was announced) in line with the detectors, for the alert
    ``types`` given and the subjects this worker answers for. ``closed`` are episodes that ended since
    the last call (reported even when they began and ended in between); ``open_now`` are the ongoing
    ones. An announced episode no longer open is resolved."""
    scope = set(types)
    state = {k: e for k, e in firing.items() if k[0] in scope and mine(k[1])}
    out: list[Transition] = []
    for ep in closed:
        if ep.type not in scope or not mine(ep.subject):
            continue
        cur = state.get(ep.key)
        if cur is not None and cur.id == ep.id:
            out.append(Transition("resolved", ep))  # ep says how it ended
            del state[ep.key]
            continue
        still_open = ep.key in open_now and cur is not None and open_now[ep.key].id == cur.id
        if cur is not None and not still_open:
            out.append(Transition("resolved", cur))
            del state[ep.key]
        out += [Transition("firing", ep, brief=True), Transition("resolved", ep, brief=True)]
    for key, ep in open_now.items():
        if key[0] not in scope or not mine(key[1]):
            continue
        cur = state.pop(key, None)
        if cur is not None and cur.id == ep.id:
            continue
        if cur is not None:
            out.append(Transition("resolved", cur))
        out.append(Transition("firing", ep))
    out += [Transition("resolved", cur) for cur in state.values()]
    return out


def apply(firing: dict[Key, Episode], transitions: Iterable[Transition]) -> None:
    """Update the announced set with published transitions."""
    for t in transitions:
        if t.brief:
            continue
        if t.state == "firing":
            firing[t.episode.key] = t.episode
        elif firing.get(t.episode.key, t.episode).id == t.episode.id:
            firing.pop(t.episode.key, None)
