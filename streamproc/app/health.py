"""Whether the worker is healthy (its tasks alive, its event loop not blocked) and ready (assigned,
loaded, the price feed caught up, the store answering): what /health and /ready report."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

MAX_LOOP_LAG_S = 5.0


class Health:
    """Liveness from the worker's tasks and a heartbeat; readiness from the components' states."""

    def __init__(
        self,
        assigned: Callable[[], bool],
        loading: Callable[[], list[int]],
        feed_ready: asyncio.Event,
        ping: Callable[[], Awaitable[None]],
    ) -> None:
        self.assigned = assigned
        self.loading = loading
        self.feed_ready = feed_ready
        self.ping = ping
        self.jobs: list[asyncio.Task[None]] = []  # feed, evaluator, watch, heartbeat (set by the worker)
        self.loop_lag_s = 0.0

    def problems(self) -> list[str]:
        """Why this worker is not healthy (empty: healthy): a task ended, or the event loop was blocked
        for more than ``MAX_LOOP_LAG_S`` in the last 30 s."""
        problems = [f"{job.get_name()} task ended" for job in self.jobs if job.done()]
        if self.loop_lag_s > MAX_LOOP_LAG_S:
            problems.append(f"event loop blocked for {self.loop_lag_s:.1f} s (limit {MAX_LOOP_LAG_S} s)")
        return problems

    async def not_ready(self) -> list[str]:
        """Why this worker is not ready to serve (empty: ready)."""
        reasons = []
        if not self.assigned():
            reasons.append("no partition assignment received yet")
        loading = self.loading()
        if loading:
            reasons.append(f"loading partitions {loading} from Redis")
        if not self.feed_ready.is_set():
            reasons.append("price feed catching up")
        try:
            await self.ping()
        except Exception as exc:
            reasons.append(f"redis unreachable: {exc or type(exc).__name__}")
        return reasons

    async def run_heartbeat(self, every: float = 0.25, window: int = 120) -> None:
        """Measure how late the event loop wakes up; ``loop_lag_s`` is the worst of the last ``window``
        beats (30 s), so a loop that was blocked shows in /health after it recovers."""
        recent: deque[float] = deque(maxlen=window)
        while True:
            started = time.monotonic()
            await asyncio.sleep(every)
            recent.append(max(0.0, time.monotonic() - started - every))
            self.loop_lag_s = max(recent)
