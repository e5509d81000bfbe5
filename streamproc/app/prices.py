"""The latest price, sequence and age of every instrument (no I/O): runs the feed checks on quote batches,
applies the good quotes to the book, raises STALE / GAP / CROSSED / OUTLIER flags and reports episodes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from streamproc.app.venues import Venues
from streamproc.core import Book, PriceFlag
from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.core.gaps import QuoteChecks, Verdict
from streamproc.core.sessions import ALWAYS, CLOSED, Calendar
from streamproc.core.types import F64, I64, Bool
from streamproc.state.records import StoredQuote, episode_doc, episode_from
from streamproc.wire.quotes import QuoteColumns

_CHECK_FLAGS = (PriceFlag.GAP, PriceFlag.CROSSED, PriceFlag.OUTLIER)


class Prices:
    """Per-instrument feed state next to the book's price vectors."""

    def __init__(
        self,
        book: Book,
        *,
        max_age_s: float,
        outlier_move: float = 0.2,
        max_age_by_tier: Mapping[str, float] | None = None,
        outlier_by_tier: Mapping[str, float] | None = None,
        max_skew_s: float = math.inf,
        calendars: Callable[[str, int], Calendar] | None = None,
        opening_delay_s: float = 0.0,
        opening_delay_by_tier: Mapping[str, float] | None = None,
    ) -> None:
        self.book = book
        self.venues = Venues(calendars, opening_delay_s, opening_delay_by_tier)
        self.closed = np.zeros(0, dtype=bool)  # CLOSED set: between sessions, or before the first quote
        self.max_skew_ms = max_skew_s * 1000.0  # a quote stamped further ahead of the clock is rejected
        self.default_max_age_s = max_age_s
        self.max_age_by_tier = dict(max_age_by_tier or {})
        self.outlier_by_tier = dict(outlier_by_tier or {})
        self.checks = QuoteChecks(outlier_move)
        self.seq: I64 = np.zeros(0, dtype=np.int64)  # seq of the applied quote
        self.ts: I64 = np.zeros(0, dtype=np.int64)  # quote ts (ms) of the applied quote, 0 = never
        self.max_age_s: F64 = np.zeros(0)  # NaN = the default
        self.stale = np.zeros(0, dtype=bool)
        self.changed: set[int] = set()

    @property
    def duplicates(self) -> int:
        """Quotes dropped because their seq was at or below the last one seen."""
        return self.checks.duplicates

    def _sync(self) -> int:
        n = self.book.n_instruments
        have = len(self.seq)
        if n > have:
            extra = max(n, 2 * have, 64) - have
            self.seq = np.concatenate([self.seq, np.full(extra, -1, dtype=np.int64)])
            self.ts = np.concatenate([self.ts, np.zeros(extra, dtype=np.int64)])
            self.max_age_s = np.concatenate([self.max_age_s, np.full(extra, math.nan)])
            self.stale = np.concatenate([self.stale, np.zeros(extra, dtype=bool)])
            self.closed = np.concatenate([self.closed, np.zeros(extra, dtype=bool)])
            self.venues.grow(extra)
        self.checks.grow(n)
        return n

    def restore(self, quotes: Mapping[str, StoredQuote]) -> None:
        """Start from stored feed state (the snapshot the feed resumes after)."""
        applied = {i: q for i, q in quotes.items() if not math.isnan(q.bid)}
        idx = self.book.instrument_indices(applied)
        self._sync()
        if applied:
            self.book.apply_prices(
                idx, np.array([q.bid for q in applied.values()]), np.array([q.ask for q in applied.values()])
            )
            self.seq[idx] = [q.seq for q in applied.values()]
            self.ts[idx] = [q.ts for q in applied.values()]
            sizes = [(q.bid_size, q.ask_size) for q in applied.values()]
            self.book.apply_sizes(idx, np.array([b for b, _ in sizes]), np.array([a for _, a in sizes]))
        for name, q in quotes.items():
            i = self.book.instrument(name)
            self._sync()
            mid = (q.bid + q.ask) * 0.5 if not math.isnan(q.bid) else math.nan
            self.checks.restore(i, q.seen, mid, q.held, [episode_from(e) for e in q.episodes])
            self._sync_flags(np.array([i]))
            self.changed.add(i)

    def accept(self, docs: Iterable[Mapping[str, Any]]) -> dict[int, str]:
        """Run the checks on decoded quote documents in arrival order (see ``accept_columns``); returns
        every instrument in the batch (index -> id)."""
        cols = QuoteColumns.of(list(docs))
        idx = self.book.instrument_indices(cols.instrument)
        self.accept_columns(idx, cols.seq, cols.bid, cols.ask, cols.ts, sizes=cols.sizes)
        names = self.book.instruments
        return {i: names.id_of(i) for i in idx.tolist()}

    def future(self, ts: I64, now_ms: int) -> Bool:
        """Which quote timestamps are further ahead of ``now_ms`` than the clock-skew allowance."""
        out: Bool = ts - now_ms > self.max_skew_ms
        return out

    def accept_columns(
        self,
        idx: I64,
        seq: I64,
        bid: F64,
        ask: F64,
        ts: I64,
        now_ms: int | None = None,
        sizes: tuple[F64, F64] | None = None,
    ) -> I64:
        """Run the checks on a batch of quotes in arrival order (``idx`` from ``book.instrument``) and
        apply the good ones, the newest per instrument. Instruments whose quotes are all routine are
        checked and applied in a few numpy operations; the others quote by quote. Returns the unique
        instruments of the batch, duplicates included: after a re-read from older offsets the stored
        state must be as new as the offsets stored with it (``snapshot``).

        With ``now_ms`` (when the batch was received): a quote stamped beyond the clock-skew allowance
        is rejected (``clock_skew``), and a quote's age counts from the earlier of its ts and now, so a
        clock running ahead cannot keep a price fresh. ``sizes``: the quotes' displayed (bid, ask) sizes
        (NaN: not given), kept with the price they came with."""
        self._sync()
        if idx.size == 0:
            return idx
        checks = self.checks
        future = ahead = None
        if now_ms is not None:
            ahead = ts - now_ms
            future = self.future(ts, now_ms)
            ts = np.minimum(ts, now_ms)
            if not future.any():
                future = None
        routine = checks.routine(idx, seq, bid, ask, future)
        touched: list[int] = []
        rows = np.arange(idx.size)
        if not routine.all():
            rows = rows[routine]
            skew = None if future is None or ahead is None else np.where(future, ahead, 0)
            touched = self._check_one_by_one(np.flatnonzero(~routine), idx, seq, bid, ask, ts, skew, sizes)
        if rows.size:
            # the newest routine quote of each instrument: first occurrence in the reversed batch
            uniq, first_rev = np.unique(idx[rows][::-1], return_index=True)
            last = rows[rows.size - 1 - first_rev]
            checks.apply_routine(uniq, seq[last], (bid[last] + ask[last]) * 0.5)
            self._apply(uniq, last, seq, bid, ask, ts, sizes)
            self.changed.update(uniq.tolist())
        if touched:
            self.changed.update(touched)
            self._sync_flags(np.array(touched, dtype=np.int64))
        return np.unique(idx)

    def _check_one_by_one(
        self,
        rows: I64,
        idx: I64,
        seq: I64,
        bid: F64,
        ask: F64,
        ts: I64,
        skew: I64 | None = None,
        sizes: tuple[F64, F64] | None = None,
    ) -> list[int]:
        """The per-quote checks for the quotes at ``rows`` (arrival order); applies the newest good quote
        per instrument and returns the instruments touched (not only duplicates). ``skew``: per quote,
        how far (ms) a quote stamped beyond the allowance is ahead of the clock, else 0."""
        latest: dict[int, int] = {}
        touched: set[int] = set()
        names = self.book.instruments
        check = self.checks.check
        for k in rows.tolist():
            i = int(idx[k])
            ahead = 0 if skew is None else int(skew[k])
            verdict = check(i, names.id_of(i), int(seq[k]), float(bid[k]), float(ask[k]), int(ts[k]), ahead)
            if verdict == Verdict.DUPLICATE:
                continue
            touched.add(i)
            if verdict == Verdict.APPLY:
                latest[i] = k
        if latest:
            at = np.fromiter(latest.values(), dtype=np.int64, count=len(latest))
            self._apply(idx[at], at, seq, bid, ask, ts, sizes)
        return sorted(touched)

    def _apply(
        self, idx: I64, at: I64, seq: I64, bid: F64, ask: F64, ts: I64, sizes: tuple[F64, F64] | None
    ) -> None:
        """Apply the quotes at rows ``at`` of the batch columns to the instruments ``idx``."""
        self.book.apply_prices(idx, bid[at], ask[at])
        if sizes is not None:
            self.book.apply_sizes(idx, sizes[0][at], sizes[1][at])
        else:
            self.book.apply_sizes(idx, np.full(idx.size, np.nan), np.full(idx.size, np.nan))
        self.seq[idx] = seq[at]
        self.ts[idx] = ts[at]

    def snapshot(self, instruments: Iterable[int]) -> dict[str, StoredQuote]:
        """The feed state of instruments as stored in Redis (only the owner of their partition stores)."""
        names = self.book.instruments
        return {names.id_of(i): self.stored(i) for i in instruments}

    def _sync_flags(self, idx: I64) -> None:
        flags = self.checks.flags[idx]
        for flag in _CHECK_FLAGS:
            on = (flags & np.uint8(flag)) != 0
            self.book.set_flag(idx[on], flag, True)
            self.book.set_flag(idx[~on], flag, False)

    def stored(self, i: int) -> StoredQuote:
        """Instrument ``i``'s feed state as stored in Redis."""
        name = self.book.instruments.id_of(i)
        bid, ask, _flags = self.book.price(name)
        bid_size, ask_size = self.book.sizes(name)
        applied = int(self.ts[i]) > 0
        return StoredQuote(
            bid=bid if applied else math.nan,
            ask=ask if applied else math.nan,
            seq=int(self.seq[i]),
            ts=int(self.ts[i]),
            seen=int(self.checks.seen[i]),
            held=float(self.checks.held[i]),
            episodes=tuple(episode_doc(ep) for ep in self.checks.open.get(i, {}).values()),
            bid_size=bid_size,
            ask_size=ask_size,
            calendar=self.venues.name(i),
        )

    def set_reference(self, doc: Mapping[str, Any], now_ms: int = 0) -> str | None:
        """Apply an instruments record: lot, tier, calendar, max quote age (own, else its tier's, else
        the default); returns why it cannot be applied (a tier the limits do not declare, a calendar
        nobody knows: no silent default)."""
        name = doc["instrument"]
        calendar = self.venues.calendar(str(doc.get("calendar") or ALWAYS), now_ms)
        if isinstance(calendar, str):
            return f"{name}: {calendar}"
        tier = doc.get("tier")
        if tier is not None:
            declared = self.book.limits.tier_of(tier)
            if declared is None:
                limits = self.book.limits
                return (
                    f"tier {tier!r} of {name} is not a declared tier ({', '.join(limits.tiers)}; from "
                    f"{limits.source}): declare it in the limits file or correct the reference data"
                )
            tier = declared
        self.book.set_instrument(name, lot=float(doc["lot"]) if "lot" in doc else None, tier=tier)
        self._sync()
        idx = self.book.instrument(name)
        self.venues.set(idx, calendar, tier)
        if "max_quote_age_s" in doc:
            self.max_age_s[idx] = float(doc["max_quote_age_s"])
        else:
            self.max_age_s[idx] = self.max_age_by_tier.get(tier, math.nan) if tier else math.nan
        self.checks.move[idx] = self.outlier_by_tier.get(tier, math.nan) if tier else math.nan
        self.changed.add(idx)
        return None

    def session_line(self, idx: int, now_ms: int) -> str:
        """Instrument ``idx``'s session now, for people (``XNYS, opens 2026-12-04T14:30Z``)."""
        return self.venues.line(idx, int(self.ts[idx]) if idx < len(self.ts) else 0, now_ms)

    def max_ages(self, n: int) -> F64:
        """Max quote age (s) of the first ``n`` instruments."""
        out: F64 = np.where(np.isnan(self.max_age_s[:n]), self.default_max_age_s, self.max_age_s[:n])
        return out

    def refresh_stale(self, now_ms: int) -> int:
        """Raise or clear STALE where a quoted instrument's last quote is older than its max age;
        returns how many instruments changed state. Between sessions an instrument is CLOSED, not STALE."""
        n = self._sync()
        self.venues.renew(now_ms)
        ts = self.ts[:n]
        since = self.venues.open_since(n, now_ms)
        shut = since == CLOSED
        # a price ages in session time: from the later of its quote and its session's open ...
        stale = (ts > 0) & ~shut & (now_ms - np.maximum(ts, since) > self.max_ages(n) * 1000.0)
        # ... and one from an earlier session is not traded on: closed until the session's first quote,
        # and until the opening delay has passed (the auction's prices are not traded on)
        waiting = ~shut & (since > 0) & (now_ms < since + self.venues.delays_ms(n))
        closed = shut | waiting | ((ts > 0) & (ts < since) & ~stale)
        # the first quote after a break is a new level, not an outlier against the last session's
        self.checks.mid[:n][closed] = math.nan
        turned = np.flatnonzero(closed != self.closed[:n])
        if turned.size:
            # a gap, crossed or held quote open at the close ends with the session, as staleness would
            # end it intraday: nothing more is expected until the open
            ending = [
                i for i in turned[closed[turned]].tolist() if self.checks.close_all(i, superseded_by="closed")
            ]
            if ending:
                self._sync_flags(np.array(ending, dtype=np.int64))
            self.book.set_flag(turned[closed[turned]], PriceFlag.CLOSED, True)
            self.book.set_flag(turned[~closed[turned]], PriceFlag.CLOSED, False)
            self.closed[:n] = closed
            self.changed.update(turned.tolist())
        flip = np.flatnonzero(stale != self.stale[:n])
        if flip.size:
            on = flip[stale[flip]]
            off = flip[~stale[flip]]
            # a gap, crossed or held quote followed by silence would otherwise stay open until the next
            # quote (tomorrow, after a halt): staleness takes over the suppression and the alerting
            ended = [i for i in on.tolist() if self.checks.close_all(i, superseded_by="quote_stale")]
            if ended:
                self._sync_flags(np.array(ended, dtype=np.int64))
            self.book.set_flag(on, PriceFlag.STALE, True)
            self.book.set_flag(off, PriceFlag.STALE, False)
            self.stale[:n] = stale
            self.changed.update(flip.tolist())
        return int(flip.size)

    def stale_episodes(
        self, referenced: Bool, now_ms: int, missing_after_ms: int | None
    ) -> dict[Key, Episode]:
        """``quote_stale`` episodes of referenced instruments: stale ones, and never-quoted ones once the
        feed has been caught up for longer than their max age (``missing_after_ms``: when it caught up)."""
        n = self._sync()
        ref = np.zeros(n, dtype=bool)
        m = min(n, len(referenced))
        ref[:m] = referenced[:m]
        ages = self.max_ages(n)
        hits = self.stale[:n] & ref
        opened = self.venues.open_since(n, now_ms)
        if missing_after_ms is not None:
            waited = now_ms - np.maximum(missing_after_ms, opened)  # in session time, as an age
            hits |= ref & (self.ts[:n] == 0) & (opened != CLOSED) & (waited > ages * 1000.0)
        out: dict[Key, Episode] = {}
        names = self.book.instruments
        for i in np.flatnonzero(hits).tolist():
            name = names.id_of(i)
            subject = ("instrument", name)
            last = int(self.ts[i])
            details = {
                "last_quote_ts": last or None,
                "last_seq": int(self.seq[i]) if last else None,
                "max_age_s": float(ages[i]),
            }
            since = max(last, int(opened[i])) + int(ages[i] * 1000) if last else now_ms
            # a silence that spans a close is a new episode in the next session (its own id)
            mark = (f"{last}@{int(opened[i])}" if opened[i] > last else last) if last else "never"
            ep = Episode("quote_stale", subject, episode_id("quote_stale", subject, mark), since, details)
            out[ep.key] = ep
        return out

    def market_open_since(self, referenced: Bool, now_ms: int) -> int | None:
        """Since when the referenced instruments' feed should be quoting (``Venues.due_since``)."""
        m = min(self._sync(), len(referenced))
        return self.venues.due_since(referenced[:m], now_ms)

    def never_quoted(self, name: str) -> bool:
        """Whether no quote of the instrument was ever applied (here or in the stored state)."""
        idx = self.book.instruments.get(name)
        return idx is None or idx >= len(self.ts) or int(self.ts[idx]) == 0

    def drain_changed(self) -> I64:
        """Instruments whose price or flags changed since the last call."""
        out = np.fromiter(self.changed, dtype=np.int64, count=len(self.changed))
        self.changed.clear()
        return out

    def newest_ts(self, instruments: I64) -> I64:
        """Per row of an instruments slot array (-1 = empty), the newest quote ts among them."""
        self._sync()
        ts = np.where(instruments >= 0, self.ts[np.maximum(instruments, 0)], 0)
        out: I64 = ts.max(axis=1) if ts.size else np.zeros(len(instruments), dtype=np.int64)
        return out
