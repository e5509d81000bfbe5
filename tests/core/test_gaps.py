"""Feed checks and gap bookkeeping, no I/O: sequence gaps, duplicates, crossed and outlier quotes,
position gaps, silence and rate windows."""

from __future__ import annotations

import math

import numpy as np

from streamproc.core import PriceFlag
from streamproc.core.gaps import Increase, QuoteChecks, SeqGaps, Silence, Verdict, Window


def checks() -> QuoteChecks:
    c = QuoteChecks(outlier_move=0.2)
    c.grow(1)
    return c


def test_duplicates_and_out_of_order_quotes_are_dropped_and_counted() -> None:
    c = checks()
    assert c.check(0, "EQ", 5, 99.0, 101.0, 1) == Verdict.APPLY
    assert c.check(0, "EQ", 5, 99.0, 101.0, 2) == Verdict.DUPLICATE
    assert c.check(0, "EQ", 4, 99.0, 101.0, 3) == Verdict.DUPLICATE
    assert c.duplicates == 2 and c.flags[0] == 0 and not c.drain_closed()


def test_a_seq_jump_opens_a_gap_with_its_range_and_the_next_quote_in_sequence_closes_it() -> None:
    c = checks()
    c.check(0, "EQ", 1, 99.0, 101.0, 1)
    assert c.check(0, "EQ", 5, 99.0, 101.0, 2) == Verdict.APPLY  # the newest price is still applied
    (ep,) = c.open_episodes().values()
    assert ep.type == "quote_gap" and ep.id == "quote_gap:EQ:2-4"
    assert ep.details["missing_from"] == 2 and ep.details["missing_to"] == 4 and ep.details["missing"] == 3
    assert c.flags[0] & PriceFlag.GAP
    c.check(0, "EQ", 6, 99.0, 101.0, 3)
    assert not c.open_episodes() and c.flags[0] == 0
    (closed,) = c.drain_closed()
    assert closed.id == ep.id and closed.details["resumed_at_seq"] == 6


def test_crossed_and_non_positive_quotes_are_rejected_until_a_valid_one_arrives() -> None:
    c = checks()
    c.check(0, "EQ", 1, 99.0, 101.0, 1)
    assert c.check(0, "EQ", 2, 102.0, 101.0, 2) == Verdict.REJECTED
    assert c.check(0, "EQ", 3, 0.0, 101.0, 3) == Verdict.REJECTED  # same episode, not a new one
    (ep,) = c.open_episodes().values()
    assert ep.id == "quote_crossed:EQ:2" and c.flags[0] & PriceFlag.CROSSED
    assert c.check(0, "EQ", 4, 99.5, 100.5, 4) == Verdict.APPLY  # consumed seqs: no gap
    assert not c.open_episodes() and [e.id for e in c.drain_closed()] == ["quote_crossed:EQ:2"]


def test_a_quote_from_the_future_is_rejected_until_one_with_a_sane_ts_arrives() -> None:
    c = checks()
    c.check(0, "EQ", 1, 99.0, 101.0, 1_000)
    # stamped a day ahead of the clock (received at 2,000): refused, its seq consumed
    assert c.check(0, "EQ", 2, 99.0, 101.0, 2_000, ahead_ms=86_400_000) == Verdict.REJECTED
    assert c.check(0, "EQ", 3, 99.0, 101.0, 3_000, ahead_ms=86_400_000) == Verdict.REJECTED  # one episode
    (ep,) = c.open_episodes().values()
    assert (ep.id, ep.since_ms) == ("clock_skew:EQ:2", 2_000)  # fired when received, not in the future
    assert ep.details == {"seq": 2, "quote_ts": 86_402_000, "ahead_ms": 86_400_000}
    assert c.flags[0] and not c.flags[0] & (PriceFlag.GAP | PriceFlag.CROSSED | PriceFlag.OUTLIER)
    idx, seq = np.array([0]), np.array([4])
    assert not c.routine(idx, seq, np.array([99.0]), np.array([101.0])).any()  # open: quote by quote
    assert c.check(0, "EQ", 4, 99.0, 101.0, 4_000) == Verdict.APPLY  # no gap: seqs 2, 3 were seen
    assert not c.open_episodes() and c.flags[0] == 0
    (closed,) = c.drain_closed()
    assert closed.details["resumed_at_seq"] == 4
    future = np.array([True])
    assert not c.routine(idx, np.array([5]), np.array([99.0]), np.array([101.0]), future).any()


def test_an_outlier_is_held_until_the_next_quote_confirms_it_or_returns() -> None:
    c = checks()
    c.check(0, "EQ", 1, 99.0, 101.0, 1)
    assert c.check(0, "EQ", 2, 129.0, 131.0, 2) == Verdict.HELD  # +30 %
    assert c.flags[0] & PriceFlag.OUTLIER and c.mid[0] == 100.0
    assert c.check(0, "EQ", 3, 128.0, 130.0, 3) == Verdict.APPLY  # confirms the new level
    assert c.mid[0] == 129.0 and c.flags[0] == 0
    assert c.drain_closed()[0].details["confirmed_at_seq"] == 3
    assert c.check(0, "EQ", 4, 59.0, 61.0, 4) == Verdict.HELD  # -53 %
    assert c.check(0, "EQ", 5, 128.0, 130.0, 5) == Verdict.APPLY  # back to the old level: a blip
    assert c.drain_closed()[0].details["reverted_at_seq"] == 5
    assert c.check(0, "EQ", 6, 10.0, 11.0, 6) == Verdict.HELD
    assert c.check(0, "EQ", 7, 300.0, 301.0, 7) == Verdict.HELD  # neither: the new one is held instead
    assert c.held[0] == 300.5 and len(c.open_episodes()) == 1


def test_a_per_instrument_threshold_overrides_the_default() -> None:
    c = checks()
    c.move[0] = 0.5
    c.check(0, "MICRO", 1, 9.9, 10.1, 1)
    assert c.check(0, "MICRO", 2, 13.9, 14.1, 2) == Verdict.APPLY  # +40 % is fine for this one


def test_restore_resumes_open_episodes_and_the_seen_seq() -> None:
    c = checks()
    c.check(0, "EQ", 1, 99.0, 101.0, 1)
    c.check(0, "EQ", 3, 99.0, 101.0, 2)
    (ep,) = c.open_episodes().values()
    d = checks()
    d.restore(0, 3, 100.0, math.nan, [ep])
    assert d.flags[0] & PriceFlag.GAP and d.check(0, "EQ", 3, 1.0, 2.0, 3) == Verdict.DUPLICATE
    d.check(0, "EQ", 4, 99.0, 101.0, 4)
    assert [e.id for e in d.drain_closed()] == [ep.id]


def test_seq_gaps_fill_one_by_one() -> None:
    g = SeqGaps()
    g.add(4, 6)
    assert not g.fill(7) and g.fill(5) and g.ranges == [[4, 4], [6, 6]] and g.missing == 2
    assert g.fill(4) and g.fill(6) and not g.ranges
    assert SeqGaps.from_json(SeqGaps([[1, 2]], {"X": 3}).to_json()) == SeqGaps([[1, 2]], {"X": 3})


def test_silence_counts_only_after_the_counter_moved_once() -> None:
    s = Silence()
    s.observe(0.0, 10)
    assert s.silent_for(100.0) == 0.0  # never seen moving: not "live before"
    s.observe(1.0, 12)
    s.observe(5.0, 12)
    assert s.silent_for(5.0) == 4.0
    s.observe(6.0, 13)
    assert s.silent_for(6.0) == 0.0


def test_windows_forget_old_counts() -> None:
    w = Window(10.0)
    w.add(0.0, 30)
    w.add(5.0, 30)
    assert w.total == 60 and w.expire(10.5) == 30
    inc = Increase(60.0)
    assert inc.observe(0.0, 100) == 0
    assert inc.observe(30.0, 150) == 50
    assert inc.observe(61.0, 155) == 55  # baseline: the newest sample at or before the window start
    assert inc.observe(95.0, 160) == 10  # now the sample at 30 s is that baseline
