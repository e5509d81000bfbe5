"""The latest price, sequence and age of every instrument (no I/O): applies quote batches to the book,
drops replays, raises the STALE flag on old prices."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from streamproc.core import Book, PriceFlag
from streamproc.core.types import F64, I64
from streamproc.state.store import StoredQuote


class Prices:
    """Per-instrument feed state next to the book's price vectors."""

    def __init__(self, book: Book, *, max_age_s: float) -> None:
        self.book = book
        self.default_max_age_s = max_age_s
        self.seq: I64 = np.zeros(0, dtype=np.int64)
        self.ts: I64 = np.zeros(0, dtype=np.int64)  # quote ts (ms), 0 = never quoted
        self.max_age_s: F64 = np.zeros(0)  # NaN = the default
        self.stale = np.zeros(0, dtype=bool)
        self.changed: set[int] = set()
        self.duplicates = 0

    def _sync(self) -> int:
        n = self.book.n_instruments
        have = len(self.seq)
        if n > have:
            extra = max(n, 2 * have, 64) - have
            self.seq = np.concatenate([self.seq, np.full(extra, -1, dtype=np.int64)])
            self.ts = np.concatenate([self.ts, np.zeros(extra, dtype=np.int64)])
            self.max_age_s = np.concatenate([self.max_age_s, np.full(extra, math.nan)])
            self.stale = np.concatenate([self.stale, np.zeros(extra, dtype=bool)])
        return n

    def restore(self, quotes: Mapping[str, StoredQuote]) -> None:
        """Start from stored quotes (the snapshot the feed resumes after)."""
        if quotes:
            self.accept(
                [
                    {"instrument": i, "bid": q.bid, "ask": q.ask, "seq": q.seq, "ts": q.ts}
                    for i, q in quotes.items()
                ]
            )

    def accept(self, docs: Iterable[Mapping[str, Any]]) -> dict[str, StoredQuote]:
        """Apply validated quotes in order; a seq at or below the last applied one is a replay (dropped,
        counted). Returns the newest accepted quote per instrument."""
        latest: dict[int, Mapping[str, Any]] = {}
        instrument = self.book.instrument
        self._sync()
        last = self.seq
        for doc in docs:
            idx = instrument(doc["instrument"])
            if idx >= len(last):
                self._sync()
                last = self.seq
            prev = latest.get(idx)
            seq = doc["seq"]
            if seq <= (prev["seq"] if prev is not None else last[idx]):
                self.duplicates += 1
                continue
            latest[idx] = doc
        if not latest:
            return {}
        idx = np.fromiter(latest, dtype=np.int64, count=len(latest))
        docs_ = list(latest.values())
        bid = np.array([float(d["bid"]) for d in docs_])
        ask = np.array([float(d["ask"]) for d in docs_])
        self.book.apply_prices(idx, bid, ask)
        self.seq[idx] = [d["seq"] for d in docs_]
        self.ts[idx] = [d["ts"] for d in docs_]
        self.changed.update(latest)
        return {
            d["instrument"]: StoredQuote(float(b), float(a), int(d["seq"]), int(d["ts"]))
            for d, b, a in zip(docs_, bid.tolist(), ask.tolist(), strict=True)
        }

    def set_reference(self, doc: Mapping[str, Any]) -> None:
        """Apply an instruments record: lot, tier, max quote age."""
        name = doc["instrument"]
        self.book.set_instrument(
            name,
            lot=float(doc["lot"]) if "lot" in doc else None,
            tier=doc.get("tier"),
        )
        self._sync()
        idx = self.book.instrument(name)
        self.max_age_s[idx] = float(doc["max_quote_age_s"]) if "max_quote_age_s" in doc else math.nan
        self.changed.add(idx)

    def refresh_stale(self, now_ms: int) -> int:
        """Raise or clear STALE where a quoted instrument's last quote is older than its max age;
        returns how many instruments changed state."""
        n = self._sync()
        ts = self.ts[:n]
        max_age = np.where(np.isnan(self.max_age_s[:n]), self.default_max_age_s, self.max_age_s[:n])
        stale = (ts > 0) & (now_ms - ts > max_age * 1000.0)
        flip = np.flatnonzero(stale != self.stale[:n])
        if flip.size:
            on = flip[stale[flip]]
            off = flip[~stale[flip]]
            self.book.set_flag(on, PriceFlag.STALE, True)
            self.book.set_flag(off, PriceFlag.STALE, False)
            self.stale[:n] = stale
            self.changed.update(flip.tolist())
        return int(flip.size)

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
