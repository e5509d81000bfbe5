"""Trading states in-process: a halt an operator stored is applied at the next watch tick and audited
(trading_state firing), keeps the instrument out of every order with the reason in the drift document,
and on resume the alert resolves and the account, still out of band, gets its order."""

from __future__ import annotations

from typing import Any

import orjson

from streamproc.core.trading import StateDoc
from streamproc.testkit import InMemoryWorker, worker
from tests.app.kit import CONTRACT, QUIET, market, open_account, opened, orders, own, quote, settings


def halt(w: InMemoryWorker, key: str, scope: str, ident: str, state: str = "halted") -> None:
    doc: StateDoc = {"scope": scope, "id": ident, "state": state, "reason": "test", "by": "op", "at_ms": 7}
    w.store.trading[key] = doc


def alerts(w: InMemoryWorker) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in w.publisher.sent(w.parts.settings.topics.alerts)]


async def test_a_halt_holds_the_instrument_is_audited_and_a_resume_releases_it() -> None:
    w = worker(settings(), CONTRACT)
    await opened(w)
    halt(w, "instrument:BOND", "instrument", "BOND")
    await w.parts.watcher.tick(w.clock.time(), QUIET)
    (fired,) = [a for a in alerts(w) if a["type"] == "trading_state"]
    CONTRACT.validate("alerts", fired)
    assert fired["state"] == "firing" and fired["subject"] == {"instrument": "BOND"}
    assert fired["details"]["state"] == "halted" and fired["runbook"] == "runbooks/trading_state.md"

    quote(w, "EQ", 132.0, 2)  # out of band: sell EQ, buy BOND, but BOND is halted
    await w.parts.evaluator.run_once()
    sent = [o for o in orders(w) if o["type"] == "rebalance"]
    assert [[leg["instrument"] for leg in o["legs"]] for o in sent] == [["EQ"]]
    stored = await w.store.load_account("A")
    assert stored is not None and stored.drift is not None
    assert stored.drift["why"] == "partly untradable: halted BOND"

    del w.store.trading["instrument:BOND"]
    await w.parts.watcher.tick(w.clock.time(), QUIET)
    assert [a["state"] for a in alerts(w) if a["type"] == "trading_state"] == ["firing", "resolved"]
    assert w.parts.accounts.book.trading_state("BOND") == 0


async def test_a_halt_of_everything_and_of_an_account_hold_every_leg_from_the_first_pass() -> None:
    w = worker(settings(), CONTRACT)
    halt(w, "global:*", "global", "*", "reducing")  # set before the worker started
    await own(w, 0)
    market(w)
    await open_account(w, "A", eq=500.0, bond=1000.0)  # 50/50: wants to buy EQ, sell BOND
    await w.parts.evaluator.before_first()  # type: ignore[misc]
    w.clock.advance(1)
    await w.parts.evaluator.run_once()
    (order,) = [o for o in orders(w) if o["type"] == "rebalance"]
    assert [(leg["instrument"], leg["side"]) for leg in order["legs"]] == [("BOND", "sell")]  # no buys
    (fired,) = [a for a in alerts(w) if a["type"] == "trading_state"] or [None]
    assert fired is None  # audited by the watcher's tick, not by the evaluator
    await w.parts.watcher.tick(w.clock.time(), QUIET)
    (fired,) = [a for a in alerts(w) if a["type"] == "trading_state"]
    assert fired["subject"] == {"global": "*"}
    CONTRACT.validate("alerts", fired)
