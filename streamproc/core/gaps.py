"""Data-gap detectors (pure logic, no I/O): quote sequence, crossed and outlier checks per instrument,
missing position sequence numbers per account, input-topic silence, and rate windows."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

import numpy as np

from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.core.types import F64, I64, U8, Bool, PriceFlag

# clock_skew is not a price flag: the quote is not applied and the last good one ages toward stale as
# it would without it; the bit (outside PriceFlag's) keeps the instrument off the routine path until
# a quote with a sane ts ends the episode
_SKEW = 0x40
_FLAG_OF = {
    "quote_gap": PriceFlag.GAP,
    "quote_crossed": PriceFlag.CROSSED,
    "quote_outlier": PriceFlag.OUTLIER,
    "clock_skew": _SKEW,
}


class Verdict(IntEnum):
    """What to do with one quote."""

    APPLY = 0
    DUPLICATE = 1  # seq at or below the last one seen: dropped, counted
    REJECTED = 2  # crossed, non-positive or stamped in the future: not applied
    HELD = 3  # an outlier move: not applied until the next quote confirms it


class QuoteChecks:
    """Per-instrument feed checks over the quotes of one stream, in arrival order. Open episodes set the
    instrument's GAP, CROSSED or OUTLIER flag; each ends with a later good quote:
    a gap with the next quote in sequence, a crossed quote with the next valid one, an outlier when the
    next quote confirms the new level or returns to the old one."""

    def __init__(self, outlier_move: float) -> None:
        self.default_move = outlier_move
        self.seen: I64 = np.zeros(0, dtype=np.int64)  # last seq seen, applied or not; -1 none
        self.mid: F64 = np.zeros(0)  # last applied mid, NaN none
        self.held: F64 = np.zeros(0)  # mid of the outlier quote held, NaN none
        self.move: F64 = np.zeros(0)  # per-instrument outlier threshold, NaN = default
        self.flags: U8 = np.zeros(0, dtype=np.uint8)  # GAP | CROSSED | OUTLIER
        self.open: dict[int, dict[str, Episode]] = {}
        self.closed: list[Episode] = []
        self.duplicates = 0

    def grow(self, n: int) -> None:
        """Make room for instrument indices below ``n``."""
        have = len(self.seen)
        if n <= have:
            return
        extra = max(n, 2 * have, 64) - have
        self.seen = np.concatenate([self.seen, np.full(extra, -1, dtype=np.int64)])
        self.mid = np.concatenate([self.mid, np.full(extra, math.nan)])
        self.held = np.concatenate([self.held, np.full(extra, math.nan)])
        self.move = np.concatenate([self.move, np.full(extra, math.nan)])
        self.flags = np.concatenate([self.flags, np.zeros(extra, dtype=np.uint8)])

    def threshold(self, idx: int) -> float:
        """Relative mid move beyond which a quote is held."""
        m = float(self.move[idx])
        return self.default_move if math.isnan(m) else m

    def _open(self, idx: int, ep: Episode) -> None:
        self.open.setdefault(idx, {})[ep.type] = ep
        self.flags[idx] |= np.uint8(_FLAG_OF[ep.type])

    def _close(self, idx: int, type_: str, **resolution: Any) -> None:
        eps = self.open.get(idx)
        ep = eps.pop(type_, None) if eps else None
        if ep is None:
            return
        if not eps:
            del self.open[idx]
        self.flags[idx] &= np.uint8(~_FLAG_OF[type_] & 0xFF)
        self.closed.append(replace(ep, details={**ep.details, **resolution}))

    def check(
        self, idx: int, name: str, seq: int, bid: float, ask: float, ts: int, ahead_ms: int = 0
    ) -> Verdict:
        """Judge one quote of instrument ``idx`` (called in arrival order; ``grow`` first). ``ts`` is the
        quote's, or when it was received if that is earlier; ``ahead_ms`` > 0: the quote is stamped that
        far ahead of the clock, beyond the allowance (rejected, ``clock_skew``)."""
        last = int(self.seen[idx])
        if seq <= last:
            self.duplicates += 1
            return Verdict.DUPLICATE
        subject = ("instrument", name)
        flags = int(self.flags[idx])
        details: dict[str, Any]
        if last >= 0 and seq > last + 1:
            self._close(idx, "quote_gap", superseded_by_seq=seq)
            lo, hi = last + 1, seq - 1
            details = {"missing_from": lo, "missing_to": hi, "missing": hi - lo + 1, "seq": seq}
            gap_id = episode_id("quote_gap", subject, f"{lo}-{hi}")
            self._open(idx, Episode("quote_gap", subject, gap_id, ts, details))
        elif flags & PriceFlag.GAP:
            self._close(idx, "quote_gap", resumed_at_seq=seq)
        self.seen[idx] = seq
        if ahead_ms > 0:
            if not flags & _SKEW:
                skew_id = episode_id("clock_skew", subject, seq)
                details = {"seq": seq, "quote_ts": ts + ahead_ms, "ahead_ms": ahead_ms}
                self._open(idx, Episode("clock_skew", subject, skew_id, ts, details))
            return Verdict.REJECTED
        if flags & _SKEW:
            self._close(idx, "clock_skew", resumed_at_seq=seq)
        if not (bid > 0.0 and ask > 0.0 and bid <= ask):
            if not flags & PriceFlag.CROSSED:
                crossed_id = episode_id("quote_crossed", subject, seq)
                details = {"seq": seq, "bid": bid, "ask": ask}
                self._open(idx, Episode("quote_crossed", subject, crossed_id, ts, details))
            return Verdict.REJECTED
        if flags & PriceFlag.CROSSED:
            self._close(idx, "quote_crossed", resumed_at_seq=seq)
        mid = (bid + ask) * 0.5
        last_mid = float(self.mid[idx])
        limit = self.threshold(idx)
        if flags & PriceFlag.OUTLIER:
            held = float(self.held[idx])
            if abs(mid / held - 1.0) <= limit:
                self._close(idx, "quote_outlier", confirmed_at_seq=seq)
            elif abs(mid / last_mid - 1.0) <= limit:
                self._close(idx, "quote_outlier", reverted_at_seq=seq)
            else:
                self.held[idx] = mid
                return Verdict.HELD
            self.held[idx] = math.nan
        elif not math.isnan(last_mid) and abs(mid / last_mid - 1.0) > limit:
            self.held[idx] = mid
            details = {
                "seq": seq,
                "last_mid": last_mid,
                "mid": mid,
                "move": round(mid / last_mid - 1.0, 6),
                "threshold": limit,
            }
            self._open(
                idx, Episode("quote_outlier", subject, episode_id("quote_outlier", subject, seq), ts, details)
            )
            return Verdict.HELD
        self.mid[idx] = mid
        return Verdict.APPLY

    def routine(self, idx: I64, seq: I64, bid: F64, ask: F64, future: Bool | None = None) -> Bool:
        """Per quote of a batch (arrival order): whether every quote of its instrument in the batch is
        routine, i.e. ``check`` would APPLY each without opening or closing anything (in sequence, valid,
        within the outlier threshold, nothing open), so the batch can skip the per-quote checks
        (``apply_routine``). The rest go through ``check``; instruments are independent of each other.
        ``future``: quotes stamped beyond the clock's allowance (never routine)."""
        n = len(idx)
        if n == 0:
            return np.zeros(0, dtype=bool)
        order = np.argsort(idx, kind="stable")
        s_idx, s_seq = idx[order], seq[order]
        s_bid, s_ask = bid[order], ask[order]
        s_mid = (s_bid + s_ask) * 0.5
        first = np.ones(n, dtype=bool)
        first[1:] = s_idx[1:] != s_idx[:-1]
        seen = self.seen[s_idx]
        prev_seq = np.where(first, seen, np.concatenate(([0], s_seq[:-1])))
        prev_mid = np.where(first, self.mid[s_idx], np.concatenate(([math.nan], s_mid[:-1])))
        move = self.move[s_idx]
        limit = np.where(np.isnan(move), self.default_move, move)
        with np.errstate(invalid="ignore", divide="ignore"):
            within = np.isnan(prev_mid) | (np.abs(s_mid / prev_mid - 1.0) <= limit)
        ok = (
            ((s_seq == prev_seq + 1) | (first & (seen < 0) & (s_seq >= 0)))
            & (s_bid > 0.0)
            & (s_ask > 0.0)
            & (s_bid <= s_ask)
            & within
            & (self.flags[s_idx] == 0)
            & np.isnan(self.held[s_idx])
        )
        if future is not None:
            ok &= ~future[order]
        if ok.all():
            return np.ones(n, dtype=bool)
        return ~np.isin(idx, s_idx[~ok])

    def apply_routine(self, idx: I64, seq: I64, mid: F64) -> None:
        """Record the last routine quote of each instrument (unique ``idx``) as ``check`` would have."""
        self.seen[idx] = seq
        self.mid[idx] = mid

    def close_all(self, idx: int, **resolution: Any) -> bool:
        """End every open episode of ``idx`` (it went stale: that alert takes over); True if any."""
        types = list(self.open.get(idx, {}))
        for type_ in types:
            self._close(idx, type_, **resolution)
        self.held[idx] = math.nan
        return bool(types)

    def drain_closed(self) -> list[Episode]:
        """Episodes that ended since the last call."""
        out, self.closed = self.closed, []
        return out

    def open_episodes(self) -> dict[Key, Episode]:
        """Ongoing episodes by alert key."""
        return {ep.key: ep for eps in self.open.values() for ep in eps.values()}

    def restore(self, idx: int, seen: int, mid: float, held: float, episodes: Iterable[Episode]) -> None:
        """Resume from a stored state (``grow`` first)."""
        self.seen[idx], self.mid[idx], self.held[idx] = seen, mid, held
        self.flags[idx] = 0
        self.open.pop(idx, None)
        for ep in episodes:
            self._open(idx, ep)


@dataclass(slots=True)
class SeqGaps:
    """Missing sequence numbers of one stream, as inclusive ranges, with the newest seq per item seen
    since the first gap (so a late record does not overwrite a newer one)."""

    ranges: list[list[int]] = field(default_factory=list)
    newest: dict[str, int] = field(default_factory=dict)  # item -> seq applied since the gap opened
    opened_ms: int = 0  # wall clock when the first gap was detected (timeouts count from it)

    def add(self, lo: int, hi: int) -> None:
        """Record ``lo..hi`` as missing."""
        self.ranges.append([lo, hi])

    def fill(self, seq: int) -> bool:
        """Take ``seq`` out of the missing ranges; False if it was not missing."""
        for k, (lo, hi) in enumerate(self.ranges):
            if lo <= seq <= hi:
                parts = [r for r in ([lo, seq - 1], [seq + 1, hi]) if r[0] <= r[1]]
                self.ranges[k : k + 1] = parts
                return True
        return False

    @property
    def missing(self) -> int:
        """How many sequence numbers are missing."""
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def to_json(self) -> dict[str, Any]:
        """Stored form."""
        return {"ranges": self.ranges, "newest": self.newest, "opened_ms": self.opened_ms}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SeqGaps:
        """From the stored form."""
        return cls(
            [list(r) for r in doc.get("ranges", [])],
            dict(doc.get("newest", {})),
            int(doc.get("opened_ms", 0)),
        )


@dataclass(slots=True)
class Silence:
    """Whether a counter (a topic's summed end offsets) has stopped moving after it moved before."""

    value: int = -1
    changed_at: float = math.nan  # when it last moved (NaN: not seen moving yet)
    quiet_since: float = math.nan  # wall time of the first sample at ``value``

    def observe(self, now: float, value: int) -> None:
        """A new sample."""
        if value != self.value:
            if self.value >= 0:
                self.changed_at = now
            self.value, self.quiet_since = value, now

    def seed(self, value: int, changed_at: float) -> None:
        """Resume from an announced silence (after a restart the first sample must not reset it)."""
        self.value, self.changed_at, self.quiet_since = value, changed_at, changed_at

    def silent_for(self, now: float) -> float:
        """Seconds since it last moved; 0 while it moves or has never been seen moving."""
        return 0.0 if math.isnan(self.changed_at) else now - self.quiet_since


class Window:
    """Counts in a sliding time window."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, now: float, count: int) -> None:
        """Count ``count`` events at ``now``."""
        if count:
            self.events.append((now, count))
            self.total += count
        self.expire(now)

    def expire(self, now: float) -> int:
        """Drop events older than the window; returns the count left."""
        while self.events and self.events[0][0] <= now - self.seconds:
            self.total -= self.events.popleft()[1]
        return self.total

    def clear(self) -> None:
        """Forget everything."""
        self.events.clear()
        self.total = 0


class Increase:
    """Increase of a monotonically growing counter over the last ``seconds`` (from periodic samples)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.samples: deque[tuple[float, int]] = deque()

    def observe(self, now: float, value: int) -> int:
        """Add a sample; returns the increase since the oldest sample within the window."""
        self.samples.append((now, value))
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.seconds:
            self.samples.popleft()
        return value - self.samples[0][1]
