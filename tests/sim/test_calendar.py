"""The simulator's market on a calendar: its options say what to fix, a simulated clock's calendar
starts with a session opening now, and between sessions it is quiet."""

from __future__ import annotations

import argparse
import time

import orjson
import pytest

from streamproc.sim.market import Market
from streamproc.sim.simulate import SimStats, _Session, add_calendar_arguments, calendar_of


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_calendar_arguments(parser)
    return parser.parse_args(list(argv))


def test_calendar_options_name_a_calendar_or_say_what_to_fix() -> None:
    assert calendar_of(_args(), 1_796_325_183) is None
    assert calendar_of(_args("--calendar", "xnys"), 1_796_325_183) == "XNYS"
    assert calendar_of(_args("--calendar", "24/7"), 1_796_325_183) is None
    simulated = _args("--calendar", "XNYS", "--session-s", "45", "--closed-s", "20")
    assert calendar_of(simulated, 1_796_325_183) == "sim:XNYS:45:20:1796325183"
    with pytest.raises(SystemExit, match="give both --session-s and --closed-s"):
        calendar_of(_args("--calendar", "XNYS", "--session-s", "45"), 1)
    with pytest.raises(SystemExit, match="need --calendar"):
        calendar_of(_args("--session-s", "45", "--closed-s", "20"), 1)
    with pytest.raises(SystemExit, match="'NOPE' is not known"):
        calendar_of(_args("--calendar", "NOPE"), 1)


def test_a_simulated_market_is_open_for_its_session_then_quiet_for_its_night() -> None:
    start = int(time.time())
    name = calendar_of(_args("--calendar", "XNYS", "--session-s", "45", "--closed-s", "20"), start)
    market = Market(3, 1, calendar=name)
    ref = [orjson.loads(v) for _, v in market.reference_records()]
    assert {doc["calendar"] for doc in ref} == {name}
    session, stats = _Session(name), SimStats()
    session.at(start * 1000 + 1_000, stats)
    assert stats.open and stats.next_change_ms == start * 1000 + 45_000
    session.at(start * 1000 + 50_000, stats)
    assert not stats.open and stats.closes == 1 and stats.next_change_ms == start * 1000 + 65_000
    session.at(start * 1000 + 66_000, stats)
    assert stats.open and stats.closes == 1
