"""Sleeve marks and kill triggers, pure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamproc.core.sleeves import DAY_MS, Kill, Trigger, sleeve_marks, triggers


def test_a_mark_is_price_return_since_each_member_was_first_held_trades_do_not_move_it() -> None:
    slot_group = np.array([[0, 0, -1]], dtype=np.int8)
    entry = np.array([[10.0, 20.0, np.nan]])
    mid = np.array([[12.0, 20.0, 100.0]])
    sleeve = np.array([[True]])
    mark = sleeve_marks(slot_group, np.array([[100.0, 50.0, 7.0]]), mid, entry, sleeve)
    assert mark[0, 0] == pytest.approx((1200 + 1000) / (1000 + 1000))
    doubled = sleeve_marks(slot_group, np.array([[200.0, 100.0, 7.0]]), mid, entry, sleeve)
    assert doubled[0, 0] == pytest.approx(mark[0, 0]), "buying more of the same does not change the mark"


@pytest.mark.parametrize(
    ("mark", "peak", "age_days", "kill", "expected"),
    [
        (0.79, 1.0, 1, Kill(stop_loss=0.2), Trigger.STOP_LOSS),
        (0.81, 1.0, 1, Kill(stop_loss=0.2), Trigger.NONE),
        (1.07, 1.2, 1, Kill(max_drawdown=0.1), Trigger.MAX_DRAWDOWN),
        (1.09, 1.2, 1, Kill(max_drawdown=0.1), Trigger.NONE),
        (1.0, 1.0, 30, Kill(max_days=30), Trigger.MAX_DAYS),
        (1.0, 1.0, 29, Kill(max_days=30), Trigger.NONE),
        (1.26, 1.26, 1, Kill(take_profit=0.25), Trigger.TAKE_PROFIT),
        (0.7, 1.2, 90, Kill(90, 0.2, 0.1, 0.5), Trigger.STOP_LOSS),  # the first in order names it
        (math.nan, math.nan, 31, Kill(max_days=30), Trigger.MAX_DAYS),  # the calendar needs no mark
    ],
)
def test_triggers(mark: float, peak: float, age_days: int, kill: Kill, expected: Trigger) -> None:
    now = 1_800_000_000_000
    got = triggers(
        np.array([[mark]]),
        np.array([[peak]]),
        np.array([[now - age_days * DAY_MS]], dtype=np.int64),
        np.array([[kill.columns()]]),
        np.array([[False]]),
        now,
    )
    assert Trigger(int(got[0, 0])) == expected
    closed = triggers(
        np.array([[mark]]),
        np.array([[peak]]),
        np.array([[now - age_days * DAY_MS]]),
        np.array([[kill.columns()]]),
        np.array([[True]]),
        now,
    )
    assert closed[0, 0] == Trigger.NONE, "a stopped sleeve is not stopped again"


def test_bad_kill_criteria_are_refused() -> None:
    with pytest.raises(ValueError, match="stop_loss"):
        Kill(stop_loss=1.5)
    with pytest.raises(ValueError, match="max_days"):
        Kill(max_days=0)
