"""The operator views' pure parts: what ``inspect`` prints, from documents already read."""

from streamproc.core.trading import StateDoc
from streamproc.inspect import _state_line

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
