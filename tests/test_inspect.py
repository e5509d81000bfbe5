"""The operator views' pure parts: what ``inspect`` prints, from documents already read."""

from streamproc.core.trading import StateDoc
from streamproc.inspect import _schedule, _state_line

NOW = 1_796_323_200_000


def _doc(scope: str, ident: str, at_ms: int) -> StateDoc:
    return StateDoc(scope=scope, id=ident, state="halted", reason="drill", by="ops", at_ms=at_ms)


def test_an_instruments_own_state_is_named_before_the_global_one_whatever_the_stored_order() -> None:
    # the global halt stored (and so read back from the hash) first
    states = {
        "global:*": _doc("global", "*", NOW - 1_000),
        "instrument:BOND": _doc("instrument", "BOND", NOW - 5_000),
    }
    line = _state_line(states, "instrument", "BOND", NOW)
    assert line.startswith("halted (itself, since ") and ", halted (everything, since " in line
    assert _state_line({"instrument:EQ": states["instrument:BOND"]}, "instrument", "BOND", NOW).startswith(
        "active"
    )


def test_an_accounts_schedule_line_names_its_rule_its_last_check_and_its_runs() -> None:
    targets = {"calendar": {"every": "quarter", "tolerance": 0.01, "bands": False}, "max_runs_per_day": 1}
    line = _schedule(targets, "quarter:228", "20822:1")
    assert line == (
        "calendar every quarter, tolerance 0.01 (calendar only); last checked 2027-Q1; "
        "max 1 runs a trading day (last day: 1 on 2027-01-04)"
    )
    assert _schedule({"calendar": {"every": "year"}}, None, None).endswith("last checked not yet")
