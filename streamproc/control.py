"""`streamproc halt | reduce | resume`: an operator sets the trading state of an instrument, a tier, an
account or everything. The state goes to Redis (``control:trading``); every worker reads it within a
second, applies it to its book and audits it on the alerts topic (``trading_state``)."""

from __future__ import annotations

import argparse
import getpass
import socket

from streamproc.core.trading import GLOBAL_ID, Scope, StateDoc, TradingState, field
from streamproc.inspect import run
from streamproc.settings import Settings
from streamproc.state.store import Store

_WHAT = {
    TradingState.HALTED: "no legs of it are drafted (working orders stay with order management)",
    TradingState.REDUCING: "only legs that reduce a holding (sells) are drafted",
    TradingState.ACTIVE: "it trades again as its bands say",
}


def _scope(args: argparse.Namespace, settings: Settings) -> tuple[Scope, str]:
    if args.all:
        return Scope.GLOBAL, GLOBAL_ID
    if args.tier is not None:
        tier = settings.limits.tier_of(args.tier)
        if tier is None:
            raise SystemExit(
                f"streamproc: tier {args.tier!r} is not declared ({', '.join(settings.limits.tiers)})"
            )
        return Scope.TIER, tier
    if args.account is not None:
        return Scope.ACCOUNT, args.account
    return Scope.INSTRUMENT, args.instrument


async def _set(store: Store, scope: Scope, ident: str, state: TradingState, reason: str, now_ms: int) -> int:
    key = field(scope, ident)
    doc: StateDoc | None = None
    if state != TradingState.ACTIVE:
        by = f"{getpass.getuser()}@{socket.gethostname()}"
        doc = {
            "scope": scope.value,
            "id": ident,
            "state": state.wire,
            "reason": reason,
            "by": by,
            "at_ms": now_ms,
        }
    before = await store.set_trading_state(key, doc)
    was = before["state"] if before else "active"
    target = "everything" if scope == Scope.GLOBAL else f"{scope.value} {ident}"
    print(f"{target}: {was} -> {state.wire}; {_WHAT[state]}")
    print("every worker applies it within a second; check with: streamproc inspect status")
    return 0


def main(args: argparse.Namespace, settings: Settings, state: TradingState) -> int:
    """Entry point of the three commands."""
    scope, ident = _scope(args, settings)
    return run(settings, lambda store, now: _set(store, scope, ident, state, args.reason, now))
