"""Accounts quarantined by position gaps (missing positions seqs) and their ``position_gap`` episodes,
per book row (no I/O): opened by a seq jump, lifted when filled, reconciled or timed out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.core.gaps import SeqGaps
from streamproc.core.types import I64, Bool
from streamproc.state.records import GapRecord


class Quarantine:
    """Per quarantined row: the missing seqs (and the newest seq applied per instrument) and the episode."""

    def __init__(self) -> None:
        self.gaps: dict[int, SeqGaps] = {}
        self.episodes: dict[int, Episode] = {}
        self.closed: list[Episode] = []  # episodes ended since the last drain
        self.skewed: dict[int, Episode] = {}  # clock_skew: a positions record stamped in the future

    def __contains__(self, r: int) -> bool:
        return r in self.gaps

    def __bool__(self) -> bool:
        return bool(self.gaps)

    def get(self, r: int) -> SeqGaps | None:
        return self.gaps.get(r)

    def jumped(
        self,
        r: int,
        account: str,
        last: int,
        seq: int,
        ts_ms: int,
        now_ms: int,
        details: Mapping[str, Any] | None = None,
    ) -> SeqGaps:
        """Positions of row r jumped from seq ``last`` to ``seq``: the seqs between are missing
        (``details`` for the episode instead of the jump's, e.g. a record that came but was refused)."""
        gaps = self.gaps.get(r)
        if gaps is None:
            gaps = self.gaps[r] = SeqGaps(opened_ms=now_ms)
            subject = ("account", account)
            self.episodes[r] = Episode(
                "position_gap",
                subject,
                episode_id("position_gap", subject, last + 1),
                ts_ms,
                dict(details or {"missing_from": last + 1, "missing_to": seq - 1, "seq": seq}),
            )
        gaps.add(last + 1, seq - 1)
        return gaps

    def refused(self, r: int, account: str, seq: int, ts_ms: int, now_ms: int) -> None:
        """Row r's positions record ``seq`` was stamped ``ts_ms``, ahead of the clock: ``clock_skew``
        until one of its records is applied again."""
        if r not in self.skewed:
            subject = ("account", account)
            details = {"seq": seq, "record_ts": ts_ms, "ahead_ms": ts_ms - now_ms}
            self.skewed[r] = Episode(
                "clock_skew", subject, episode_id("clock_skew", subject, seq), now_ms, details
            )

    def accepted(self, r: int, seq: int) -> None:
        """A positions record of row r was applied: a clock_skew episode ends."""
        ep = self.skewed.pop(r, None)
        if ep is not None:
            self.closed.append(
                Episode(ep.type, ep.subject, ep.id, ep.since_ms, {**ep.details, "resumed_at_seq": seq})
            )

    def lift(self, r: int, **resolution: Any) -> bool:
        """End row r's quarantine (its episode closes with ``resolution``); False if it had none."""
        if self.gaps.pop(r, None) is None:
            return False
        ep = self.episodes.pop(r)
        self.closed.append(Episode(ep.type, ep.subject, ep.id, ep.since_ms, {**ep.details, **resolution}))
        return True

    def older_than(self, now_ms: int, timeout_s: float, owned: Callable[[int], bool]) -> list[int]:
        """Owned rows quarantined for more than ``timeout_s``."""
        return [r for r, g in self.gaps.items() if owned(r) and now_ms - g.opened_ms > timeout_s * 1000]

    def record(self, r: int) -> GapRecord | None:
        """The stored ``gap`` of row r (None when not quarantined)."""
        gaps = self.gaps.get(r)
        return GapRecord(gaps.to_json(), self.episodes[r]) if gaps is not None else None

    def restore(self, r: int, record: GapRecord | None) -> None:
        self.gaps.pop(r, None)
        self.episodes.pop(r, None)
        if record is not None:
            self.gaps[r] = SeqGaps.from_json(record.gaps)
            self.episodes[r] = record.episode

    def mask(self, rows: I64) -> Bool:
        """Per row of ``rows``: is the account quarantined."""
        if not self.gaps:
            return np.zeros(len(rows), dtype=bool)
        out: Bool = np.isin(rows, np.fromiter(self.gaps, dtype=np.int64, count=len(self.gaps)))
        return out

    def why(self, r: int) -> str:
        """Why row r is quarantined, for its drift status."""
        ranges = self.gaps[r].ranges
        shown = ", ".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in ranges[:5])
        return f"position_gap seq {shown}" + (" ..." if len(ranges) > 5 else "")

    def open_episodes(self, owned: Callable[[int], bool]) -> dict[Key, Episode]:
        """Ongoing position_gap and clock_skew episodes of owned rows."""
        out = {ep.key: ep for r, ep in self.episodes.items() if owned(r)}
        out.update({ep.key: ep for r, ep in self.skewed.items() if owned(r)})
        return out

    def drain_closed(self) -> list[Episode]:
        """Episodes that ended since the last call."""
        out, self.closed = self.closed, []
        return out
