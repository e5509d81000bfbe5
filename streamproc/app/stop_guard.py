"""A bound on the worker's graceful stop: faust can hang in its own shutdown (a consumer leaving a group
mid-rebalance, a flush that never returns), and an orchestrator then waits its whole grace period and
kills it anyway. Crash-only design makes a hard exit safe (state is in Redis, offsets replay), so when
the stop overruns, the guard logs where every task and thread was waiting and exits on its own."""

from __future__ import annotations

import asyncio
import faulthandler
import io
import os
import sys
import threading
from typing import TextIO

import structlog

log = structlog.get_logger(__name__)

# The exit code of a stop that overran: not 0 (the stop was not clean) and not a signal's (-9, 137)
# so an operator can tell the guard's exit from an orchestrator's kill.
EXIT_STOP_OVERRAN = 75


def task_stacks(loop: asyncio.AbstractEventLoop) -> str:
    """Where each pending task of ``loop`` is waiting, as text (call it on the loop's own thread)."""
    out = io.StringIO()
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        out.write(f"--- task {task.get_name()} ({task.get_coro()!r})\n")
        task.print_stack(limit=12, file=out)
    return out.getvalue()


class StopGuard:
    """Armed when a stop begins; if the process is still alive ``timeout_s`` later, it writes the
    stacks of the loop's tasks and of every thread to ``out``, then ends the process with
    EXIT_STOP_OVERRAN."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
        *,
        out: TextIO | None = None,
        exit_code: int = EXIT_STOP_OVERRAN,
    ) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self.out = out if out is not None else sys.stderr
        self.exit_code = exit_code
        self._timer: threading.Timer | None = None

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def arm(self) -> None:
        """Start the clock (once: a second signal does not extend the bound)."""
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.timeout_s, self._overran)
        self._timer.daemon = True  # a stop that finishes in time exits without waiting for it
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _overran(self) -> None:
        # the task stacks can only be read on the loop's thread; if the loop itself is blocked,
        # the threads' stacks below still show where
        tasks = threading.Event()
        text: list[str] = []

        def collect() -> None:
            text.append(task_stacks(self.loop))
            tasks.set()

        try:
            self.loop.call_soon_threadsafe(collect)
        except RuntimeError:  # the loop is already closed
            tasks.set()
        tasks.wait(2.0)
        log.error(
            "worker stop overran: exiting without finishing it (nothing is lost: state is in Redis "
            "and uncommitted offsets replay)",
            timeout_s=self.timeout_s,
            exit_code=self.exit_code,
            tasks=text[0] if text else "(the event loop did not answer)",
        )
        self.out.write("---- threads at the overrun ----\n")
        self.out.flush()
        faulthandler.dump_traceback(file=self.out, all_threads=True)
        self.out.flush()
        self._exit()

    def _exit(self) -> None:
        os._exit(self.exit_code)
