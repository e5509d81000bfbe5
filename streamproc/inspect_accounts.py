"""`streamproc inspect accounts --state S`: the accounts in a state, read from Redis (their drift
documents, and the position gaps of quarantined ones), so a runbook's "check the held / suppressed /
quarantined accounts" is one command."""

from __future__ import annotations

from typing import Any

import orjson

from streamproc.inspect import run, when
from streamproc.settings import Settings
from streamproc.state.store import Store


async def _accounts(store: Store, state: str, limit: int, now_ms: int) -> int:
    found: list[tuple[str, dict[str, Any]]] = []
    async for account, (drift_raw, gap) in store.scan_accounts(["drift", "gap"]):
        drift = orjson.loads(drift_raw) if drift_raw else {}
        hit = bool(gap) if state == "quarantined" else drift.get("status") == state  # b"": lifted
        if hit:
            found.append((account, drift))
    total = len(found)
    found = sorted(found, key=lambda item: item[0])[:limit]  # the first by id, not by scan order
    for account, drift in found:
        since = drift.get("status_since", drift.get("evaluated_at"))
        why = f"  {drift['why']}" if "why" in drift else ""
        print(f"{account:<24} {drift.get('status', '?'):<11} since {when(now_ms, since)}{why}")
    more = f" (the first {len(found)} by id shown; --limit N for more)" if total > len(found) else ""
    print(f"{total} accounts {state}{more}")
    return 0


def accounts_view(settings: Settings, state: str, limit: int) -> int:
    """The accounts in ``state`` (at most ``limit`` listed, all counted)."""
    return run(settings, lambda store, now: _accounts(store, state, limit, now))
