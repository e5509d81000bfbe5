"""The batched quote path (routine instruments in a few numpy operations) ends in exactly the state the
per-quote checks reach, whatever the mix of duplicates, gaps, crossed quotes and outliers."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.app.prices import Prices
from streamproc.core import Book

NAMES = ("EQ", "BOND", "MICRO")


def _prices() -> Prices:
    prices = Prices(Book(), max_age_s=30.0, outlier_move=0.2)
    for name in NAMES:
        prices.book.instrument(name)
    prices.set_reference({"instrument": "MICRO", "tier": "micro"})
    prices.outlier_by_tier["micro"] = 0.5
    prices.set_reference({"instrument": "MICRO", "tier": "micro"})
    return prices


def _one_by_one(prices: Prices, idx, seq, bid, ask, ts) -> None:  # type: ignore[no-untyped-def]
    """The reference: every quote through ``QuoteChecks.check``."""
    prices._sync()
    touched = prices._check_one_by_one(np.arange(idx.size), idx, seq, bid, ask, ts)
    prices.changed.update(touched)
    if touched:
        prices._sync_flags(np.array(touched, dtype=np.int64))


def _state(prices: Prices) -> tuple[object, ...]:
    n = prices.book.n_instruments
    c = prices.checks
    book = [prices.book.price(name) for name in NAMES]
    episodes = sorted((ep.id, sorted(ep.details.items())) for ep in c.open_episodes().values())
    closed = [(ep.id, sorted(ep.details.items())) for ep in c.closed]
    return (
        prices.seq[:n].tolist(),
        prices.ts[:n].tolist(),
        c.seen[:n].tolist(),
        [x if not math.isnan(x) else None for x in c.mid[:n].tolist()],
        [x if not math.isnan(x) else None for x in c.held[:n].tolist()],
        c.flags[:n].tolist(),
        [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in p) for p in book],
        episodes,
        closed,
        c.duplicates,
        sorted(prices.changed),
    )


# one quote: (instrument, seq step, mid move, kind); most quotes are routine, as in a real feed
_quote = st.tuples(
    st.integers(0, len(NAMES) - 1),
    st.sampled_from([1, 1, 1, 1, 1, 1, 0, -1, 3]),
    st.sampled_from([0.0, 0.001, -0.002, 0.01, 0.3, -0.35, 0.6]),
    st.sampled_from(["ok", "ok", "ok", "ok", "crossed", "zero"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_quote, max_size=12), min_size=1, max_size=6))
def test_batched_checks_match_the_per_quote_checks(batches: list[list[tuple[int, int, float, str]]]) -> None:
    fast, slow = _prices(), _prices()
    seq = [0] * len(NAMES)
    mid = [100.0, 50.0, 5.0]
    ts = 1_000
    for batch in batches:
        rows = []
        for i, step, move, kind in batch:
            seq[i] = max(0, seq[i] + step)
            mid[i] = max(0.01, mid[i] * (1 + move))
            bid, ask = mid[i] * 0.999, mid[i] * 1.001
            if kind == "crossed":
                bid, ask = ask, bid
            elif kind == "zero":
                bid = 0.0
            ts += 1
            rows.append((i, seq[i], bid, ask, ts))
        cols = (
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.float64),
            np.array([r[3] for r in rows], dtype=np.float64),
            np.array([r[4] for r in rows], dtype=np.int64),
        )
        fast.accept_columns(*cols)
        _one_by_one(slow, *cols)
        assert _state(fast) == _state(slow)


def test_a_routine_batch_applies_the_newest_quote_of_each_instrument() -> None:
    prices = _prices()
    idx = np.array([0, 1, 0, 0, 1], dtype=np.int64)
    seq = np.array([1, 1, 2, 3, 2], dtype=np.int64)
    bid = np.array([100.0, 50.0, 101.0, 102.0, 51.0])
    ask = bid + 0.02
    ts = np.arange(5, dtype=np.int64) + 10
    assert prices.checks.routine(idx, seq, bid, ask).all()
    unique = prices.accept_columns(idx, seq, bid, ask, ts)
    assert unique.tolist() == [0, 1]
    assert prices.book.price("EQ")[:2] == (102.0, 102.02)
    assert prices.book.price("BOND")[:2] == (51.0, 51.02)
    assert prices.seq[:2].tolist() == [3, 2] and prices.ts[:2].tolist() == [13, 14]


def test_one_gap_sends_only_its_instrument_through_the_per_quote_checks() -> None:
    prices = _prices()
    prices.accept_columns(*(np.array(v) for v in ([0, 1], [1, 1], [100.0, 50.0], [100.1, 50.1], [1, 1])))
    idx = np.array([0, 1, 0], dtype=np.int64)
    seq = np.array([2, 5, 3], dtype=np.int64)  # BOND skips 2..4
    bid = np.array([100.0, 50.0, 100.0])
    routine = prices.checks.routine(idx, seq, bid, bid + 0.1)
    assert routine.tolist() == [True, False, True]
    prices.accept_columns(idx, seq, bid, bid + 0.1, np.array([2, 2, 3]))
    assert [ep.id for ep in prices.checks.open_episodes().values()] == ["quote_gap:BOND:2-4"]
