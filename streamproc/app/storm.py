"""The breach-storm guard: counts new breaches in a window, starts the global hold (SET NX in the store,
so every worker holds), turns a pass's orders into held statuses while it lasts, and re-evaluates the
held accounts when an operator releases it (detection muted for a while after)."""

from __future__ import annotations

import os
import socket

import structlog

from streamproc.app.accounts import Accounts
from streamproc.app.decisions import Decisions
from streamproc.app.ports import ControlStore
from streamproc.app.status import Status
from streamproc.core.alerts import Episode, episode_id
from streamproc.core.gaps import Window
from streamproc.settings import Settings
from streamproc.state.records import StormDoc, storm_episode

log = structlog.get_logger(__name__)


class StormGuard:
    """One worker's view of the storm: the breach window, and the hold mirrored from the store."""

    def __init__(self, settings: Settings, store: ControlStore, accounts: Accounts) -> None:
        self.settings = settings
        self.store = store
        self.accounts = accounts
        self.window = Window(settings.storm_window_s)
        self.opening = Window(settings.storm_window_s)  # breaches of accounts whose markets just opened
        self.storm: StormDoc | None = None  # the storm holding orders (mirrored from the store)
        self.muted = False

    @property
    def holding(self) -> bool:
        return self.storm is not None

    def breaches(self, now: float, new: int, tracked: int, opening: int = 0) -> bool:
        """Count ``new`` breaches (and ``opening`` ones: accounts that were closed until their markets
        opened, judged against their own, larger share); True when either window now holds a storm."""
        s = self.settings
        return _full(
            self.window, now, new, max(s.storm_min_accounts, s.storm_share * tracked), self.muted
        ) | (
            _full(
                self.opening,
                now,
                opening,
                max(s.storm_min_accounts, s.storm_open_share * tracked),
                self.muted,
            )
        )

    def doc(self, now_ms: int) -> StormDoc:
        """The stored record of a storm this worker detected."""
        subject = ("topic", self.settings.topics.orders)
        details = {
            "breaches_in_window": self.window.total,
            "opening_breaches_in_window": self.opening.total,
            "open_share": self.settings.storm_open_share,
            "window_s": self.settings.storm_window_s,
            "share": self.settings.storm_share,
            "min_accounts": self.settings.storm_min_accounts,
            "detected_by": f"{socket.gethostname()}:{os.getpid()}",
        }
        return {
            "alert_id": episode_id("breach_storm", subject, now_ms),
            "since_ms": now_ms,
            "details": details,
        }

    async def load(self) -> None:
        """Start from the stored state (a storm may already hold orders)."""
        self.storm, self.muted = await self.store.storm()

    async def guard(self, decisions: Decisions, now: float) -> None:
        """Before a pass publishes: start a storm if its breaches make one (holding its orders), or hold
        them if another worker started one since the last refresh."""
        now_ms = int(now * 1000)
        tracked = self.accounts.tracked()
        if self.storm is None and self.breaches(
            now, decisions.new_breaches, tracked, decisions.opening_breaches
        ):
            doc = self.doc(now_ms)
            if not await self.store.start_storm(doc):
                doc = (await self.store.storm())[0] or doc
            self.storm = doc
            held = decisions.hold(self.accounts, now_ms)
            log.error(
                "breach storm: orders held until `streamproc storm release`", held=held, **doc["details"]
            )
        elif decisions.orders and self.storm is None:
            # another worker may have started a storm since the last refresh: one read per pass that
            # would publish, so no order leaves after a storm is set
            storm, _muted = await self.store.storm()
            if storm is not None:
                self.storm = storm
                decisions.hold(self.accounts, now_ms)

    async def refresh(self) -> bool:
        """Mirror the stored state (the watch, once a second); True when a storm was released."""
        before = self.storm
        storm, muted = await self.store.storm()
        if self.storm is before:  # else a pass started a storm meanwhile: keep it
            self.storm = storm
        self.muted = muted
        return before is not None and storm is None

    def on_released(self) -> int:
        """After a release (under the evaluation lock): the held accounts are evaluated again at the
        prices of the next pass; returns how many."""
        self.window.clear()  # the breaches that made the storm are not a new one
        self.opening.clear()
        rows = self.accounts.rows_with_status(Status.HELD)
        self.accounts.dirty.update(rows.tolist())
        log.warning("breach storm released: held accounts are evaluated again", accounts=int(rows.size))
        return int(rows.size)

    def episode(self) -> Episode | None:
        """The ``breach_storm`` episode while a storm holds orders."""
        return storm_episode(self.storm, self.settings.topics.orders) if self.storm is not None else None


def _full(window: Window, now: float, new: int, limit: float, muted: bool) -> bool:
    """Count ``new`` breaches in ``window``; whether it now holds ``limit`` of them."""
    if muted or new == 0:
        window.expire(now)
        return False
    window.add(now, new)
    return window.total >= limit
