"""What one worker watches beyond single records (no I/O): input-topic silence and the dead-letter rate
from end offsets, the instruments accounts reference, and its own summary."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import numpy as np

from streamproc.app.accounts import Accounts
from streamproc.app.decisions import state_counts
from streamproc.app.status import Status
from streamproc.core import Book
from streamproc.core.alerts import Episode, Key, episode_id
from streamproc.core.gaps import Increase, Silence
from streamproc.core.types import Bool
from streamproc.settings import Settings, Topics

_SUMMARY_REASONS = 10
_SUMMARY_WAITING = 50  # instruments with depth-capped demand shown per worker


class Watch:
    """Topic-level detectors of one worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.silence = {t: Silence() for t in settings.feed_silent_s}
        self.deadletters = Increase(settings.deadletter_window_s)
        self.deadletter_episode: Episode | None = None
        self.referenced: Bool = np.zeros(0, dtype=bool)  # per instrument: held or targeted somewhere
        self.held: set[str] = set()  # the Redis ``held`` set, re-read every few seconds
        # since when quotes are due (the first open among the referenced markets open now; 0: one never
        # closes); None while they are all closed: the quotes topic is then not silent, just closed
        self.quotes_due_ms: int | None = 0
        self.quotes_due_known = False  # not until the referenced instruments are: no silence judged
        self.tick = 0
        self.last_suppressed = -1

    # ---- start-up ----------------------------------------------------------------------------

    def seed(self, offsets: Mapping[str, int], newest_ms: Mapping[str, int]) -> None:
        """Start the silence clocks from each topic's newest record, so a worker that starts (or takes
        over) while a feed is already silent still sees how long it has been."""
        for logical, watch in self.silence.items():
            if newest_ms.get(logical):
                watch.seed(offsets[logical], newest_ms[logical] / 1000.0)

    # ---- topic detectors ---------------------------------------------------------------------

    def topic_episodes(
        self,
        now: float,
        offsets: Mapping[str, int],
        topics: Topics,
        announced: Mapping[Key, Episode],
        storm: Episode | None = None,
    ) -> dict[Key, Episode]:
        """Ongoing feed_silent, deadletter_rate and breach_storm episodes (``announced``: the firing set,
        so a new owner keeps the episode its predecessor announced; ``storm``: the storm's, if any)."""
        out: dict[Key, Episode] = {}
        for logical, limit in self.settings.feed_silent_s.items():
            watch = self.silence[logical]
            watch.observe(now, offsets[logical])
            silent = watch.silent_for(now)
            due = self.quotes_due_ms if logical == "quotes" else 0
            if logical == "quotes":  # the feed's silence counts in session time
                silent = 0.0 if due is None or not self.quotes_due_known else min(silent, now - due / 1000.0)
            if silent >= limit:
                subject = ("topic", getattr(topics, logical))
                details = {
                    "logical": logical,
                    "silent_s": round(silent, 1),
                    "threshold_s": limit,
                    "offsets": watch.value,
                    "quiet_since_ms": int(watch.quiet_since * 1000),
                }
                # a silence that spans a close is a new episode in the next session (its own id)
                mark = f"{watch.value}@{due}" if due and due / 1000.0 > watch.quiet_since else watch.value
                ep_id = episode_id("feed_silent", subject, mark)
                since = int((watch.quiet_since + limit) * 1000)
                out[("feed_silent", subject)] = Episode("feed_silent", subject, ep_id, since, details)
        count = self.deadletters.observe(now, offsets["deadletter"])
        window = self.settings.deadletter_window_s
        per_min = count * 60.0 / window
        threshold = self.settings.deadletter_rate_per_min
        subject = ("topic", topics.deadletter)
        prior = self.deadletter_episode or announced.get(("deadletter_rate", subject))
        warm = self.deadletters.samples[0][0] <= now - window  # a full window of samples
        if per_min > threshold and prior is None:
            details = {"per_min": round(per_min, 1), "threshold_per_min": threshold, "window_s": window}
            ep_id = episode_id("deadletter_rate", subject, offsets["deadletter"])
            prior = Episode("deadletter_rate", subject, ep_id, int(now * 1000), details)
        # an announced episode is kept until this worker has seen a whole window (after a restart)
        self.deadletter_episode = prior if per_min > threshold or not warm else None
        if self.deadletter_episode is not None:
            out[self.deadletter_episode.key] = self.deadletter_episode
        if storm is not None:
            out[storm.key] = storm
        return out

    # ---- references and summary --------------------------------------------------------------

    def refresh_referenced(self, book: Book) -> None:
        """Instruments held or targeted by accounts in this worker's book or, per Redis (``held``), by
        anyone's."""
        idx = book.instrument_indices(self.held)
        ref = book.referenced()
        ref[idx] = True
        self.referenced = ref

    def summary(
        self,
        accounts: Accounts,
        book: Book,
        partitions: list[int],
        now_ms: int,
        counts: Mapping[str, int],
        storm: bool,
    ) -> dict[str, Any]:
        """This worker's state for `streamproc inspect status` (and a log line when suppression changes)."""
        counts_now = state_counts(accounts)
        rows = accounts.owned_rows()
        suppressed = rows[accounts.status[rows] == Status.SUPPRESSED]
        counts_by = book.flagged_counts(suppressed)
        top_idx = np.argsort(-counts_by, kind="stable")[:_SUMMARY_REASONS]
        by_reason = {book.instruments.id_of(int(i)): int(counts_by[i]) for i in top_idx if counts_by[i] > 0}
        flagged = book.flagged()
        if counts_now["quarantined"]:
            by_reason["position_gap"] = counts_now["quarantined"]
        top = dict(sorted(by_reason.items(), key=lambda kv: -kv[1])[:_SUMMARY_REASONS])
        return {
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "partitions": partitions,
            "accounts": counts_now["tracked"],
            "suppressed": counts_now["suppressed"],
            "held": counts_now["held"],
            "quarantined": counts_now["quarantined"],
            "throttled": counts_now["throttled"],
            "closed": counts_now["closed"],
            "suppressed_by": top,
            "flagged_instruments": int(flagged.size),
            "waiting": {
                name: {"buy": round(w.buy, 8), "sell": round(w.sell, 8), "accounts": w.accounts}
                for name, w in sorted(
                    accounts.capacity.totals().items(), key=lambda kv: -(kv[1].buy + kv[1].sell)
                )[:_SUMMARY_WAITING]
            },
            "storm": storm,
            "counts": {k: int(v) for k, v in sorted(counts.items())},
            "ts": now_ms,
        }
