"""Session arrays, no I/O: whether a market is open and since when, per instrument, and the next open and
close; `24/7` is always open."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.core.sessions import CLOSED, Calendar, Sessions

H = 3_600_000
DAY = [(9 * H, 17 * H), (33 * H, 41 * H)]  # two days, 09:00-17:00


def test_open_since_next_open_and_next_close() -> None:
    cal = Calendar.of("X", DAY)
    assert cal.open_since(8 * H) == CLOSED and cal.next_open(8 * H) == 9 * H
    assert cal.open_since(10 * H) == 9 * H and cal.next_close(10 * H) == 17 * H
    assert cal.open_since(17 * H) == CLOSED  # the close itself is closed
    assert cal.open_since(20 * H) == CLOSED and cal.next_open(20 * H) == 33 * H
    assert cal.next_open(42 * H) is None  # past the loaded window


def test_per_instrument_look_ups_through_calendar_indices() -> None:
    sessions = Sessions()
    k = sessions.add(Calendar.of("X", DAY))
    assert sessions.get("X") == k == 1 and sessions.get("24/7") == 0 and sessions.get("Y") is None
    cal = np.array([0, k, k], dtype=np.int64)
    assert sessions.open_since(cal, 10 * H).tolist() == [0, 9 * H, 9 * H]
    assert sessions.open_since(cal, 20 * H).tolist() == [0, CLOSED, CLOSED]


def test_sessions_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="ordered and not overlap"):
        Calendar.of("X", [(10, 20), (15, 30)])
