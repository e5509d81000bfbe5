"""A real worker that dies like SIGKILL right after publishing orders and before recording them: the
crash-recovery test's fault, injected through the worker's ``after_publish`` hook (production code has
no fault switch)."""

from __future__ import annotations

import os

from streamproc.app import worker
from streamproc.settings import Settings


def _die(_published: object) -> None:
    os._exit(137)


if __name__ == "__main__":
    raise SystemExit(worker.run(Settings.from_env(), after_publish=_die))
