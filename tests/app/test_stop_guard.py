"""The stop guard: a stop that overruns logs where the loop's tasks and the threads waited, then exits."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from streamproc.app.stop_guard import EXIT_STOP_OVERRAN, StopGuard, task_stacks


class _Recording(StopGuard):
    """Records the exit instead of ending the test process."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.exited = threading.Event()

    def _exit(self) -> None:
        self.exited.set()


async def _stuck_in_shutdown() -> None:
    await asyncio.Event().wait()  # a stop step that never returns


def test_an_overrun_writes_the_stuck_task_and_the_threads_then_exits(tmp_path: Path) -> None:
    out_path = tmp_path / "log"

    async def main() -> _Recording:
        stuck = asyncio.create_task(_stuck_in_shutdown(), name="consumer-leave")
        with out_path.open("w") as out:
            guard = _Recording(asyncio.get_running_loop(), 0.2, out=out)
            guard.arm()
            while not guard.exited.is_set():
                await asyncio.sleep(0.02)
        stuck.cancel()
        return guard

    guard = asyncio.run(main())
    assert guard.exit_code == EXIT_STOP_OVERRAN
    text = out_path.read_text()
    assert "---- threads at the overrun ----" in text
    assert "Current thread" in text or "Thread 0x" in text  # faulthandler's dump of every thread


def test_task_stacks_names_where_each_task_waits() -> None:
    async def main() -> str:
        stuck = asyncio.create_task(_stuck_in_shutdown(), name="consumer-leave")
        await asyncio.sleep(0)
        text = task_stacks(asyncio.get_running_loop())
        stuck.cancel()
        return text

    text = asyncio.run(main())
    assert "--- task consumer-leave" in text and "_stuck_in_shutdown" in text


def test_a_stop_that_finishes_in_time_is_not_cut_short() -> None:
    async def main() -> _Recording:
        guard = _Recording(asyncio.get_running_loop(), 0.2)
        guard.arm()
        guard.arm()  # a second signal does not start a second clock
        guard.disarm()
        await asyncio.sleep(0.5)
        return guard

    guard = asyncio.run(main())
    assert guard.armed and not guard.exited.is_set()
