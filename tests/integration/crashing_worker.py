"""A real worker that dies like SIGKILL right after publishing orders and before recording them: the
crash-recovery tests' fault, injected through the worker's ``after_publish`` hook (production code has
no fault switch). With ``STREAMPROC_TEST_DIE_ON=replaces`` it dies only after publishing an order that
replaces a cancelled one (the cancel and its replacement both out, neither recorded)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from streamproc.app import worker
from streamproc.app.decisions import Draft
from streamproc.settings import Settings


def _die(published: Sequence[Draft]) -> None:
    if os.environ.get("STREAMPROC_TEST_DIE_ON") == "replaces" and not any(
        "replaces" in d.doc for d in published
    ):
        return
    os._exit(137)


if __name__ == "__main__":
    raise SystemExit(worker.run(Settings.from_env(), after_publish=_die))
