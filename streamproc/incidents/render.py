"""An incident report for people (Markdown, to paste into the postmortem or ticket) and for tools (JSON)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import orjson

from streamproc.incidents.episodes import Report

_SHOWN = 10  # accounts and orders listed per episode (all are counted)


def iso(ms: int) -> str:
    return (
        datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4]
        + "Z"
    )


def seconds(ms: int) -> str:
    s = ms / 1000
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _list(items: Sequence[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def markdown(reports: Sequence[Report], since_ms: int, until_ms: int, namespace: str, now_ms: int) -> str:
    """Every episode's section: summary table, timeline, impact, dead letters, related alerts, runbook."""
    out = [
        f"# Incident report: {len(reports)} episode{'' if len(reports) == 1 else 's'}",
        "",
        f"Namespace `{namespace or '(none)'}`, alerts from {iso(since_ms)} to {iso(until_ms)}; "
        f"written {iso(now_ms)} by `streamproc incident report`.",
    ]
    for r in reports:
        ep = r.episode
        kind, ident = ep.subject
        state = (
            f"resolved after {seconds(ep.duration_ms(now_ms))}"
            if ep.resolved_ms is not None
            else f"STILL FIRING ({seconds(ep.duration_ms(now_ms))} so far)"
        )
        runbook = ep.runbook + (f" ({ep.runbook_url})" if ep.runbook_url else "")
        out += [
            "",
            f"## {ep.type} {kind} {ident}: {state}",
            "",
            "| | |",
            "|---|---|",
            f"| alert | `{ep.alert_id}` ({ep.severity}) |",
            f"| subject | {kind} `{ident}` |",
            f"| fired | {iso(ep.fired_ms)} |",
            f"| resolved | {iso(ep.resolved_ms) if ep.resolved_ms is not None else 'not yet'} |",
            f"| duration | {seconds(ep.duration_ms(now_ms))} |",
            f"| runbook | {runbook} |",
            "",
            "### Timeline",
            "",
        ]
        timeline = [(ep.fired_ms, 0, f"fired: `{orjson.dumps(ep.fired_details).decode()}`")]
        timeline += [
            (e.fired_ms, 1, f"{e.type} {e.subject[0]} {e.subject[1]} fired (`{e.alert_id}`)")
            for e in r.related
            if ep.fired_ms <= e.fired_ms <= ep.end_ms(now_ms)
        ]
        if ep.resolved_ms is not None:
            details = orjson.dumps(ep.resolved_details or {}).decode()
            timeline.append((ep.resolved_ms, 2, f"resolved: `{details}`"))
        for o in r.orders_after[:1]:
            timeline.append((o["ts"], 3, f"first order after recovery: {o['account']} `{o['event_id']}`"))
        out += [f"- {iso(ts)} {text}" for ts, _, text in sorted(timeline)]
        accounts = list(r.affected.accounts)
        held = f"for {seconds(ep.duration_ms(now_ms))}" if accounts else ""
        out += [
            "",
            "### Impact",
            "",
            f"- accounts kept from trading: {len(accounts)} {held} ({r.affected.basis})"
            + (f": {_list(accounts)}" if accounts else ""),
            f"- their orders published while it lasted: {len(r.orders_during)}"
            + (f" ({_list([_order(o) for o in r.orders_during])})" if r.orders_during else ""),
            f"- orders withheld and published after recovery: {len(r.orders_after)}"
            + (f" ({_list([_order(o) for o in r.orders_after])})" if r.orders_after else ""),
            "",
            "### Dead letters from a minute before it fired to its end",
            "",
        ]
        out += [f"- {topic}: {reason} {n}" for (topic, reason), n in sorted(r.dead_letters.items())] or [
            "- none"
        ]
        out += ["", "### Related alerts (overlapping)", ""]
        out += [
            f"- {e.type} {e.subject[0]} {e.subject[1]}: {iso(e.fired_ms)}"
            + (f" to {iso(e.resolved_ms)}" if e.resolved_ms is not None else ", still firing")
            for e in r.related[:_SHOWN]
        ] or ["- none"]
        out += ["", "### Runbook followed", "", f"{runbook}; its diagnosis commands:", "", "```"]
        out += r.runbook_commands or ["(runbook text not found here)"]
        out.append("```")
    return "\n".join(out) + "\n"


def _order(o: Any) -> str:
    return f"{o['account']} {o.get('type', '?')} {o['event_id']} at {iso(o['ts'])}"


def as_json(reports: Sequence[Report], since_ms: int, until_ms: int, namespace: str, now_ms: int) -> bytes:
    """The same content as one JSON document."""
    return orjson.dumps(
        {
            "namespace": namespace,
            "since_ms": since_ms,
            "until_ms": until_ms,
            "written_ms": now_ms,
            "episodes": [
                {
                    "alert_id": r.episode.alert_id,
                    "type": r.episode.type,
                    "severity": r.episode.severity,
                    "subject": {r.episode.subject[0]: r.episode.subject[1]},
                    "fired_ms": r.episode.fired_ms,
                    "resolved_ms": r.episode.resolved_ms,
                    "duration_ms": r.episode.duration_ms(now_ms),
                    "fired_details": r.episode.fired_details,
                    "resolved_details": r.episode.resolved_details,
                    "accounts": list(r.affected.accounts),
                    "accounts_basis": r.affected.basis,
                    "orders_during": [o["event_id"] for o in r.orders_during],
                    "orders_after_recovery": [o["event_id"] for o in r.orders_after],
                    "dead_letters": [
                        {"topic": t, "reason": reason, "count": n}
                        for (t, reason), n in sorted(r.dead_letters.items())
                    ],
                    "related": [e.alert_id for e in r.related],
                    "runbook": r.episode.runbook,
                    "runbook_url": r.episode.runbook_url,
                    "runbook_commands": r.runbook_commands,
                }
                for r in reports
            ],
        },
        option=orjson.OPT_INDENT_2,
    )
