"""Counting a live worker's evaluation passes, so a "nothing else happened" assertion follows passes the
worker has provably made rather than a fixed sleep.

`streamproc_evaluation_duration_seconds_count` is observed at the end of a pass that had candidates
(``Pipeline._evaluate`` returns early when no account is dirty, affected by a price change, or at the
end of its hold). A quiet worker whose accounts are held by open orders makes no counted pass at all,
so each scenario that waits on passes carries a probe: an in-band account of its own instrument, which
every quote of that instrument makes a candidate of the next pass.
"""

from __future__ import annotations

import time
from typing import Any

from streamproc.settings import Topics
from streamproc.sim.messages import produce, quote
from tests.integration.web import sample, scrape
from tests.integration.workers import WorkerProcess, wait_for


class Probe:
    """The account ``PROBE``, 60/40 in EQ3 and BOND at the opening quotes (EQ3 100, BOND 50): in band, so
    it never orders. Put ``Probe.accounts`` into ``setup_records`` and keep EQ3 to the probe."""

    account = "PROBE"
    instrument = "EQ3"

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap, self.topic = bootstrap, topics.quotes
        self.accounts = {self.account: (self.instrument, 600.0, 800.0)}  # for setup_records
        self.seq = 1  # setup_records quotes EQ3 once, at seq 1

    async def nudge(self) -> None:
        """Quote EQ3 again, unchanged: the next pass of the probe's owner evaluates it."""
        self.seq += 1
        await produce(self.bootstrap, [(self.topic, quote(self.instrument, 100.0, self.seq))])


async def evaluation_passes(worker: WorkerProcess) -> int:
    """Evaluation passes with candidates the worker has finished so far."""
    samples = await scrape(int(worker.env["STREAMPROC_WEB_PORT"]))
    return int(sample(samples, "streamproc_evaluation_duration_seconds_count"))


async def passes_after(
    worker: WorkerProcess, probe: Probe, n: int = 2, *, settle: bool = True, timeout: float = 30.0
) -> int:
    """Return once ``worker`` (which must own the probe account) has finished ``n`` evaluation passes
    that started after the call; returns the pass count then. Each pass is brought about by a probe
    quote, and counted.

    With ``settle``, the passes start after the settle time (STREAMPROC_ORDER_SETTLE_S) of every
    position or targets update applied before the call: the worker holds such an account that long
    before it evaluates it, so a pass before the hold ends says nothing about the account."""
    if settle:
        settled_at = time.time() + float(worker.env["STREAMPROC_ORDER_SETTLE_S"])
        await wait_for("the settle hold of the last update to end", lambda: time.time() >= settled_at)
    count = await evaluation_passes(worker)
    # a pass running at the scrape may be counted later though it started before it: n + 1
    target = count + n + 1
    while count < target:
        await probe.nudge()
        seen = count

        async def advanced(seen: int = seen) -> Any:
            now = await evaluation_passes(worker)
            return now if now > seen else None

        count = await wait_for(
            f"{worker.log_path.name}: an evaluation pass after #{seen} (want #{target})",
            advanced,
            timeout=timeout,
            every=0.02,
        )
    return count
