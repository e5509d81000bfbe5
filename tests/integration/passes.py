"""Counting a live worker's evaluation passes, so a "nothing else happened" assertion follows passes the
worker has provably made rather than a fixed sleep. ``streamproc_evaluation_passes_total`` counts every
pass, with or without candidates."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.web import get, sample, scrape
from tests.integration.workers import WorkerProcess, wait_for


async def evaluation_passes(worker: WorkerProcess) -> int:
    """Evaluation passes the worker has finished so far."""
    samples = await scrape(int(worker.env["STREAMPROC_WEB_PORT"]))
    return int(sample(samples, "streamproc_evaluation_passes_total"))


async def passes_after(
    worker: WorkerProcess, n: int = 2, *, settle: bool = True, timeout: float = 30.0
) -> int:
    """Return once ``worker`` is ready (its partitions loaded, its feed caught up) and has finished ``n``
    evaluation passes that started after the call; returns the pass count then.

    With ``settle``, the passes start after the settle time (STREAMPROC_ORDER_SETTLE_S) of every
    position or targets update applied before the call: the worker holds such an account that long
    before it evaluates it, so a pass before the hold ends says nothing about the account."""
    port = int(worker.env["STREAMPROC_WEB_PORT"])

    async def ready() -> bool:
        return (await get(port, "/ready"))[0] == 200

    await wait_for(f"{worker.log_path.name} ready", ready, timeout=timeout)
    if settle:
        settled_at = time.time() + float(worker.env["STREAMPROC_ORDER_SETTLE_S"])
        await wait_for("the settle hold of the last update to end", lambda: time.time() >= settled_at)
    # a pass running at the scrape may be counted later though it started before it: n + 1
    target = await evaluation_passes(worker) + n + 1

    async def done() -> Any:
        count = await evaluation_passes(worker)
        return count if count >= target else None

    result: int = await wait_for(
        f"{worker.log_path.name}: evaluation pass #{target}", done, timeout=timeout, every=0.02
    )
    return result
